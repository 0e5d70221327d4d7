"""Flicker of an edited video: how much it changes from frame to frame beyond what the source's motion explains.

The motion is the source's (OpenCV Farneback, frame t+1 -> frame t): frame t of a video is warped onto frame t+1
and the mean absolute difference is the video's *warped change* (RGB, 8-bit levels, over pixels whose motion stays
inside the frame). An edit's flicker is its warped change minus the source's: 0 for an edit as steady as the source
(an exact per-pixel edit of a well-tracked video comes close), more for frames edited inconsistently. It also falls
when an edit blurs (less detail, less change), so where the exact edit is known, the *error flicker* is the warped
change of the error (edited - exact): an error that moves with the content (a steady edit, however far from exact)
scores near 0, an error that changes from frame to frame scores high.
"""
import numpy as np
import torch

from lightvid.conditioning.flows import backward_warp, farneback_flow, gray_uint8


def source_flows(source: torch.Tensor) -> list[np.ndarray]:
    """source (f, 3, h, w) in [-1, 1] -> f-1 flows F (h, w, 2): frame t+1 (p) ≈ frame t (p + F(p))."""
    gray = [gray_uint8(frame) for frame in source]
    return [farneback_flow(gray[t + 1], gray[t]) for t in range(len(gray) - 1)]


def warped_change(video: torch.Tensor, flows: list[np.ndarray]) -> float:
    """Mean |V_{t+1}(p) - V_t(p + F_t(p))| in 8-bit levels (video in [-1, 1] units, (f, 3, h, w)), over t and the
    pixels whose p + F(p) is inside."""
    frames = (video.detach().float() * 127.5).permute(0, 2, 3, 1).contiguous().numpy()  # (f, h, w, 3)
    h, w = frames.shape[1:3]
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    total, count = 0.0, 0
    for t, flow in enumerate(flows):
        x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
        diff = np.abs(frames[t + 1] - backward_warp(np.ascontiguousarray(frames[t]), flow))  # (h, w, 3)
        total += float(diff[inside].sum())
        count += int(inside.sum()) * 3
    return total / max(count, 1)


def edit_flicker(edited: torch.Tensor, source: torch.Tensor, flows: list[np.ndarray] | None = None) -> float:
    """warped_change(edited) - warped_change(source), 8-bit levels (flows: the source's, computed if None)."""
    flows = source_flows(source) if flows is None else flows
    return warped_change(edited, flows) - warped_change(source, flows)


def error_flicker(edited: torch.Tensor, exact: torch.Tensor, flows: list[np.ndarray]) -> float:
    """warped_change(edited - exact), 8-bit levels: how much the edit's error changes beyond the motion."""
    return warped_change(edited - exact, flows)
