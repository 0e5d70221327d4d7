"""Temporal MultiDiffusion (Bar-Tal et al. 2023, as Lumiere §3.5 applies it to time): a clip of N frames sampled by
a model whose window is W < N frames.

The clip is covered by windows of W frames that overlap by O (the last one ends at frame N). At every sampler step
each window is denoised on its own (its frames, its given frames and mask), and each frame's estimate is the
weighted average of the estimates of the windows that cover it: the least-squares solution of MultiDiffusion's
objective (Lumiere's eq. 3) with per-frame weights. The weights ramp 1, 2, ... up to a window's middle and down
again, so a window's edge frames, which it sees without their neighbours on one side, count least: with equal
weights the frame-to-frame change where windows begin and end was 1.34x the change inside windows on `photo`, with
the ramp 1.07x (bench/RESULTS.md, "Long videos"). The sampler state is the whole clip, but the network only ever
sees W frames. Given frames stay given (the caller's model function pins them).
"""
from collections.abc import Callable

import torch

from lightvid.errors import LightvidError


def temporal_windows(frames: int, window: int, overlap: int) -> list[slice]:
    """Windows of `window` frames covering frames 0..frames-1, each starting `window - overlap` after the last; the
    last one ends at the last frame (so it may overlap its neighbour by more). One window when frames <= window."""
    if not 0 <= overlap < window:
        raise LightvidError(f"the window overlap must be in [0, {window - 1}] for a {window}-frame window, "
                            f"got {overlap}")
    if frames <= window:
        return [slice(0, frames)]
    starts = [*range(0, frames - window, window - overlap), frames - window]
    return [slice(start, start + window) for start in starts]


def average_over_windows(x: torch.Tensor, windows: list[slice],
                         estimates: list[Callable[[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    """x (b, N, ...) -> (b, N, ...): every frame the weighted mean, over the windows that cover it, of that window's
    `estimates[i](x[:, windows[i]])`, a window's frame j of n weighing min(j + 1, n - j); 0 where no window does
    (frames the caller knows: it skips windows of given frames only). One window covering every frame returns its
    estimate itself (the plain sampler, bit for bit)."""
    if len(windows) == 1 and windows[0] == slice(0, x.shape[1]):
        return estimates[0](x)
    total = torch.zeros_like(x)
    count = torch.zeros(x.shape[1], dtype=x.dtype)
    shape = (1, -1, *(1,) * (x.dim() - 2))
    for window, estimate in zip(windows, estimates, strict=True):
        n = window.stop - window.start
        ramp = torch.minimum(torch.arange(1, n + 1), torch.arange(n, 0, -1)).to(x.dtype)  # 1, 2, ..., 2, 1
        total[:, window] += ramp.view(shape) * estimate(x[:, window])
        count[window] += ramp
    return total / count.clamp(min=1).view(shape)  # weights are >= 1 where any window covers a frame
