"""`lightvid slowmo`: hierarchical slow motion by recursive frame interpolation (lightvid.pipelines.slowmo)."""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError

from .app import app, check_finite, warn_slow
from .options import (
    MAX_FRAMES,
    MAX_VIDEO_PIXELS,
    Bf16,
    Gif,
    Guidance,
    Height,
    Model,
    Output,
    Runtime,
    Sampler,
    Seed,
    Steps,
    Width,
)
from .tasks import _check_io, _setup, _write

FACTORS = (2, 4, 8, 16, 32, 64)  # for the help: lightvid.pipelines.slowmo.FACTORS (tests/test_slowmo.py checks)
MAX_OUTPUT_FPS = 1000  # lightvid.io.video.MAX_FPS: the highest rate a written video may state


def check_fps(fps: float | None) -> None:
    check_finite(fps=fps)
    if fps is not None and not 0 < fps <= MAX_OUTPUT_FPS:
        raise LightvidError(f"--fps must be in (0, {MAX_OUTPUT_FPS}], got {fps:g}")


@app.command()
def slowmo(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames: "
                                                 "every frame of it is kept, none resampled.")],
           output: Output, model: Model = "photo",
           factor: Annotated[int, typer.Option(help=f"How many times denser: a power of 2 from {FACTORS[0]} to "
                                               f"{FACTORS[-1]}. N frames become (N - 1) x factor + 1, at most "
                                               f"{MAX_FRAMES}.")] = 2,
           fps: Annotated[float | None, typer.Option(help="The output's frame rate, in (0, "
                                                     f"{MAX_OUTPUT_FPS}] (default: VIDEO's x --factor, the same "
                                                     "duration; VIDEO's own rate plays it --factor times "
                                                     "slower).")] = None,
           seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
           height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
           runtime: Runtime = "torch"):
    """Slow motion: VIDEO made --factor times denser by recursive frame interpolation (MarDini's hierarchical slow
    motion); every frame of VIDEO is kept, unchanged, at output frame i x factor.

    VIDEO is resized to cover the model's frame size (or the size --height and --width give) and center-cropped.
    Each level multiplies the frame count by the largest power of 2 k that fits the model's window (k + 1 frames)
    and what is left of --factor (photo, a 16-frame window: x8, then x8 or less), and makes the k - 1 frames of
    every gap in windows that hold as many consecutive known frames as fit, so the model sees more than one pair.
    A progress bar counts the windows of every level (on a terminal).
    """
    from lightvid.io import read_video
    from lightvid.pipelines.slowmo import check_factor, output_frames, slow_motion, slowmo_plan

    _check_io(output, gif, video=video)
    check_factor(factor, "--factor")
    check_fps(fps)
    pipe, h, w, args = _setup(output, model, height, width, bf16, seed=seed, steps=steps, sampler=sampler,
                              guidance=guidance, runtime=runtime)
    # the most input frames whose slow motion stays within the limits; one frame more is read, no more, to refuse a
    # longer video without decoding all of it
    allowed = (min(MAX_FRAMES, MAX_VIDEO_PIXELS // (h * w)) - 1) // factor + 1
    clip, source_fps = read_video(video, size=(h, w), max_frames=allowed + 1)  # every source frame, none resampled
    n = clip.shape[0]
    if n < 2:
        raise LightvidError(f"{video} has 1 frame: slow motion needs at least 2 (it makes the frames between them)")
    if n > allowed:
        raise LightvidError(f"{video} has more than {allowed} frame{'s' * (allowed > 1)}: slow motion by {factor} "
                            f"would make at least {output_frames(n, factor)} frames at {h}x{w}, past the limits "
                            f"({MAX_FRAMES} frames, {MAX_VIDEO_PIXELS:,} pixels); trim it or lower --factor")
    total = output_frames(n, factor)
    rate = fps if fps is not None else source_fps * factor
    if rate > MAX_OUTPUT_FPS:
        raise LightvidError(f"the output would play at {rate:g} fps ({source_fps:g} x {factor}), above "
                            f"{MAX_OUTPUT_FPS}; choose its rate with --fps (e.g. --fps {source_fps:g}: "
                            f"{factor} times slower)")
    warn_slow(steps=steps)
    plan = slowmo_plan(n, factor, pipe.settings.num_frames)
    levels = ", ".join(f"x{level.factor} in {len(level.windows)} window{'s' * (len(level.windows) > 1)}"
                       for level in plan)
    typer.echo(f"slow motion x{factor}: {n} -> {total} frames at {rate:g} fps; {levels}", err=True)
    result = slow_motion(pipe, clip, factor, rate, progress=None, **args)
    _write(result, output, rate, gif)
