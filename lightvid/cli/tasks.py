"""`lightvid animate | interpolate | extend | loop`: every native task with one model (default: the embedded
`photo`). Inputs of any size are resized to cover the model's frame size (aspect ratio kept) and center-cropped;
the given frames appear in the output unchanged.
"""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError

from .app import app, check_finite, check_range, check_seed, check_size, warn_slow
from .options import (
    FRAMES,
    MAX_FRAMES,
    MAX_STEPS,
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
    Windows,
)


def sampling_args(seed: int, steps: int | None, sampler: str | None, guidance: float = 1.0) -> dict:
    """The pipeline's sampling keywords, every value checked before any work starts."""
    check_seed(seed)
    check_range("--steps", steps, 1, MAX_STEPS)
    check_finite(guidance=guidance)
    import torch

    from lightvid.diffusion import get_sampler
    if sampler is not None:
        try:
            get_sampler(sampler)  # a clear error for an unknown name
        except LightvidError as e:
            raise LightvidError(f"--sampler: {e}") from None
    return dict(steps=steps, sampler=sampler, guidance=guidance, generator=torch.Generator().manual_seed(seed))


def network_dtype(bf16: bool):
    """The network's dtype for --bf16: bfloat16 where it is native, else float32 (the exact reference) with a
    one-line notice when bf16 was asked for (lightvid.models.precision)."""
    from lightvid.models.precision import network_dtype as dtype_for
    return dtype_for(bf16)


def _setup(output: str, model: str, height: int | None, width: int | None, bf16: bool, frames: int | None = None,
           frames_option: str = "--frames", frames_low: int = 1, runtime: str = "torch", **sampling):
    """Check the options, load the model: (pipeline, height, width, sampling keywords).

    The options given are checked against the limits (options.py) before the model loads, the model's defaults
    once it has loaded. The command warns of slow settings (`warn_slow`) once everything is checked."""
    from lightvid.pipelines.native import NativePipeline

    args = sampling_args(**sampling)  # the output path was checked with the inputs (_check_io)
    # the command's own lower bound (2 frames to animate, 3 to interpolate or loop) and lightvid's upper one; the
    # model's window, which may allow fewer, is checked once it has loaded
    high = MAX_FRAMES if frames_option == "--frames" else MAX_FRAMES - 1
    if frames is not None and frames < frames_low:
        raise LightvidError(f"{frames_option} must be at least {frames_low}, got {frames}")
    if frames is not None and frames > high:
        raise LightvidError(f"{frames_option} must be at most {high} (lightvid's limit; a model's window may allow "
                            f"fewer), got {frames}")
    check_size(height, width, frames if frames_option == "--frames" else None)
    check_runtime(runtime, bf16)
    pipe, _, note = NativePipeline.for_sampling(model, args["steps"], args["sampler"], network_dtype(bf16), runtime)
    if note is not None:
        typer.echo(note, err=True)
    s = pipe.settings
    if args["steps"] is None:  # the model's own step count: as bounded as --steps
        check_range("the model's default steps (pipeline.json)", s.steps, 1, MAX_STEPS)
    height, width = height if height is not None else s.height, width if width is not None else s.width
    check_size(height, width)
    if height % s.patch or width % s.patch:
        raise LightvidError(f"--height/--width must be multiples of {s.patch} for this model, got {height}x{width}")
    return pipe, height, width, args


def check_window_mode(mode: str) -> None:
    from lightvid.pipelines.windows import WINDOW_MODES
    if mode not in WINDOW_MODES:
        raise LightvidError(f"--windows must be one of {', '.join(WINDOW_MODES)}, got {mode!r}")


def check_runtime(runtime: str, bf16: bool) -> None:
    from lightvid.pipelines.native import RUNTIMES
    if runtime not in RUNTIMES:
        raise LightvidError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "torch" and bf16:
        raise LightvidError(f"--bf16 applies to --runtime torch; the {runtime} runtime runs the network as exported "
                            "(float32, or int8 from `lightvid export --quantize int8`)")


def _frames(value: int | None, default: int, low: int, high: int, what: str, option: str = "--frames") -> int:
    frames = value if value is not None else default
    if not low <= frames <= high:
        raise LightvidError(f"{option} must be in [{low}, {high}] for {what}, got {frames}")
    return frames


def _check_io(output: str, gif: bool, *images: Path, video: Path | None = None) -> None:
    """Before any work: the output (and its --gif preview) can be written without overwriting an input, and every
    input is a regular file (a video may also be a folder of frames; a FIFO or a device would hang the read); an
    image's header, size and (PNG) chunks are checked too, its pixels are decoded after the model has loaded."""
    from lightvid.io import VIDEO_INPUT, check_image, check_input, check_output_path

    inputs = [*images, *([video] if video is not None else [])]
    check_output_path(output, inputs=inputs, gif_preview=gif)
    for image in images:
        check_image(image)
    if video is not None:
        check_input(video, VIDEO_INPUT, folder_ok=True)


def _picture(path: Path, height: int, width: int):
    from lightvid.io import load_image, pil_to_tensor, resize_and_crop
    return pil_to_tensor(resize_and_crop(load_image(path), height, width))


def _write(video, output: str, fps: float, gif: bool) -> None:
    from lightvid.io import shown, write_video
    for path in write_video(video, output, fps=fps, gif_preview=gif):
        typer.echo(f"wrote {shown(path)}")


@app.command()
def animate(image: Annotated[Path, typer.Argument(help="The photo to animate (any image file, any size).")],
            output: Output, model: Model = "photo",
            frames: Annotated[int | None, typer.Option(help=f"{FRAMES}, IMAGE the first (default: the model's "
                                                       "window, 16 for photo); longer videos, up to "
                                                       f"{MAX_FRAMES} frames, are made as --windows says.")] = None,
            seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
            height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
            runtime: Runtime = "torch", windows: Windows = "chain",
            index: Annotated[int, typer.Option(help="Which output frame IMAGE is: 0 (the first, the default) to "
                                               "--frames - 1; the model makes the frames before and after it "
                                               "(MarDini's reference anywhere). With an index above 0, more "
                                               "frames than the model's window need --windows "
                                               "multidiffusion.")] = 0):
    """Animate IMAGE: it is the first frame (or frame --index); the model makes the motion around it."""
    from lightvid.pipelines.windows import continue_video_windows
    from lightvid.tasks import animate as animation

    _check_io(output, gif, image)
    check_window_mode(windows)
    pipe, h, w, args = _setup(output, model, height, width, bf16, frames, frames_low=2, seed=seed, steps=steps,
                              sampler=sampler, guidance=guidance, runtime=runtime)
    window = pipe.settings.num_frames
    total = _frames(frames, window, 2, MAX_FRAMES, "animate")
    if not 0 <= index < total:
        raise LightvidError(f"--index must be a frame of the {total}-frame output, 0 to {total - 1}; got {index}")
    if index and total > window and windows == "chain":
        raise LightvidError(f"--index {index} with {total} frames, more than this model's window ({window}), needs "
                            "--windows multidiffusion (a chain only continues forward from frame 0)")
    check_size(h, w, total)
    warn_slow(steps=steps, frames=frames)
    picture = _picture(image, h, w)
    if index:
        spec = animation(picture, total, pipe.settings.fps, index=index)
        video = pipe(spec, overlap=window // 2 if total > window else None, **args)
    else:
        video = continue_video_windows(pipe, picture[None], total, pipe.settings.fps, windows, **args)
    _write(video, output, pipe.settings.fps, gif)


@app.command()
def interpolate(first: Annotated[Path, typer.Argument(help="The first frame (an image file).")],
                last: Annotated[Path, typer.Argument(help="The last frame (an image file).")],
                output: Output, model: Model = "photo",
                frames: Annotated[int | None, typer.Option(help=f"{FRAMES}, FIRST and LAST included: 3 up to the "
                                                           "model's window (the default), or up to "
                                                           f"{MAX_FRAMES} with --windows multidiffusion.")] = None,
                seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
                height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
                runtime: Runtime = "torch",
                windows: Annotated[str, typer.Option(help="chain (the default: up to the model's window) or "
                                                     "multidiffusion (more frames than the window: every step "
                                                     "averaged over windows overlapping by half a window). A chain "
                                                     "continues forward, so it cannot reach LAST.")] = "chain"):
    """In-between frames from FIRST to LAST (FIRST is frame 0, LAST the final frame)."""
    from lightvid.tasks import interpolate as interpolation

    _check_io(output, gif, first, last)
    check_window_mode(windows)
    pipe, h, w, args = _setup(output, model, height, width, bf16, frames, frames_low=3, seed=seed, steps=steps,
                              sampler=sampler, guidance=guidance, runtime=runtime)
    window = pipe.settings.num_frames
    if windows == "multidiffusion":
        total = _frames(frames, window, 3, MAX_FRAMES, "interpolation with --windows multidiffusion")
    else:
        total = _frames(frames, window, 3, window, f"interpolation with --windows chain (this model's window is "
                        f"{window} frames; --windows multidiffusion makes more)")
    check_size(h, w, total)
    warn_slow(steps=steps, frames=frames)
    spec = interpolation(_picture(first, h, w), _picture(last, h, w), total, pipe.settings.fps)
    overlap = window // 2 if windows == "multidiffusion" else None
    _write(pipe(spec, overlap=overlap, **args), output, pipe.settings.fps, gif)


@app.command()
def extend(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames.")],
           output: Output, model: Model = "photo",
           new_frames: Annotated[int | None, typer.Option(help="New frames to add after VIDEO (default: half the "
                                                          "model's window); VIDEO's frames + new frames <= "
                                                          f"{MAX_FRAMES}. (--frames, elsewhere, counts every frame "
                                                          "of the output.)")] = None,
           seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
           height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
           runtime: Runtime = "torch", windows: Windows = "chain"):
    """Continue VIDEO (a video file or a folder of frames): the output is VIDEO, resampled to the model's frame
    rate and size, followed by the new frames."""
    from lightvid.io import read_video
    from lightvid.pipelines.windows import continue_video_windows

    _check_io(output, gif, video=video)
    check_window_mode(windows)
    pipe, h, w, args = _setup(output, model, height, width, bf16, new_frames, "--new-frames", seed=seed,
                              steps=steps, sampler=sampler, guidance=guidance, runtime=runtime)
    new = _frames(new_frames, pipe.settings.num_frames // 2, 1, MAX_FRAMES - 1, "extend", "--new-frames")
    # read one frame more than the limits allow, no more: enough to refuse a too-long video without decoding it all
    allowed = min(MAX_FRAMES, MAX_VIDEO_PIXELS // (h * w)) - new
    if allowed < 1:
        raise LightvidError(f"--new-frames {new} at {h}x{w} leaves no room for the video within the limits "
                            f"({MAX_FRAMES} frames, {MAX_VIDEO_PIXELS:,} pixels)")
    clip, _ = read_video(video, fps=pipe.settings.fps, size=(h, w), max_frames=allowed + 1)
    if clip.shape[0] > allowed:
        raise LightvidError(f"{video} has more than {allowed} frames at {pipe.settings.fps:g} fps: with --new-frames "
                            f"{new} at {h}x{w} the result would pass the limits ({MAX_FRAMES} frames, "
                            f"{MAX_VIDEO_PIXELS:,} pixels)")
    check_size(h, w, clip.shape[0] + new)
    warn_slow(steps=steps, new_frames=new_frames)
    video = continue_video_windows(pipe, clip, clip.shape[0] + new, pipe.settings.fps, windows, **args)
    _write(video, output, pipe.settings.fps, gif)


@app.command()
def loop(image: Annotated[Path, typer.Argument(help="The first frame of the loop (an image file).")],
         output: Output, model: Model = "photo",
         frames: Annotated[int | None, typer.Option(help=f"{FRAMES}: one period of the loop, IMAGE the first; 3 up "
                                                    "to the model's window - 1 (the default), longer (up to "
                                                    f"{MAX_FRAMES - 1}) in windows.")] = None,
         seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
         height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
         runtime: Runtime = "torch",
         windows: Annotated[str, typer.Option(help="For a period longer than the model's window: how the way out "
                                              "(the first half) is made, chain (the default) or multidiffusion; "
                                              "the way back is always made by multidiffusion (a chain cannot "
                                              "reach IMAGE at the end).")] = "chain"):
    """A seamless loop starting at IMAGE: played on repeat, the last frame leads back to the first.

    Two passes: image-to-video over the first half of the period, then the way back to IMAGE is generated with
    those frames given (a one-pass loop, IMAGE at both ends, barely moves with a flow-hinted model). Periods past
    the model's window are made in windows (--windows).

    Prints the seam measure: the jump from the last frame back to the first beside the median frame-to-frame step,
    as mean absolute differences in 8-bit gray levels (0-255).
    """
    from lightvid.eval.metrics import loop_seam
    from lightvid.pipelines.loops import sample_loop

    _check_io(output, gif, image)
    check_window_mode(windows)
    pipe, h, w, args = _setup(output, model, height, width, bf16, frames, frames_low=3, seed=seed, steps=steps,
                              sampler=sampler, guidance=guidance, runtime=runtime)
    window = pipe.settings.num_frames
    period = _frames(frames, window - 1, 3, MAX_FRAMES - 1, "a loop")
    check_size(h, w, period + 1)
    warn_slow(steps=steps, frames=frames)
    video = sample_loop(pipe, _picture(image, h, w), period, windows, **args)
    seam = loop_seam(video)
    typer.echo(f"loop seam: last->first step {255 * seam['seam']:.2f} gray levels, median step "
               f"{255 * seam['median_step']:.2f}, max step {255 * seam['max_step']:.2f} (ratio {seam['ratio']:.2f})")
    _write(video, output, pipe.settings.fps, gif)
