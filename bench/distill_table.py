"""Teacher vs distilled students, side by side in one run: speed and quality.

    python bench/distill_table.py mnist runs/mnist-1step runs/mnist-4step [--teacher-steps 25,50]
        [--teacher-renoise 1,4] [--clips 32] [--bf16]

Rows: the teacher with its own sampler at each of --teacher-steps; the teacher with the students' sampler
(re-noising, student_sigmas) at each of --teacher-renoise, i.e. what the same step count gives without
distillation; then each student with its own defaults (its step count and the re-noising sampler). With --bf16
every row is followed by the same run with the network in bfloat16 (the commands' --bf16), measured in the same run.
Columns, all on the first `clips` held-out test clips:
- s per clip: median wall-clock of one interpolation clip (sampling; pixel-space models have no VAE to decode);
- video-s per s: clip duration (frames / fps) over that;
- interpolation (first + last given): PSNR, SSIM, FD-lightvid;
- loop (num_frames - 1 frames on repeat from one given frame, made in two passes as `lightvid loop` does): the
  seam ratio (jump last -> first over the median frame step; 1 = as smooth as any step), the jump and the median
  step themselves in 8-bit gray levels (mean |difference| × 255: on a nearly still loop the ratio divides by
  sub-level flicker), and FD-lightvid.
Prints a markdown table; -o FILE.json saves the rows.
"""
import argparse
from pathlib import Path

import torch
from report import print_table, save_rows

from lightvid.eval.evaluate import evaluate
from lightvid.eval.video_encoder import VideoEncoder
from lightvid.pipelines.native import NativePipeline
from lightvid.weights import WEIGHTS_DIR, model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher", help="the teacher (embedded name or folder)")
    parser.add_argument("students", nargs="+", help="student model folders (lightvid distill outputs)")
    parser.add_argument("--teacher-steps", default="25,50", help="comma-separated; '' for none")
    parser.add_argument("--teacher-renoise", default="", help="comma-separated step counts; '' for none")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("-o", "--output", type=Path, help="also write the rows to this .json file")
    parser.add_argument("--bf16", action="store_true", help="also run every row with the network in bfloat16")
    args = parser.parse_args()

    dtypes = (torch.float32, torch.bfloat16) if args.bf16 else (torch.float32,)

    def load(folder: str) -> dict:  # dtype -> pipeline
        return {d: NativePipeline.from_pretrained(model_folder(folder), d) for d in dtypes}

    def both(name: str, pipes: dict, steps, sampler) -> list:
        return [(name + (", bf16" if d == torch.bfloat16 else ""), pipes[d], steps, sampler) for d in dtypes]

    teachers = load(args.teacher)
    teacher = teachers[torch.float32]
    own = teacher.settings.sampler
    runs = [r for n in _counts(args.teacher_steps) for r in both(f"teacher, {n} {own} steps", teachers, n, None)]
    runs += [r for n in _counts(args.teacher_renoise)
             for r in both(f"teacher, {n} re-noising steps", teachers, n, "renoise")]
    for folder in args.students:
        students = load(folder)
        steps = students[torch.float32].settings.steps
        runs += both(f"student {Path(folder).name}, {steps} steps", students, None, None)
    dataset = teacher.facts["dataset"]
    encoder = VideoEncoder.load(WEIGHTS_DIR / "encoders" / f"{dataset}.safetensors")
    s = teacher.settings
    duration = s.num_frames / s.fps

    rows = []
    for name, pipe, steps, sampler in runs:
        interp = evaluate(pipe, dataset, "interpolate", clips=args.clips, steps=steps, sampler=sampler,
                          encoder=encoder, model_name=name)
        looped = evaluate(pipe, dataset, "loop", clips=args.clips, steps=steps, sampler=sampler, encoder=encoder,
                          model_name=name)
        a, b = interp.results["model"], looped.results["model"]
        rows.append(dict(run=name, steps=interp.steps, seconds_per_clip=interp.seconds_per_clip,
                         video_seconds_per_second=duration / interp.seconds_per_clip, psnr=a["psnr"],
                         ssim=a["ssim"], fd_lightvid=a["fd_lightvid"], seam_ratio=b["seam_ratio"],
                         seam_levels=b["seam_levels"], step_levels=b["step_levels"],
                         loop_fd_lightvid=b["fd_lightvid"]))
    print_table(f"{dataset}, {args.clips} held-out clips, {torch.get_num_threads()} threads",
                ["run", "s per clip", "video-s per s", "interp. PSNR", "SSIM", "FD-lightvid", "loop seam ratio",
                 "seam / step (levels)",
                 "loop FD"],
                [[r["run"], f"{r['seconds_per_clip']:.2f}", f"{r['video_seconds_per_second']:.2f}", f"{r['psnr']:.2f}",
                  f"{r['ssim']:.3f}", f"{r['fd_lightvid']:.2f}", f"{r['seam_ratio']:.2f}",
                  f"{r['seam_levels']:.2f} / {r['step_levels']:.2f}",
                  f"{r['loop_fd_lightvid']:.2f}"] for r in rows])
    save_rows(args.output, rows)


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


if __name__ == "__main__":
    main()
