"""Moving-layer clips: cut-out pieces of real photos moving over a camera move, with exact ground truth.

FlyingChairs/FlyingThings-style layered data for learned frame interpolation. Each clip is a
background (a `camera_path` pan/zoom/rotate over one photo, as in `CameraMotion`) with
`min_layers`..`max_layers` foreground layers composited back to front (out = a * layer + (1 - a) *
below). A layer is a random crop of another photo (the same photo only when the split has one) cut
out by a random shape: an ellipse, a star-shaped polygon or a smooth blob, antialiased (4x4
supersampled). Its box is 15-45% of the frame side; it moves on its own path: a translation of 5-33%
of the frame (a straight line or a quadratic curve), a rotation of up to ±30° and a scale moving
within 0.8-1.25, with constant, eased or accelerating speed. Layers pass over each other and the
background, so clips have object motion, occlusion and disocclusion.

Bounds: every layer's whole box (hence its shape) lies inside the frame in every frame. The path is
chosen, not rejected: the corners of the rotated, scaled box give its extent per frame, the
translation is shrunk to the longest that fits, and the start is drawn from the interval where it fits.

Ground truth: `clip_layers(index)` returns every parameter of a clip (camera theta per frame; per
layer its RGB patch, alpha mask and per-frame affine) and `render(params)` renders the frames from
them; `ds[index]` is exactly `render(ds.clip_layers(index))`.

Photos and splits as in `CameraMotion`: by default the bundled real photos; sorted by file name, the
last `num_test_photos` are the test photos, used for both background and layers of the test split.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from lightvid.data.camera_motion import CAMERA_FPS, DEFAULT_LENGTH, VIEW_FRACTION, camera_path, load_photo, photo_list
from lightvid.data.common import check_index, check_int, check_split, split_rng
from lightvid.errors import LightvidError
from lightvid.io.image import MIN_IMAGE_SIDE

MIN_LAYER, MAX_LAYER = 0.15, 0.45  # layer box side / frame side
MIN_SHIFT, MAX_SHIFT = 0.05, 0.33  # layer translation over the clip / frame side
MAX_LAYER_ROTATION_DEG = 30.0
MIN_SCALE, MAX_SCALE = 0.8, 1.25
SUPERSAMPLE = 4  # masks are drawn 4x larger and box-filtered down: a ~1 px soft edge
BOUNDS_MARGIN = 0.01  # pixels kept free at the frame edges, against rounding


def split_photos(images, split: str, num_test: int) -> list[Path]:
    """The photos of `split`, exactly as `CameraMotion` splits them."""
    photos = photo_list(images)
    missing = [p for p in photos if not p.is_file()]
    if missing:
        raise LightvidError(f"{missing[0]}: no such image file")
    if len(photos) <= num_test:
        raise LightvidError(f"{len(photos)} photos found, need more than num_test_photos={num_test}")
    chosen = photos[len(photos) - num_test :] if split == "test" else photos[: len(photos) - num_test]
    if not chosen:
        raise LightvidError("the test split is empty: num_test_photos=0")
    return chosen


def shape_mask(rng: np.random.Generator, h: int, w: int) -> torch.Tensor:
    """(1, h, w) alpha in [0, 1]: a random shape filling the box, zero on its outer 1 px ring."""
    big_w, big_h = w * SUPERSAMPLE, h * SUPERSAMPLE
    canvas = Image.new("L", (big_w, big_h), 0)
    draw = ImageDraw.Draw(canvas)
    lo, hi_x, hi_y = SUPERSAMPLE, big_w - SUPERSAMPLE - 1, big_h - SUPERSAMPLE - 1  # inside the zero ring
    kind = rng.integers(3)
    if kind == 0:
        draw.ellipse([lo, lo, hi_x, hi_y], fill=255)
    else:
        if kind == 1:  # star-shaped polygon: 3-8 jittered corners at random radii
            k = int(rng.integers(3, 9))
            angles = (np.arange(k) + rng.uniform(-0.35, 0.35, k)) * 2 * math.pi / k
            radii = rng.uniform(0.45, 1.0, k)
        else:  # smooth blob: radius 1 plus a few low-frequency waves
            angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
            waves = np.arange(2, 5)[:, None]
            amplitude, phase = rng.uniform(0, 0.15, (3, 1)), rng.uniform(0, 2 * math.pi, (3, 1))
            radii = 1 + (amplitude * np.cos(waves * angles + phase)).sum(0)
        x, y = radii * np.cos(angles), radii * np.sin(angles)
        x = lo + (x - x.min()) / (x.max() - x.min()) * (hi_x - lo)  # stretched to fill the box
        y = lo + (y - y.min()) / (y.max() - y.min()) * (hi_y - lo)
        draw.polygon(list(zip(x.tolist(), y.tolist())), fill=255)
    alpha = torch.from_numpy(np.asarray(canvas.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0)
    alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1] = 0.0, 0.0, 0.0, 0.0
    return alpha.unsqueeze(0)


def box_extent(scale: np.ndarray, angle: np.ndarray, h: int, w: int) -> np.ndarray:
    """(F, 2) half extents (x, y) of the (w, h) box rotated by `angle` and scaled by `scale`, per frame."""
    cos, sin = np.abs(np.cos(angle)), np.abs(np.sin(angle))
    return np.stack([w * cos + h * sin, w * sin + h * cos], 1) * scale[:, None] / 2


def layer_path(rng: np.random.Generator, num_frames: int, h: int, w: int, size: int) -> np.ndarray:
    """(F, 2, 3) float64 affines from layer pixel coordinates to frame pixel coordinates.

    Frame f maps a box point q to c(f) + s(f) R(a(f)) (q - box center). The box stays inside
    [0, size]^2: its extent per frame comes from its rotated corners, the offset path c(f) - c(0)
    is shrunk until some start fits, and the start is drawn where every frame fits.
    """
    s = np.linspace(0.0, 1.0, num_frames)
    ease = rng.integers(3)
    if ease == 1:
        s = s * s * (3 - 2 * s)  # smoothstep: eases in and out
    elif ease == 2:
        s = s * s  # accelerates
    angle0 = math.radians(rng.uniform(-MAX_LAYER_ROTATION_DEG, MAX_LAYER_ROTATION_DEG))
    turn = math.radians(rng.uniform(-MAX_LAYER_ROTATION_DEG, MAX_LAYER_ROTATION_DEG)) if rng.random() < 0.5 else 0.0
    angle = angle0 + turn * s
    scale0, scale1 = rng.uniform(MIN_SCALE, MAX_SCALE, 2)
    scale = scale0 * (scale1 / scale0) ** s if rng.random() < 0.5 else np.full(num_frames, scale0)
    direction = rng.uniform(0, 2 * math.pi)
    shift = np.array([math.cos(direction), math.sin(direction)])  # (x, y), unit length
    bend = rng.uniform(-0.5, 0.5) if rng.random() < 0.5 else 0.0  # quadratic Bezier through a side point
    control = shift / 2 + bend * np.array([-shift[1], shift[0]])
    offset = 2 * s[:, None] * (1 - s[:, None]) * control + (s * s)[:, None] * shift  # (F, 2) for length 1
    extent = box_extent(scale, angle, h, w) + BOUNDS_MARGIN  # (F, 2)
    # Frames f, g both fit iff k (u_g - u_f) <= size - e_f - e_g per axis, for the path length k.
    room = size - extent[:, None, :] - extent[None, :, :]  # (F, F, 2)
    rise = offset[None, :, :] - offset[:, None, :]
    longest = np.min(np.where(rise > 1e-12, room / np.where(rise > 1e-12, rise, 1.0), np.inf))
    length = min(rng.uniform(MIN_SHIFT, MAX_SHIFT) * size, longest)
    path = length * offset
    low = np.max(extent - path, 0)
    high = np.min(size - extent - path, 0)
    center = rng.uniform(low, np.maximum(low, high)) + path  # (F, 2)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    cx, cy = w / 2, h / 2
    return np.stack(
        [
            np.stack([cos, -sin, center[:, 0] - cos * cx + sin * cy], 1),
            np.stack([sin, cos, center[:, 1] - sin * cx - cos * cy], 1),
        ],
        1,
    )


def layer_corners(affine: np.ndarray, h: int, w: int) -> np.ndarray:
    """(F, 4, 2) frame pixel coordinates of the layer box corners, per frame."""
    box = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
    return np.einsum("fij,kj->fki", affine, box)


def layer_theta(affine: np.ndarray, h: int, w: int, size: int) -> torch.Tensor:
    """(F, 2, 3) float32 theta for `affine_grid`: frame normalized coordinates -> layer normalized ones."""
    linear, shift = affine[:, :, :2], affine[:, :, 2]  # q -> linear q + shift
    inverse = np.linalg.inv(linear)  # (F, 2, 2)
    # frame pixel p = (u + 1) size / 2; layer pixel q = inverse (p - shift); layer u_l = 2 q / (w, h) - 1
    to_layer = np.array([2 / w, 2 / h])[None, :, None]
    linear_u = to_layer * inverse * (size / 2)
    shift_u = to_layer[..., 0] * np.einsum("fij,fj->fi", inverse, size / 2 - shift) - 1
    return torch.from_numpy(np.concatenate([linear_u, shift_u[..., None]], 2)).float()


def render(params: dict) -> torch.Tensor:
    """The clip (F, 3, size, size) in [-1, 1] of `params` (see `MovingLayers.clip_layers`)."""
    size, camera = params["size"], params["camera"]
    num_frames = camera.shape[0]
    grid = F.affine_grid(camera, [num_frames, 3, size, size], align_corners=False)
    source = params["background"].unsqueeze(0).expand(num_frames, -1, -1, -1)  # (F, 3, H, W)
    frames = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    for layer in params["layers"]:  # back to front
        rgba = torch.cat([layer["rgb"], layer["alpha"]]).unsqueeze(0).expand(num_frames, -1, -1, -1)
        h, w = layer["alpha"].shape[-2:]
        grid = F.affine_grid(layer_theta(layer["affine"], h, w, size), [num_frames, 4, size, size], align_corners=False)
        warped = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        alpha = warped[:, 3:]  # (F, 1, size, size), zero outside the moved box
        frames = alpha * warped[:, :3] + (1 - alpha) * frames
    if params["flip"]:
        frames = frames.flip(-1)
    return frames.clamp(-1.0, 1.0).contiguous()


class MovingLayers(Dataset):
    """Moving-layer clips over real photos: `(frames, fps)`, frames float32 (F, 3, size, size) in [-1, 1].

    images: None (the bundled photos, see `bundled_photos`), a folder or a list of image paths.
    split: "train" (default length 100,000, each index its own seeded clip; random horizontal flips)
      or "test" (default 256 clips over the held-out photos, no flips; one fixed set for every seed).
    min_layers..max_layers foreground layers per clip (uniform). fps is CAMERA_FPS (8).
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
        min_layers: int = 1,
        max_layers: int = 3,
    ):
        self.split = check_split(split)
        self.num_frames = check_int("num_frames", num_frames, 2)
        self.size = check_int("size", size, MIN_IMAGE_SIDE)
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", DEFAULT_LENGTH[split] if length is None else length, 1)
        self.min_layers = check_int("min_layers", min_layers, 0)
        self.max_layers = check_int("max_layers", max_layers, self.min_layers)
        self.photos = split_photos(images, split, check_int("num_test_photos", num_test_photos, 0))

    def __len__(self) -> int:
        return self.length

    def clip_layers(self, index: int) -> dict:
        """Every parameter of clip `index`, for `render`.

        size: int; background: (3, H, W) photo; camera: (F, 2, 3) float32 theta (as `camera_path`);
        layers, back to front: dicts with rgb (3, h, w), alpha (1, h, w) in [0, 1] and affine (F, 2, 3)
        float64 from layer pixel coordinates (box [0, w] x [0, h]) to frame pixel coordinates;
        flip: bool (a left-right flip of the rendered frames); photos: the paths used, background first.
        """
        rng = split_rng(self.seed, self.split, check_index(index, self.length))
        short_side = math.ceil(self.size / VIEW_FRACTION)
        photo_path = self.photos[rng.integers(len(self.photos))]
        background = load_photo(photo_path, short_side)
        camera = camera_path(rng, self.num_frames, tuple(background.shape[-2:]))  # (F, 2, 3)
        others = [p for p in self.photos if p != photo_path] or self.photos  # layers cut from other photos
        count = rng.integers(self.min_layers, self.max_layers + 1)
        used = [photo_path] + [others[rng.integers(len(others))] for _ in range(count)]
        layers = [self.random_layer(rng, load_photo(path, short_side)) for path in used[1:]]
        flip = self.split == "train" and bool(rng.random() < 0.5)
        return {"size": self.size, "background": background, "camera": camera, "layers": layers, "flip": flip,
                "photos": used}  # fmt: skip

    def random_layer(self, rng: np.random.Generator, photo: torch.Tensor) -> dict:
        """A random crop of `photo` (3, H, W), a random shape mask and a path inside the frame."""
        side = rng.uniform(MIN_LAYER, MAX_LAYER) * self.size
        ratio = math.sqrt(rng.uniform(0.7, 1.4))  # aspect ratio h / w in 0.7-1.4, clipped to the side limits
        low, high = MIN_LAYER * self.size, MAX_LAYER * self.size
        h, w = (max(3, round(np.clip(side * r, low, high))) for r in (ratio, 1 / ratio))
        top, left = rng.integers(photo.shape[1] - h + 1), rng.integers(photo.shape[2] - w + 1)
        rgb = photo[:, top : top + h, left : left + w]
        return {"rgb": rgb, "alpha": shape_mask(rng, h, w), "affine": layer_path(rng, self.num_frames, h, w, self.size)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        return render(self.clip_layers(index)), CAMERA_FPS  # (F, 3, size, size)
