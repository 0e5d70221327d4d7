"""Hints: for every frame and pixel, an estimate built from the given frames alone, read by the network beside them.

Two sources (`Conditioning.hint`):
- "nearest": the value of the temporally nearest frame that gives that pixel (`nearest_given`), as SVD
  concatenates its conditioning image to every frame. A generated frame then only has to move nearby content
  rather than fetch it through temporal attention at coarse resolution.
- "flow": the same, but a frame between two whole given frames gets their optical-flow interpolation
  (`flow_hint`): the network starts from what flow alone achieves and corrects it, as learned frame interpolators
  do. Frames with a given frame on one side only, and per-pixel masks, keep the nearest given frame.
"""
import numpy as np
import torch

from .flows import farneback_warps


def nearest_given(given: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every frame and pixel, the given value of the nearest frame that gives that pixel.

    given: (b, f, c, h, w), zeros where not given; mask: (b, f, 1, h, w) in {0, 1}. Returns (hint like given,
    hinted (b, f, 1, h, w) in {0, 1}, offset (b, f, 1, h, w) = source frame - frame, in frames). At equal
    distance the earlier frame wins. O(f) passes, no (f × f) tensor: masks may differ per pixel.
    """
    hint, hinted, offset = torch.zeros_like(given), torch.zeros_like(mask), torch.zeros_like(mask)
    f = given.shape[1]
    for distance in range(f):
        for shift in (-distance, distance) if distance else (0,):
            # frames t whose source t + shift exists: t in [lo, hi)
            lo, hi = max(0, -shift), min(f, f - shift)
            if lo >= hi:
                continue
            take = mask[:, lo + shift:hi + shift] * (1 - hinted[:, lo:hi])  # given there, not yet hinted here
            hint[:, lo:hi] += take * given[:, lo + shift:hi + shift]
            offset[:, lo:hi] += take * shift
            hinted[:, lo:hi] += take
    return hint, hinted, offset


def flow_hint(given: torch.Tensor, mask: torch.Tensor, hint: torch.Tensor, offset: torch.Tensor,
              flow: str = "farneback", visible: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hint, offset, warps) with every frame between two given frames hinted by their flow interpolation.

    given, hint: (b, f, c, h, w); mask, offset: (b, f, 1, h, w), as `nearest_given` returns them. flow: a name of
    lightvid.conditioning.flows.FLOWS. The two warps are blended (1 - t, t) (`FlowWarp.blend`), or with
    visible=True each warp only where it samples inside its frame (`FlowWarp.visible_blend`). Only clips whose mask
    gives whole frames, at least two, are changed (flow needs whole frames on both sides). A flow-hinted frame's
    offset becomes 0: its hint is already at the frame's own time, nothing is left to move.
    warps: (b, f, c + 3, h, w), the parts of each flow hint, [from_b - from_a (c) ‖ inside_a ‖ inside_b ‖ w], w
    the weight the hint gives from_b; zeros on frames without a flow hint. The flow reads given frames only and
    needs no gradient.
    """
    hint, offset = hint.clone(), offset.clone()
    c = hint.shape[2]
    warps = hint.new_zeros((*hint.shape[:2], c + 3, *hint.shape[3:]))
    for b in range(given.shape[0]):
        per_frame = mask[b].flatten(1)  # (f, 1·h·w)
        whole = bool((per_frame.amax(1) == per_frame.amin(1)).all())
        flags = per_frame[:, 0] > 0.5  # (f,) bool
        if not whole or int(flags.sum()) < 2:
            continue
        for i, warp in farneback_warps(given[b].detach().float(), flags, flow).items():
            weight = warp.visible_weight() if visible else np.full_like(warp.inside_a, warp.t)  # (h, w)
            frame = warp.visible_blend() if visible else warp.blend()  # (h, w, c): the baseline's frame exactly
            hint[b, i] = torch.from_numpy(frame).permute(2, 0, 1).to(hint)
            spread = warp.from_b - warp.from_a  # (h, w, c)
            parts = np.concatenate([spread, np.stack([warp.inside_a, warp.inside_b, weight], -1)], -1)
            warps[b, i] = torch.from_numpy(parts).permute(2, 0, 1).to(warps)  # (c + 3, h, w)
            offset[b, i] = 0
    return hint, offset, warps
