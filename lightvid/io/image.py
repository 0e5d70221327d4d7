"""Images in and out: loading with clear errors, PIL <-> tensor, resize-to-cover + center-crop.

Pixel convention (all of lightvid): float tensors (3, H, W) in [-1, 1], RGB; uint8 v maps to
v / 127.5 - 1, and back by rounding, so a uint8 -> tensor -> uint8 round trip is exact.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from lightvid.errors import LightvidError
from lightvid.io.atomic import shown
from lightvid.io.paths import open_input

MIN_IMAGE_SIDE = 8  # smaller images are refused: no model in lightvid works below this
# Larger images (and video frames) are refused from their header, before decoding: 50 megapixels covers the
# 48-50 MP photos of phone cameras (8160x6120) and decodes in about a second to 150 MB of RGB; a 10000x10000
# image would take 300 MB and seconds, for a model that works at 128x128. Pillow's own decompression-bomb guard
# (a warning from 89 MP, an error from 179 MP) is not relied on.
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_FILE = "an image file (PNG, JPEG, WebP, ...)"


def load_image(path: str | os.PathLike) -> Image.Image:
    """Load an image file as an RGB PIL image, applying its EXIF orientation.

    Alpha is dropped (not composited). A missing file, anything but a regular file (a FIFO, a device: refused
    before it is opened, see `paths.py`), a file that is not an image, a truncated image (for PNG every chunk up
    to IEND is checked too: Pillow decodes a PNG that lacks its last bytes), one smaller than 8 px on either side
    or larger than MAX_IMAGE_PIXELS (read from the header, before decoding) is a LightvidError naming the file.
    """
    return _open_image(Path(path), decode=True)


def check_image(path: str | os.PathLike) -> None:
    """The checks of `load_image` that need no decoding, for a command to run before any work: a regular file,
    an image format, the size from the header (MIN_IMAGE_SIDE, MAX_IMAGE_PIXELS), a PNG's chunks up to IEND.
    A JPEG cut short is found only by `load_image`."""
    _open_image(Path(path), decode=False)


def _open_image(path: Path, decode: bool) -> Image.Image | None:
    with open_input(path, IMAGE_FILE) as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
                with Image.open(f) as im:
                    check_pixel_count(im.height, im.width, path)
                    if im.format == "PNG":
                        im.verify()  # CRCs of every chunk up to IEND; verify() spends the image: reopen
                        f.seek(0)
                        im = Image.open(f)
                    if not decode:
                        check_image_size(im.height, im.width, path)
                        return None
                    im.load()  # decode now: truncated files fail here, not later
                    im = ImageOps.exif_transpose(im)
                    img = im.convert("RGB")
        except LightvidError:
            raise
        except UnidentifiedImageError:
            raise LightvidError(
                f"{shown(path)}: not a readable image (expected PNG, JPEG, WebP, GIF, BMP, ...)"
            ) from None
        except Image.DecompressionBombError:
            raise LightvidError(f"{shown(path)}: image is too large to decode safely") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's truncated/corrupt data errors
            reason = " ".join(str(e).split())[:120]
            raise LightvidError(f"{shown(path)}: corrupt or truncated image ({reason})") from None
        except MemoryError:
            raise LightvidError(f"{shown(path)}: image is too large to decode in the memory available") from None
    check_image_size(img.height, img.width, path)
    return img


def check_pixel_count(height: int, width: int, name: object) -> None:
    """LightvidError if a `height` x `width` image or frame of `name` is over MAX_IMAGE_PIXELS."""
    if height * width > MAX_IMAGE_PIXELS:
        raise LightvidError(
            f"{shown(name)}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels; at most "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels are read (scale it down first)"
        )


def check_image_size(height: int, width: int, name: object) -> None:
    """LightvidError if a frame of `name` is smaller than MIN_IMAGE_SIDE on either side."""
    if min(height, width) < MIN_IMAGE_SIDE:
        raise LightvidError(
            f"{shown(name)}: image is {width}x{height} px; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed"
        )


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only memory
        array = array.copy()
    t = torch.from_numpy(array).to(torch.float32)
    return (t / 127.5 - 1.0).movedim(-1, -3).contiguous()


def tensor_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8 (clamped, rounded)."""
    t = ((tensor.detach().to(torch.float32).cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return t.to(torch.uint8).movedim(-3, -1).contiguous().numpy()


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> (3, H, W) float32 in [-1, 1] (converted to RGB first)."""
    return uint8_to_tensor(np.asarray(img.convert("RGB")))


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [-1, 1] -> RGB PIL image; values outside [-1, 1] are clamped."""
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise LightvidError(f"expected an image tensor of shape (3, H, W), got {tuple(tensor.shape)}")
    return Image.fromarray(tensor_to_uint8(tensor))


def _cover_size(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int]:
    """Smallest (h, w) with the source aspect ratio that covers (target_h, target_w)."""
    scale = max(target_h / height, target_w / width)
    return max(target_h, round(height * scale)), max(target_w, round(width * scale))


def resize_and_crop(image, height: int, width: int, *, mode: str = "bicubic"):
    """Scale `image` so it covers (height, width) keeping its aspect ratio, then center-crop.

    Nothing is stretched and no borders are added: the excess along one axis is cut evenly from
    both sides (an extra odd pixel goes to the bottom/right). Accepts a PIL image (resampled with
    LANCZOS; returns PIL) or a tensor (..., C, H, W) (resampled with `mode` for
    `torch.nn.functional.interpolate`, antialiased when shrinking with bilinear/bicubic; float
    results are clamped to [-1, 1]; use mode="nearest-exact" for masks). When the size already
    matches, the input is returned unchanged (bit-exact).
    """
    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise LightvidError(f"target size must be positive integers, got {height}x{width}")
    if isinstance(image, Image.Image):
        if image.size == (width, height):
            return image
        h, w = _cover_size(image.height, image.width, height, width)
        image = image.resize((w, h), Image.Resampling.LANCZOS)
        top, left = (h - height) // 2, (w - width) // 2
        return image.crop((left, top, left + width, top + height))
    if not isinstance(image, torch.Tensor) or image.ndim < 3:
        raise LightvidError(f"expected a PIL image or a (..., C, H, W) tensor, got {type(image).__name__}")
    src_h, src_w = image.shape[-2:]
    if (src_h, src_w) == (height, width):
        return image
    h, w = _cover_size(src_h, src_w, height, width)
    lead = image.shape[:-3]
    x = image.reshape(-1, *image.shape[-3:])  # (n, c, h, w)
    dtype = x.dtype
    x = x.to(torch.float32)
    antialias = mode in ("bilinear", "bicubic") and (h < src_h or w < src_w)
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(x, size=(h, w), mode=mode, antialias=antialias, **kwargs)
    top, left = (h - height) // 2, (w - width) // 2
    x = x[..., top : top + height, left : left + width]
    if dtype.is_floating_point:
        x = x.clamp(-1.0, 1.0) if mode in ("bilinear", "bicubic") else x
        x = x.to(dtype)
    else:
        x = x.round().clamp(torch.iinfo(dtype).min, torch.iinfo(dtype).max).to(dtype)
    return x.reshape(*lead, *x.shape[-3:]).contiguous()
