"""Optical flow between given frames, and the warps that interpolate the frames between them.

Two estimators (`FLOWS`): OpenCV's Farneback dense flow, and Farneback after the camera's global affine motion is
fitted to keypoint matches and compensated (`global_motion_flow`), which follows camera moves of tens of pixels that
plain Farneback loses. `farneback_warps` warps the two given frames around each in-between frame to its time; a
flow hint (lightvid.conditioning.hints) and the classical interpolation baselines (lightvid.eval.baselines) blend
those warps. cv2 is imported on first use.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from lightvid.errors import LightvidError

# Farneback parameters (the usual choice in OpenCV's examples): a 3-level pyramid, each level half the size of the
# one below (pyr_scale 0.5), so motions of several pixels are found at the coarse levels; flow averaged over a
# 15x15 window; 3 iterations per level; polynomial expansion over 5x5 neighbourhoods with Gaussian sigma 1.2.
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}
# Global motion (see `global_motion_flow`): ORB keypoints on frames of ~128 px need a smaller border and patch than
# ORB's defaults (31 px patches would leave a third of the frame unused) and a low FAST threshold to find enough of
# them; RANSAC keeps matches within 2 px of one affine map, and at least MIN_INLIERS must agree.
ORB = {"nfeatures": 500, "edgeThreshold": 8, "patchSize": 15, "fastThreshold": 5}
RANSAC_THRESHOLD_PX = 2.0
MIN_INLIERS = 10


def check_frames(frames, given) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(frames, torch.Tensor) or not frames.is_floating_point() or frames.ndim != 4:
        found = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise LightvidError(f"frames must be a float tensor (F, C, H, W), got {found}")
    given = torch.as_tensor(given)
    if given.dtype != torch.bool or given.shape != (frames.shape[0],):
        raise LightvidError(
            f"given must be a bool tensor of shape ({frames.shape[0]},) (one flag per frame), "
            f"got {given.dtype} {tuple(given.shape)}"
        )
    if not given.any():
        raise LightvidError("given marks no frame: at least one frame must be given")
    return frames, given.cpu()


def brackets(given: torch.Tensor) -> Iterator[tuple[int, int | None, int | None]]:
    """For each frame i that is not given: (i, nearest given index before i, nearest given index after i)."""
    indices = given.nonzero().flatten().tolist()
    for i in range(len(given)):
        if given[i]:
            continue
        before = [g for g in indices if g < i]
        after = [g for g in indices if g > i]
        yield i, (before[-1] if before else None), (after[0] if after else None)


def gray_uint8(frame: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) uint8 luma (BT.601 weights for RGB)."""
    x = ((frame.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).numpy()
    if x.shape[0] == 3:
        x = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    else:
        x = x.mean(0)
    return np.round(x).astype(np.uint8)


def _cv2():
    """OpenCV, imported on first use so that `import lightvid.eval` stays light."""
    try:
        import cv2
    except ImportError as e:
        raise LightvidError("optical flow (flow hints, the farneback baselines) needs OpenCV: "
                            "pip install opencv-python-headless") from e
    return cv2


def _hwc(frame: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> contiguous (H, W, C) float32 array, as cv2 wants it."""
    return np.ascontiguousarray(frame.detach().float().cpu().permute(1, 2, 0).numpy())


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(p) = image(p + flow(p)), bilinear, borders replicated. image (H, W, C), flow (H, W, 2)."""
    cv2 = _cv2()

    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(
        image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out.reshape(image.shape)  # remap drops a single channel axis


def farneback_flow(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Farneback flow F_ab (H, W, 2) float32 with a(p) ≈ b(p + F_ab(p)); ga, gb: (H, W) uint8 luma."""
    return _cv2().calcOpticalFlowFarneback(ga, gb, None, flags=0, **FARNEBACK)


def global_affine(ga: np.ndarray, gb: np.ndarray) -> np.ndarray | None:
    """The camera's motion from a to b as one affine map M (2, 3), b(M·(x, y, 1)) ≈ a(x, y), or None.

    Fitted by RANSAC to matched ORB keypoints (ga, gb: (H, W) uint8 luma); None where fewer than MIN_INLIERS
    matches agree (a frame without texture, or no single dominant motion). Affine rather than a homography: pans,
    zooms and rotations are affine, and 8 degrees of freedom are poorly pinned by the few keypoints of a small frame.
    """
    cv2 = _cv2()
    orb = cv2.ORB_create(**ORB)
    keys_a, desc_a = orb.detectAndCompute(ga, None)
    keys_b, desc_b = orb.detectAndCompute(gb, None)
    if desc_a is None or desc_b is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(desc_a, desc_b)
    if len(matches) < MIN_INLIERS:
        return None
    points_a = np.float32([keys_a[m.queryIdx].pt for m in matches])  # (N, 2) (x, y)
    points_b = np.float32([keys_b[m.trainIdx].pt for m in matches])
    affine, inliers = cv2.estimateAffine2D(points_a, points_b, method=cv2.RANSAC,
                                           ransacReprojThreshold=RANSAC_THRESHOLD_PX)
    if affine is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return affine


def warp_error(ga: np.ndarray, gb: np.ndarray, flow: np.ndarray) -> float:
    """Mean |a(p) - b(p + flow(p))| over the pixels p whose sample point lies inside b (luma, 0-255)."""
    h, w = ga.shape
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
    if not inside.any():
        return float("inf")
    diff = np.abs(ga.astype(np.float32) - backward_warp(gb.astype(np.float32)[..., None], flow)[..., 0])
    return float(diff[inside].mean())


def global_motion_flow(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Farneback with global motion compensation: F_ab (H, W, 2) float32, a(p) ≈ b(p + F_ab(p)).

    Farneback's 3-level pyramid finds motions of a few pixels per level; a camera pan or zoom across 15 frames moves
    content by tens of pixels and it fails. Here the
    camera's motion is fitted first (`global_affine`: keypoints match at any distance), b is warped onto a by it,
    Farneback finds what remains (objects moving on their own, parallax, the affine fit's error), and the two are
    composed: F_ab(p) = r(p) + g(p + r(p)) with g the affine map's flow and r the residual flow. Of this flow and
    plain Farneback's, the one that warps b onto a with the smaller mean luma error is returned, so a wrong global
    fit falls back to plain Farneback. ga, gb: (H, W) uint8 luma.
    """
    plain = farneback_flow(ga, gb)
    affine = global_affine(ga, gb)
    if affine is None:
        return plain
    h, w = ga.shape
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)  # (H, W, 2)
    linear, shift = affine[:, :2].T.astype(np.float32), affine[:, 2].astype(np.float32)
    camera = grid @ linear + shift - grid  # g(p) = M·p - p, (H, W, 2)
    b_on_a = np.round(backward_warp(gb.astype(np.float32)[..., None], camera)[..., 0]).clip(0, 255).astype(np.uint8)
    residual = farneback_flow(ga, b_on_a)
    composed = (grid + residual) @ linear + shift - grid  # r(p) + g(p + r(p)) = M·(p + r(p)) - p
    return composed if warp_error(ga, gb, composed) < warp_error(ga, gb, plain) else plain


class FlowWarp(NamedTuple):
    """One in-between frame of a Farneback interpolation: its time t in (0, 1) between given frames a < b, the
    two given frames warped to that time, from_a / from_b (H, W, C) float32, and where each warp samples inside
    its source frame, inside_a / inside_b (H, W) float32 in {0, 1} (outside, the warp repeats a border pixel)."""

    t: float
    from_a: np.ndarray
    from_b: np.ndarray
    inside_a: np.ndarray
    inside_b: np.ndarray

    def blend(self) -> np.ndarray:
        """The baseline's frame, (1 - t)·from_a + t·from_b, (H, W, C): no occlusion reasoning."""
        return (1 - self.t) * self.from_a + self.t * self.from_b

    def visible_weight(self) -> np.ndarray:
        """The weight of from_b, (H, W) in [0, 1], when a warp counts only where it samples inside its frame:
        t·inside_b / ((1 - t)·inside_a + t·inside_b), and t where both leave it (nothing better to go on).
        Where both stay inside it is t, as in `blend`; where one leaves, the other warp is used alone."""
        weight_a, weight_b = (1 - self.t) * self.inside_a, self.t * self.inside_b
        total = weight_a + weight_b
        return np.where(total > 0, weight_b / np.maximum(total, 1e-12), self.t).astype(np.float32)

    def visible_blend(self) -> np.ndarray:
        """The farneback_visible baseline's frame, (H, W, C): (1 - w)·from_a + w·from_b, w = visible_weight."""
        weight = self.visible_weight()[..., None]
        return (1 - weight) * self.from_a + weight * self.from_b


def farneback_warps(frames: torch.Tensor, given, flow: str = "farneback") -> dict[int, FlowWarp]:
    """{frame index: FlowWarp} for every frame that lies between two given frames.

    frames: (F, C, H, W), only given rows read; given: (F,) bool; flow: "farneback" (plain) or "farneback_global"
    (`global_motion_flow`). For the bracketing given frames a < i < b and t = (i - a) / (b - a), the flows F_ab and
    F_ba (a(p) ≈ b(p + F_ab(p))) give the flows from time t as in Super SloMo (Jiang et al. 2018, eq. 4):
      F_ta = -(1 - t)·t·F_ab + t²·F_ba,    F_tb = (1 - t)²·F_ab - t·(1 - t)·F_ba
    (exact for constant motion), and x_a, x_b are warped by them, bilinearly with replicated borders. A flow hint
    blends them (`FlowWarp.blend` / `visible_blend`); a network with
    `Conditioning.warp_inputs` also reads their parts (lightvid.conditioning.hints).
    """
    if flow not in FLOWS:
        raise LightvidError(f"unknown flow {flow!r}; accepted: {', '.join(FLOWS)}")
    estimate = FLOWS[flow]
    frames, given = check_frames(frames, given)
    h, w = frames.shape[-2:]
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    warps, flows = {}, {}  # flows: (a, b) -> (F_ab, F_ba), computed once per pair of given frames
    for i, a, b in brackets(given):
        if a is None or b is None:
            continue
        if (a, b) not in flows:
            ga, gb = gray_uint8(frames[a]), gray_uint8(frames[b])
            flows[a, b] = estimate(ga, gb), estimate(gb, ga)
        f_ab, f_ba = flows[a, b]
        t = (i - a) / (b - a)
        f_ta = -(1 - t) * t * f_ab + t * t * f_ba
        f_tb = (1 - t) ** 2 * f_ab - t * (1 - t) * f_ba

        def inside(flow: np.ndarray) -> np.ndarray:  # (H, W): the sample point p + flow(p) lies in the frame
            x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
            return ((x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)).astype(np.float32)

        warps[i] = FlowWarp(t, backward_warp(_hwc(frames[a]), f_ta), backward_warp(_hwc(frames[b]), f_tb),
                            inside(f_ta), inside(f_tb))
    return warps


# name -> estimator (ga, gb: (H, W) uint8 luma) -> F_ab (H, W, 2) float32 with a(p) ≈ b(p + F_ab(p))
FLOWS = {"farneback": farneback_flow, "farneback_global": global_motion_flow}
