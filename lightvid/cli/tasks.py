"""`lightvid animate | interpolate | extend | loop`: every native task with one model (default: the embedded
`photo`). Inputs of any size are resized to cover the model's frame size (aspect ratio kept) and center-cropped;
the given frames appear in the output unchanged.
"""
from pathlib import Path
from typing import Annotated

import typer

from .app import app, as_list, check_positive

Model = Annotated[str, typer.Option("--model", help="An embedded model (photo, mnist) or a native model folder "
                                    "(e.g. runs/NAME/model from `lightvid train`).")]
Output = Annotated[str, typer.Option("-o", "--output", help="Output: .mp4 (H.264), .gif, .webm, or a folder path "
                                     "ending in '/' for lossless PNG frames.")]
Seed = Annotated[int, typer.Option(help="Random seed: the same seed and settings give the same video.")]
Steps = Annotated[int | None, typer.Option(help="Sampling steps (default: the model's, 25 for the defaults).")]
Sampler = Annotated[str | None, typer.Option(help="euler, euler_ancestral, heun or dpmpp_2m (default: the "
                                             "model's, heun).")]
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale; 1 = off (one model call per step).")]
Gif = Annotated[bool, typer.Option("--gif", help="Also write a GIF preview next to the output.")]
Size = Annotated[int | None, typer.Option(help="Frame size in pixels (default: the model's, 128 for photo); "
                                          "a multiple of the model's patch size.")]


def _pipeline(model: str, height: int | None, width: int | None):
    """The model's pipeline and the output (height, width)."""
    from lightvid.pipelines.native import NativePipeline
    from lightvid.weights import model_folder

    pipe = NativePipeline.from_pretrained(model_folder(model))
    s = pipe.settings
    height, width = height or s.height, width or s.width
    check_positive(height=height, width=width)
    if height % s.patch or width % s.patch:
        from lightvid.errors import LightvidError
        raise LightvidError(f"--height/--width must be multiples of {s.patch} for this model, got {height}x{width}")
    return pipe, height, width


def _picture(path: Path, height: int, width: int):
    from lightvid.io import load_image, pil_to_tensor, resize_and_crop
    return pil_to_tensor(resize_and_crop(load_image(path), height, width))


def _sample_args(seed: int, steps: int | None, sampler: str | None, guidance: float) -> dict:
    import torch

    from lightvid.diffusion import get_sampler
    if steps is not None:
        check_positive(steps=steps)
    if sampler is not None:
        get_sampler(sampler)  # a clear error for an unknown name, before any work
    return dict(steps=steps, sampler=sampler, guidance=guidance, generator=torch.Generator().manual_seed(seed))


def _write(video, output: str, fps: float, gif: bool) -> None:
    from lightvid.io import write_video
    for path in as_list(write_video(video, output, fps=fps, gif_preview=gif)):
        typer.echo(f"wrote {path}")


def _check_output(output: str) -> None:
    from lightvid.io import check_output_path
    check_output_path(output)


@app.command()
def animate(image: Annotated[Path, typer.Argument(help="The photo to animate (any image file, any size).")],
            output: Output, model: Model = "photo",
            frames: Annotated[int | None, typer.Option(help="Frames in the video, the image included (default: "
                                                       "the model's window, 16 for photo); longer videos are "
                                                       "made one window at a time.")] = None,
            seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
            height: Size = None, width: Size = None, gif: Gif = False):
    """Animate IMAGE: it is the first frame; the model makes the motion that follows."""
    from lightvid.pipelines.windows import continue_video

    _check_output(output)
    args = _sample_args(seed, steps, sampler, guidance)
    pipe, h, w = _pipeline(model, height, width)
    picture = _picture(image, h, w)
    video = continue_video(pipe, picture[None], frames or pipe.settings.num_frames, pipe.settings.fps, **args)
    _write(video, output, pipe.settings.fps, gif)


@app.command()
def interpolate(first: Annotated[Path, typer.Argument(help="The first frame (an image file).")],
                last: Annotated[Path, typer.Argument(help="The last frame (an image file).")],
                output: Output, model: Model = "photo",
                frames: Annotated[int | None, typer.Option(help="Frames in the video, FIRST and LAST included "
                                                           "(default: the model's window).")] = None,
                seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
                height: Size = None, width: Size = None, gif: Gif = False):
    """In-between frames from FIRST to LAST (FIRST is frame 0, LAST the final frame)."""
    from lightvid.pipelines.windows import run_spec
    from lightvid.tasks import interpolate as interpolation

    _check_output(output)
    args = _sample_args(seed, steps, sampler, guidance)
    pipe, h, w = _pipeline(model, height, width)
    spec = interpolation(_picture(first, h, w), _picture(last, h, w), frames or pipe.settings.num_frames,
                         pipe.settings.fps)
    _write(run_spec(pipe, spec, **args), output, pipe.settings.fps, gif)


@app.command()
def extend(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames.")],
           output: Output, model: Model = "photo",
           frames: Annotated[int | None, typer.Option(help="New frames to add after the video (default: half "
                                                      "the model's window).")] = None,
           seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
           height: Size = None, width: Size = None, gif: Gif = False):
    """Continue VIDEO (a video file or a folder of frames): the output is VIDEO, resampled to the model's frame
    rate and size, followed by the new frames."""
    from lightvid.io import read_video
    from lightvid.pipelines.windows import continue_video

    _check_output(output)
    args = _sample_args(seed, steps, sampler, guidance)
    pipe, h, w = _pipeline(model, height, width)
    new = frames if frames is not None else pipe.settings.num_frames // 2
    check_positive(frames=new)
    clip, _ = read_video(video, fps=pipe.settings.fps, size=(h, w))
    _write(continue_video(pipe, clip, clip.shape[0] + new, pipe.settings.fps, **args), output, pipe.settings.fps, gif)


@app.command()
def loop(image: Annotated[Path, typer.Argument(help="The first frame of the loop (an image file).")],
         output: Output, model: Model = "photo",
         frames: Annotated[int | None, typer.Option(help="Frames in one period of the loop (default: the model's "
                                                    "window - 1).")] = None,
         seed: Seed = 0, steps: Steps = None, sampler: Sampler = None, guidance: Guidance = 1.0,
         height: Size = None, width: Size = None, gif: Gif = False):
    """A seamless loop starting at IMAGE: played on repeat, the last frame leads back to the first.

    Prints the seam measure: the jump from the last frame back to the first beside the median frame-to-frame step.
    """
    from lightvid.eval.metrics import loop_seam
    from lightvid.pipelines.windows import run_spec
    from lightvid.tasks import loop as looping

    _check_output(output)
    args = _sample_args(seed, steps, sampler, guidance)
    pipe, h, w = _pipeline(model, height, width)
    spec = looping(_picture(image, h, w), frames or pipe.settings.num_frames - 1, pipe.settings.fps)
    video = run_spec(pipe, spec, **args)
    seam = loop_seam(video)
    typer.echo(f"loop seam: last->first step {seam['seam']:.4f}, median step {seam['median_step']:.4f}, "
               f"max step {seam['max_step']:.4f} (ratio {seam['ratio']:.2f})")
    _write(video, output, pipe.settings.fps, gif)
