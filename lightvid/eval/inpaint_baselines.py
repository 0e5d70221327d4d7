"""Non-learned baselines for inpainting a region of every frame (the comparison of `lightvid inpaint`).

Each takes frames (F, 3, H, W) float in [-1, 1] and regions (F, 1, H, W) in {0, 1}, 1 = regenerate, and returns
(F, 3, H, W) with every pixel outside the region unchanged.
"""
import cv2
import numpy as np
import torch

from lightvid.conditioning.hints import nearest_given
from lightvid.io.image import tensor_to_uint8, uint8_to_tensor

TELEA_RADIUS = 3  # pixels around a missing one that Telea's method weighs (OpenCV's examples use 3)


def telea(frames: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """OpenCV's cv2.inpaint (Telea's fast marching method), frame by frame, on the 8-bit frames."""
    pixels = tensor_to_uint8(frames)  # (F, H, W, 3)
    holes = (regions[:, 0] > 0.5).numpy().astype(np.uint8)  # (F, H, W)
    filled = np.stack([cv2.inpaint(p, m, TELEA_RADIUS, cv2.INPAINT_TELEA) for p, m in zip(pixels, holes)])
    out = uint8_to_tensor(filled)
    return torch.where(regions > 0.5, out, frames)


def temporal_copy(frames: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Each missing pixel copied from the nearest frame in time where that pixel is visible (the earlier one on a
    tie); a pixel hidden in every frame falls back to Telea on its own frame."""
    given = (1 - regions)[None]  # (1, F, 1, H, W), 1 = visible
    copied, found, _ = nearest_given((frames[None] * given), given)
    out = torch.where(found[0] > 0.5, copied[0], telea(frames, regions))
    return torch.where(regions > 0.5, out, frames)


INPAINT_BASELINES = {"telea": telea, "temporal_copy": temporal_copy}
