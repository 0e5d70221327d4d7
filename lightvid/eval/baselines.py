"""Non-learned baselines that fill the frames a FrameSpec does not give, from the given frames only.

Each baseline takes frames (F, C, H, W) float in [-1, 1], of which only the rows with given[i] = True are read,
and given (F,) bool; it returns (F, C, H, W) with the given frames unchanged and every other frame filled in.
Frames before the first or after the last given frame copy the nearest given frame (nothing to interpolate).
"""

from __future__ import annotations

import torch

from lightvid.conditioning.flows import FlowWarp, brackets, check_frames, farneback_warps


def copy_nearest(frames: torch.Tensor, given) -> torch.Tensor:
    """Every frame that is not given copies the given frame nearest in time; a tie goes to the earlier one.

    frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W).
    """
    frames, given = check_frames(frames, given)
    indices = given.nonzero().flatten()  # ascending, so argmin's first minimum is the earlier frame on a tie
    nearest = (indices[None, :] - torch.arange(len(given))[:, None]).abs().argmin(1)  # (F,)
    return frames[indices[nearest].to(frames.device)]  # a given frame is its own nearest: unchanged


def linear_blend(frames: torch.Tensor, given) -> torch.Tensor:
    """Cross-fade: a frame between given frames a < i < b is (1 - t)·x_a + t·x_b with t = (i - a) / (b - a).

    frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W). Outside the given range, copy the nearest given frame.
    """
    frames, given = check_frames(frames, given)
    out = frames.clone()
    for i, a, b in brackets(given):
        if a is None or b is None:
            out[i] = frames[b if a is None else a]
        else:
            t = (i - a) / (b - a)
            out[i] = (1 - t) * frames[a] + t * frames[b]
    return out


def _fill_by_flow(frames: torch.Tensor, given, blend, flow: str = "farneback") -> torch.Tensor:
    """Frames between two given frames from `blend(FlowWarp) -> (H, W, C)`, warps by `flow`; outside the given
    range, copy the nearest given frame. frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W)."""
    frames, given = check_frames(frames, given)
    warps = farneback_warps(frames, given, flow)
    out = frames.clone()
    for i, a, b in brackets(given):
        if i in warps:
            out[i] = torch.from_numpy(blend(warps[i])).permute(2, 0, 1).to(out)
        else:
            out[i] = frames[b if a is None else a]
    return out


def farneback(frames: torch.Tensor, given) -> torch.Tensor:
    """Optical-flow interpolation with OpenCV's Farneback dense flow between the two bracketing given frames.

    frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W). For given frames a < i < b and t = (i - a) / (b - a):
    flows F_ab (a -> b) and F_ba (b -> a) are computed on uint8 luma with the FARNEBACK parameters, where
    a(p) ≈ b(p + F_ab(p)). The flows from time t are approximated as in Super SloMo (Jiang et al. 2018, eq. 4):
      F_ta = -(1 - t)·t·F_ab + t²·F_ba,    F_tb = (1 - t)²·F_ab - t·(1 - t)·F_ba,
    (exact for constant motion), and I_t = (1 - t)·warp(x_a, F_ta) + t·warp(x_b, F_tb), warping all channels
    bilinearly with replicated borders (no occlusion reasoning). Outside the given range, copy the nearest frame.
    """
    return _fill_by_flow(frames, given, FlowWarp.blend)


def farneback_visible(frames: torch.Tensor, given) -> torch.Tensor:
    """`farneback` with the simplest occlusion reasoning: a warp whose sample point leaves its frame (where
    replicated border pixels would come in, e.g. content that enters the view during a camera move) gets weight 0
    and the other warp is used alone (FlowWarp.visible_weight). A stronger baseline for learned interpolators,
    which must do at least this well. frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W)."""
    return _fill_by_flow(frames, given, FlowWarp.visible_blend)


def farneback_global(frames: torch.Tensor, given) -> torch.Tensor:
    """`farneback_visible` on Farneback flow with global motion compensation (`global_motion_flow`): the camera's
    affine motion fitted to keypoint matches first, Farneback on what remains. Large camera moves are where plain
    Farneback fails; this is the hint of lightvid's flow-hinted models (flow "farneback_global").
    frames: (F, C, H, W); given: (F,) bool -> (F, C, H, W)."""
    return _fill_by_flow(frames, given, FlowWarp.visible_blend, flow="farneback_global")


BASELINES = {"copy_nearest": copy_nearest, "linear_blend": linear_blend, "farneback": farneback,
             "farneback_visible": farneback_visible, "farneback_global": farneback_global}
