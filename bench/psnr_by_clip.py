"""Interpolation PSNR clip by clip and frame by frame, a model beside Farneback: where a mean PSNR is won or lost.

    python bench/psnr_by_clip.py MODEL [--split train] [--clips 8] [--steps N] [--sampler S]

First + last frame given (as `lightvid eval --task interpolate`), clip i sampled with seed i. A mean of PSNRs
weighs easy clips heavily: a clip that Farneback interpolates to 40 dB loses 3 dB to a faint noise floor that
costs a hard 18 dB clip nothing. The train split (default) lets a run be watched without the test clips.

Beside Farneback (the baseline, a fixed (1 - t, t) blend of its two warps) is printed `farneback_visible`: each
warp weighted by (1 - t) or t only where it samples inside its frame (renormalised), the simplest visibility
reasoning; and `farneback_global`, the same on flow whose camera motion is fitted first (keypoints + RANSAC), the
hint of a native_flow_blend model whose config says flow "farneback_global" (the shipped photo). They say how
much of a model's gain its hint already gives.
"""
import argparse

import torch

from lightvid.data import build_dataset
from lightvid.eval.baselines import BASELINES
from lightvid.eval.evaluate import task_spec
from lightvid.eval.metrics import psnr
from lightvid.pipelines.native import NativePipeline
from lightvid.weights import model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an embedded model name or a native model folder")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's own)")
    parser.add_argument("--sampler", default=None, help="sampler (default: the model's own)")
    args = parser.parse_args()

    pipe = NativePipeline.from_pretrained(model_folder(args.model))
    s = pipe.settings
    data = build_dataset(pipe.facts["dataset"], split=args.split, num_frames=s.num_frames, size=s.height)
    baselines = ("farneback", "farneback_visible", "farneback_global")
    rows = {"model": [], **{name: [] for name in baselines}}  # each: per clip, (generated frames,) PSNR
    for i in range(args.clips):
        real, _ = data[i]  # (F, C, H, W)
        spec = task_spec("interpolate", real, s.fps)
        generated = ~spec.frame_mask()[: spec.output_frames]  # (F,) bool
        out = pipe(spec, steps=args.steps, sampler=args.sampler, generator=torch.Generator().manual_seed(i),
                   progress=False)
        rows["model"].append(psnr(out[generated], real[generated]))
        for name in baselines:
            filled = BASELINES[name](real * (~generated)[:, None, None, None], ~generated)
            rows[name].append(psnr(filled[generated], real[generated]))
    print(f"{args.model}: interpolation (first + last), {args.clips} {args.split} clips, PSNR dB")
    for name, per_clip in rows.items():
        table = torch.stack(per_clip)  # (clips, generated frames)
        print(f"{name:17s} mean {table.mean():.2f} | per clip {' '.join(f'{v:.1f}' for v in table.mean(1))}"
              f" | per frame {' '.join(f'{v:.1f}' for v in table.mean(0))}")


if __name__ == "__main__":
    main()
