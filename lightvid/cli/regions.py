"""`lightvid inpaint | cinemagraph`: regenerate or animate the white region of a mask; every other pixel is kept."""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError

from .app import app, check_size, warn_slow
from .options import (
    FRAMES,
    MAX_FRAMES,
    MAX_VIDEO_PIXELS,
    Bf16,
    Gif,
    Height,
    Model,
    Output,
    Runtime,
    Sampler,
    Seed,
    Steps,
    Width,
)
from .tasks import _check_io, _frames, _picture, _setup, _write

MASK_HELP = ("white = {what}, black = keep (grey levels thresholded at 128); the size of {of}, resized and cropped "
             "as {of_short} is")


def _check_mask(mask: Path, output: str) -> None:
    from lightvid.io import check_input, check_output_path
    check_input(mask, "the mask (an image, a folder of images or a video)", folder_ok=True)
    check_output_path(output, inputs=[mask])


@app.command()
def inpaint(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames.")],
            mask: Annotated[Path, typer.Argument(help="One image for every frame, or a folder of images or a video "
                                                 "with one mask per frame: " + MASK_HELP.format(
                                                     what="regenerate", of="VIDEO's frames", of_short="VIDEO"))],
            output: Output, model: Model = "photo", seed: Seed = 0, steps: Steps = None, sampler: Sampler = None,
            height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
            runtime: Runtime = "torch"):
    """Regenerate the white region of MASK in every frame of VIDEO, from what the frames show around it and before
    and after it. Every other pixel is VIDEO's, exactly (PNG output keeps it bit for bit), at VIDEO's frame rate.

    VIDEO is resized to cover the model's frame size (or the size that --height and --width give) and
    center-cropped. A clip longer than the model's window is sampled by temporal MultiDiffusion (windows
    overlapping by half a window).
    """
    from lightvid.io import read_video, read_video_uint8, shown
    from lightvid.io.masks import fit_regions, read_mask
    from lightvid.tasks import inpaint as inpainting

    _check_io(output, gif, video=video)
    _check_mask(mask, output)
    source = read_video_uint8(video, max_frames=1)[0].shape[1:3]
    most = min(MAX_FRAMES, MAX_VIDEO_PIXELS // (source[0] * source[1]))  # masks read at the video's own size
    white = read_mask(mask, source, max_frames=most + 1)  # its size and colours checked before the model loads
    pipe, h, w, args = _setup(output, model, height, width, bf16, seed=seed, steps=steps, sampler=sampler,
                              runtime=runtime)
    allowed = min(MAX_FRAMES, MAX_VIDEO_PIXELS // (h * w))
    clip, fps = read_video(video, size=(h, w), max_frames=allowed + 1)
    if clip.shape[0] > allowed:
        raise LightvidError(f"{video} has more than {allowed} frames at {h}x{w} (the limits: {MAX_FRAMES} frames, "
                            f"{MAX_VIDEO_PIXELS:,} pixels)")
    regions = fit_regions(white, clip.shape[0], (h, w), shown(mask))
    warn_slow(steps=steps, frames=clip.shape[0])
    spec = inpainting(clip, regions, fps)
    _write(pipe(spec, overlap=pipe.settings.num_frames // 2, **args), output, fps, gif)


@app.command()
def cinemagraph(image: Annotated[Path, typer.Argument(help="The photo (an image file).")],
                mask: Annotated[Path, typer.Argument(help="One image: " + MASK_HELP.format(
                    what="animate", of="IMAGE", of_short="IMAGE"))],
                output: Output, model: Model = "photo",
                frames: Annotated[int | None, typer.Option(help=f"{FRAMES}, IMAGE the first (default: the model's "
                                                           f"window, 16 for photo), up to {MAX_FRAMES}; beyond the "
                                                           "window by temporal MultiDiffusion.")] = None,
                seed: Seed = 0, steps: Steps = None, sampler: Sampler = None,
                height: Height = None, width: Width = None, gif: Gif = False, bf16: Bf16 = False,
                runtime: Runtime = "torch"):
    """Animate only the white region of MASK in IMAGE: every pixel outside it is IMAGE's in every frame.

    Prints how much the region moves: its mean frame-to-frame change, in 8-bit gray levels (0-255).
    """
    from lightvid.eval.metrics import region_step
    from lightvid.io import load_image, shown
    from lightvid.io.masks import fit_regions, read_mask
    from lightvid.tasks import cinemagraph as cinemagraph_spec

    _check_io(output, gif, image, mask)
    width_px, height_px = load_image(image).size
    white = read_mask(mask, (height_px, width_px), of="the image's")
    pipe, h, w, args = _setup(output, model, height, width, bf16, frames, frames_low=2, seed=seed, steps=steps,
                              sampler=sampler, runtime=runtime)
    window = pipe.settings.num_frames
    total = _frames(frames, window, 2, MAX_FRAMES, "a cinemagraph")
    check_size(h, w, total)
    region = fit_regions(white, 1, (h, w), shown(mask))[0]
    warn_slow(steps=steps, frames=frames)
    spec = cinemagraph_spec(_picture(image, h, w), region, total, pipe.settings.fps)
    video = pipe(spec, overlap=window // 2, **args)
    typer.echo(f"region: mean frame-to-frame change {255 * region_step(video, region[None]):.2f} gray levels")
    _write(video, output, pipe.settings.fps, gif)
