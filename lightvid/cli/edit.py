"""`lightvid edit`: instruction-guided video editing with anchor cross-frame attention (Fairy)."""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError
from lightvid.weights import EDITOR, editor_folder

from .app import app, check_finite, check_range, check_seed
from .options import (
    MAX_ANCHORS,
    MAX_BATCH,
    MAX_FRAMES,
    MAX_SIDE,
    MAX_STEPS,
    MAX_VIDEO_PIXELS,
    MAX_WORKERS,
    Gif,
    Output,
    Seed,
)
from .tasks import _check_io, _write


@app.command()
def edit(video: Annotated[Path, typer.Argument(help="A video file (mp4, webm, gif, ...) or a folder of frames.")],
         instruction: Annotated[str, typer.Argument(help='What to do, e.g. "make it black and white". The embedded '
                                                    "editor reads ten edits and paraphrases of them; an instruction "
                                                    "it cannot read is an error that lists them.")],
         output: Output,
         model: Annotated[str, typer.Option(help=f"The editor: {EDITOR} (embedded, 22 MB, pixel space) or "
                                            "a folder: a lightvid editor (pipeline.json, unet/, text_encoder/) or an "
                                            "InstructPix2Pix folder in diffusers format (model_index.json, unet/, "
                                            "vae/, text_encoder/, tokenizer/, scheduler/).")] = EDITOR,
         anchors: Annotated[int | None, typer.Option(help=f"Anchor frames, evenly spaced, edited together first; "
                                                     "every frame then attends to its own and the anchors' keys "
                                                     f"and values (0 = each frame on its own; up to {MAX_ANCHORS}; "
                                                     "default: the editor's, 3).")] = None,
         steps: Annotated[int | None, typer.Option(help=f"Euler ancestral steps (1 to {MAX_STEPS}; default: the "
                                                   "editor's, 10).")] = None,
         guidance_text: Annotated[float | None, typer.Option(help="How strongly the instruction is followed "
                                                             "(InstructPix2Pix's text guidance; 1 = no guidance; "
                                                             "default: the editor's: 1 for the embedded one, 7.5 "
                                                             "for diffusers folders).")] = None,
         guidance_image: Annotated[float | None, typer.Option(help="How closely the frames are kept (image "
                                                              "guidance; 1 = no guidance; default: the editor's: 1 "
                                                              "for the embedded one, 1.5 for diffusers "
                                                              "folders).")] = None,
         size: Annotated[int | None, typer.Option(help="The longer side frames are edited (and written) at, the "
                                                  "aspect kept, both sides rounded to the editor's multiple "
                                                  "(default: the editor's, 256 for the embedded one).")] = None,
         workers: Annotated[int | None, typer.Option(help="Processes that edit frames after the anchor pass "
                                                     "(torch.distributed, gloo), one CPU thread each; any count "
                                                     "gives the same video, bit for bit (default: the CPUs this "
                                                     f"process may use; up to {MAX_WORKERS}).")] = None,
         batch: Annotated[int, typer.Option(help=f"Frames edited together in one chunk (1 to {MAX_BATCH}).")] = 4,
         seed: Seed = 0, gif: Gif = False):
    """Edit every frame of VIDEO as INSTRUCTION says, consistently across frames (Fairy's anchor attention).

    The anchor frames are edited together, their attention keys and values cached for every layer and step; every
    frame is then edited against that cache alone, so frames are split across --workers processes with the same
    result as one. All frames start from the same noise. Output at VIDEO's frame rate.
    """
    from lightvid.edit.editor import Editor
    from lightvid.edit.pipeline import EditPlan, editing_size, prepare_frames
    from lightvid.edit.workers import available_cpus, edit_video
    from lightvid.io import read_video_uint8

    check_seed(seed)
    check_range("--anchors", anchors, 0, MAX_ANCHORS)
    check_range("--steps", steps, 1, MAX_STEPS)
    check_range("--size", size, 16, MAX_SIDE)
    check_range("--workers", workers, 1, MAX_WORKERS)
    check_range("--batch", batch, 1, MAX_BATCH)
    check_finite(guidance_text=guidance_text, guidance_image=guidance_image)
    _check_io(output, gif, video=video)
    folder = editor_folder(model)
    editor = Editor.from_pretrained(folder)
    editor.check_instruction(instruction)
    s = editor.settings
    source = read_video_uint8(video, max_frames=1)[0].shape[1:3]
    height, width = editing_size(*source, size or s.size, editor.pixel_multiple)
    allowed = min(MAX_FRAMES, MAX_VIDEO_PIXELS // (height * width))
    frames, fps = read_video_uint8(video, max_frames=allowed + 1, size=(height, width))  # read at the editing size
    if frames.shape[0] > allowed:
        raise LightvidError(f"{video} has more than {allowed} frames at {height}x{width} (the limits: {MAX_FRAMES} "
                            f"frames, {MAX_VIDEO_PIXELS:,} pixels): lower --size or edit the video in parts")
    plan = EditPlan(instruction, steps or s.steps,
                    s.guidance_text if guidance_text is None else guidance_text,
                    s.guidance_image if guidance_image is None else guidance_image,
                    s.anchors if anchors is None else anchors, seed, batch)
    edited = edit_video(folder, prepare_frames(frames, (height, width)), plan,
                        workers or min(available_cpus(), MAX_WORKERS), editor=editor)
    _write(edited, output, fps, gif)
