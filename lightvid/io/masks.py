"""Region masks for `lightvid inpaint` and `lightvid cinemagraph`: white marks the pixels to regenerate (or animate),
black the pixels to keep.

A mask is one image (the same region in every frame), a folder of images or a video (one per frame). It must have the
video's (or image's) own size, so that the same resize-and-crop maps both to the model's frame size. Grey levels are
thresholded at MASK_THRESHOLD; after resizing, a pixel of the model's frame is in the region wherever the mask's white
reaches it (a bilinear, antialiased resize above REACH), so thin strokes survive a downscale.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lightvid.errors import LightvidError

from .atomic import shown
from .image import load_image, resize_and_crop
from .video import read_video_uint8

MASK_THRESHOLD = 128  # 8-bit grey at or above this is white (regenerate)
MAX_MASK_COLOUR = 32  # a mask's pixel has equal channels (grey); more than 1% of pixels whose channels differ by
MAX_COLOUR_SHARE = 0.01  # more than this make it a picture, not a mask
REACH = 1e-3  # a resized pixel that any white source pixel contributes to is in the region
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def read_mask_uint8(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of a mask: one image (F = 1), a folder of images or a video."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return np.asarray(load_image(path))[None]
    return read_video_uint8(path, max_frames=max_frames)[0]


def mask_regions(frames: np.ndarray, name: str) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F, H, W) bool, True = white (regenerate). A coloured picture is refused."""
    spread = frames.max(axis=-1).astype(np.int16) - frames.min(axis=-1)
    if (spread > MAX_MASK_COLOUR).mean() > MAX_COLOUR_SHARE:
        raise LightvidError(f"{name} is not a mask: it has colours; a mask is black (keep) and white (regenerate)")
    return frames.sum(axis=-1, dtype=np.uint16) >= 3 * MASK_THRESHOLD  # the channels' mean, in integers


def read_mask(path: str | os.PathLike, source: tuple[int, int], of: str = "the frames'",
              max_frames: int | None = None) -> torch.Tensor:
    """MASK `path` as (F, 1, H, W) float in {0, 1}, 1 = white (regenerate): F = 1 for one image.

    source: (H, W), the size the mask must have (the video's or image's own); of: whose size that is, for the error;
    max_frames: read at most this many masks (a folder or video of them)."""
    name = shown(Path(path))
    pixels = read_mask_uint8(path, max_frames=max_frames)
    if pixels.shape[1:3] != tuple(source):
        raise LightvidError(f"{name} is {pixels.shape[2]}x{pixels.shape[1]}; the mask must have {of} size, "
                            f"{source[1]}x{source[0]}")
    return torch.from_numpy(mask_regions(pixels, name)).float()[:, None]


def fit_regions(mask: torch.Tensor, frames: int, size: tuple[int, int], name: str) -> torch.Tensor:
    """A mask from `read_mask` at the model's frame size: (frames, 1, h, w) float in {0, 1}, 1 = regenerate.

    frames: the video's frame count, which a folder or video of masks must have (one image serves every frame);
    size: (h, w) the frames are resized and cropped to; name: the mask's, for the errors."""
    if mask.shape[0] not in (1, frames):
        count = f"more than {frames}" if mask.shape[0] > frames else str(mask.shape[0])
        raise LightvidError(f"{name} has {count} masks for {frames} frames; give one image (every frame) or one mask "
                            "per frame")
    region = (resize_and_crop(mask, *size, mode="bilinear") > REACH).float()
    if not region.any():
        where = " left after resizing to the model's frames" if mask.any() else ""
        raise LightvidError(f"{name} is empty: no white pixel{where}; white marks what to regenerate")
    return region.expand(frames, 1, *size)
