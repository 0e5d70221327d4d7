"""How much each frame changes from the one before: mean |frame t+1 − frame t| (pixels in [-1, 1]).

    python bench/frame_steps.py runs/mnist-1step mnist [--task interpolate] [--clip 0] [--seed 0]

One held-out test clip per model, sampled with each model's defaults. A video that fades into a still frame
shows large steps next to the given frames and near-zero ones between them.
"""
import argparse

import torch

from lightvid.data import build_dataset
from lightvid.eval.evaluate import TASKS, task_spec
from lightvid.pipelines.native import NativePipeline
from lightvid.weights import model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="embedded names or native model folders (the same dataset)")
    parser.add_argument("--task", default="interpolate", choices=TASKS)
    parser.add_argument("--clip", type=int, default=0, help="index in the test split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models:
        pipe = NativePipeline.from_pretrained(model_folder(name))
        s = pipe.settings
        data = build_dataset(pipe.facts["dataset"], split="test", num_frames=s.num_frames, size=s.height)
        real, fps = data[args.clip]
        spec = task_spec(args.task, real.expand(-1, 3, -1, -1), fps)
        video = pipe(spec, generator=torch.Generator().manual_seed(args.seed), progress=False)  # (F, 3, H, W)
        steps = (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))
        print(f"{name} ({s.steps} {s.sampler} steps): " + " ".join(f"{x:.3f}" for x in steps.tolist()))


if __name__ == "__main__":
    main()
