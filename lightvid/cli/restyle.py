"""`lightvid restyle`: SDEdit over a whole clip, optionally with style weights."""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError

from .app import app, check_finite, check_size, warn_slow
from .options import MAX_FRAMES, MAX_VIDEO_PIXELS, Gif, Height, Model, Output, Sampler, Seed, Steps, Width
from .tasks import _check_io, _write, sampling_args


@app.command()
def restyle(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames.")],
            output: Output, model: Model = "photo",
            strength: Annotated[float, typer.Option(help="How far the clip is noised before the model redraws it: "
                                                    "a level in (0, 1] of the model's noise schedule (1: from pure "
                                                    "noise, nothing of VIDEO kept; 0.3: its layout and colours "
                                                    "kept, details redrawn).")] = 0.5,
            style_weights: Annotated[Path | None, typer.Option(help="A second model folder of the same "
                                                               "architecture (a finetuned copy of --model): sample "
                                                               "with its weights blended in by --alpha.")] = None,
            alpha: Annotated[float | None, typer.Option(help="With --style-weights: W = alpha·W_style + (1 - "
                                                        "alpha)·W_model, in [0, 1] (default 1: the style model "
                                                        "itself).")] = None,
            seed: Seed = 0, steps: Steps = None, sampler: Sampler = None,
            height: Height = None, width: Width = None, gif: Gif = False):
    """Redraw VIDEO with the model (SDEdit): noise it to --strength, denoise with nothing given.

    Every frame is redrawn, none is kept exactly. The model itself samples (not a few-step student, which knows
    its own noise levels only), with its own steps and sampler unless --steps/--sampler say otherwise; a clip
    longer than its window is sampled by temporal MultiDiffusion (windows overlapping by half a window).
    """
    import torch

    from lightvid.io import read_video
    from lightvid.pipelines.native import NativePipeline
    from lightvid.pipelines.style import blend_weights
    from lightvid.tasks import FrameSpec
    from lightvid.weights import model_folder

    _check_io(output, gif, video=video)
    check_finite(strength=strength)
    if not 0 < strength <= 1:
        raise LightvidError(f"--strength must be in (0, 1], got {strength}")
    if alpha is not None and style_weights is None:
        raise LightvidError("--alpha needs --style-weights DIR (the model to blend in)")
    if style_weights is not None:
        check_finite(alpha=1.0 if alpha is None else alpha)
        if not 0 <= (1.0 if alpha is None else alpha) <= 1:
            raise LightvidError(f"--alpha must be in [0, 1], got {alpha}")
    args = sampling_args(seed, steps, sampler)
    check_size(height, width)
    pipe = NativePipeline.from_pretrained(model_folder(model))
    if style_weights is not None:
        pipe = blend_weights(pipe, NativePipeline.from_pretrained(model_folder(str(style_weights))),
                             1.0 if alpha is None else alpha)
    s = pipe.settings
    h, w = height if height is not None else s.height, width if width is not None else s.width
    check_size(h, w)
    if h % s.patch or w % s.patch:
        raise LightvidError(f"--height/--width must be multiples of {s.patch} for this model, got {h}x{w}")
    allowed = min(MAX_FRAMES, MAX_VIDEO_PIXELS // (h * w))
    clip, _ = read_video(video, fps=s.fps, size=(h, w), max_frames=allowed + 1)
    if clip.shape[0] > allowed:
        raise LightvidError(f"{video} has more than {allowed} frames at {s.fps:g} fps and {h}x{w} (the limits: "
                            f"{MAX_FRAMES} frames, {MAX_VIDEO_PIXELS:,} pixels)")
    warn_slow(steps=steps, frames=clip.shape[0])
    spec = FrameSpec(clip.shape[0], s.fps, height=h, width=w)
    with torch.no_grad():
        result = pipe(spec, overlap=s.num_frames // 2, init=clip, strength=strength, **args)
    _write(result, output, s.fps, gif)
