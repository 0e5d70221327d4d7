"""Loops that move: plan the way out, then generate the way back (MarDini's planner + generator, in two passes).

A loop in one pass gives the model the image at both ends of the window (`lightvid.tasks.loop`). A flow-hinted
model then gets a hint with zero flow, the still image, and stays on it. Two passes fix that without another
network:
  1. image-to-video from the image over the first half of the period (frames 0 .. period // 2);
  2. the loop window, with those frames given as well as the image at its end: the model generates the way back.
The first pass costs half a window more; bench/RESULTS.md ("Loops") has the measured effect.

A period longer than the model's window: the way out is made as `mode` says (a chain of windows or temporal
MultiDiffusion: lightvid.pipelines.windows), the way back always by MultiDiffusion (windows overlapping by half a
window), which reaches the image at the end; a chain, which only continues forward, cannot.
"""
import torch

from lightvid.errors import LightvidError
from lightvid.tasks import FrameSpec, animate, loop

from .windows import continue_video_windows


def sample_loop(pipe, image, period: int, mode: str | None = None, **sampling) -> torch.Tensor:
    """A seamless loop of `period` frames starting at `image`: (period, 3, H, W) in [-1, 1].

    pipe: a NativePipeline; image: a PIL image or a (3, H, W) tensor in [-1, 1] at the frame size wanted; mode: None
    (the period + 1 frames must fit the model's window) or a name of WINDOW_MODES for longer periods; sampling: the
    pipeline's keywords (steps, sampler, guidance, generator, progress), used by both passes in turn (one generator:
    the same seed gives the same loop).
    """
    spec = loop(image, period, pipe.settings.fps)  # checks period; frame 0 == frame period == the image
    window = pipe.settings.num_frames
    if spec.num_frames > window and mode is None:
        raise LightvidError(f"a loop of {period} frames needs a window of {period + 1} (the first frame repeated); "
                            f"this model's window is {window} frames")
    half = period // 2
    # The first pass is only half + 1 frames long, not a whole window cut short (which measured worse: RESULTS.md)
    if half + 1 > window:
        rest = {k: v for k, v in sampling.items() if k != "progress"}  # continue_video_windows takes a bool
        way_out = continue_video_windows(pipe, spec.given[0][None], half + 1, spec.fps, mode,
                                         sampling.get("progress") is not False, **rest)
    else:
        way_out = pipe(animate(spec.given[0], half + 1, spec.fps), **sampling)  # (half + 1, 3, H, W)
    if half + 1 == period:  # period 2: nothing left to generate on the way back
        return way_out
    given = {**{i: way_out[i] for i in range(half + 1)}, period: spec.given[0]}
    overlap = window // 2 if spec.num_frames > window else None
    return pipe(FrameSpec(period + 1, spec.fps, given, drop_last=True), overlap=overlap, **sampling)
