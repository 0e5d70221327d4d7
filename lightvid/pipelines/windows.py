"""Clips longer than a model's window, two ways (WINDOW_MODES):

- chain: one window at a time, each continuing the last (MarDini-style autoregressive extension). The first window
  is generated from what is given, then every next window is an extension: its first frames are the last frames
  made so far (given, so they stay unchanged) and the rest is new. Half a window of context keeps motion going in
  the same direction; the final window takes more context so it still has the trained length.
- multidiffusion: the whole clip in one sampling, every step averaged over overlapping windows
  (lightvid.pipelines.multidiffusion), windows overlapping by half a window.
"""
import sys

import torch

from lightvid.errors import LightvidError
from lightvid.tasks import extend
from lightvid.tasks.framespec import MAX_FRAMES

from .native import NativePipeline

WINDOW_MODES = ("chain", "multidiffusion")


def continue_video_windows(pipe: NativePipeline, frames: torch.Tensor, total: int, fps: float, mode: str,
                           progress: bool = True, **sample_args) -> torch.Tensor:
    """`continue_video` by `mode` (WINDOW_MODES): (total, 3, H, W), the k given frames unchanged."""
    if mode == "chain":
        return continue_video(pipe, frames, total, fps, progress, **sample_args)
    if mode != "multidiffusion":
        raise LightvidError(f"window mode {mode!r} is not one of {', '.join(WINDOW_MODES)}")
    k = frames.shape[0]
    if not k <= total <= MAX_FRAMES:
        raise LightvidError(f"cannot continue {k} frames to {total}: the result must have {k} to {MAX_FRAMES} frames")
    if total == k:
        return frames
    return pipe(extend(frames, total - k, fps), progress=progress, overlap=pipe.settings.num_frames // 2,
                **sample_args)


def chain_plan(given: int, total: int, window: int) -> list[tuple[int, int]]:
    """(context, new) of each window a chain samples to continue `given` frames to `total`: the last `context`
    frames made so far given, `new` frames made."""
    plan, made = [], given
    while made < total:
        remaining = total - made
        context = min(made, max(window // 2, window - remaining))
        new = min(window - context, remaining)  # context <= window - 1 since remaining >= 1
        plan.append((context, new))
        made += new
    return plan


def continue_video(pipe: NativePipeline, frames: torch.Tensor, total: int, fps: float, progress: bool = True,
                   **sample_args) -> torch.Tensor:
    """Extend `frames` (k, 3, H, W) in [-1, 1] to `total` frames; the k given frames come back unchanged.

    sample_args go to the pipeline call (steps, sampler, guidance, generator). Returns (total, 3, H, W).
    """
    k = frames.shape[0]
    if not k <= total <= MAX_FRAMES:
        raise LightvidError(f"cannot continue {k} frames to {total}: the result must have {k} to {MAX_FRAMES} "
                            f"frames")
    video = list(frames)
    for number, (context, new) in enumerate(chain_plan(k, total, pipe.settings.num_frames), start=1):
        spec = extend(torch.stack(video[-context:]), new, fps)
        if progress:
            print(f"window {number}: {context} frames given, {new} new ({len(video) + new}/{total})", file=sys.stderr)
        video.extend(pipe(spec, progress=progress, **sample_args)[context:])
    return torch.stack(video)
