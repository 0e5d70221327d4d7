"""Train lightvid's own video encoder (for FD-lightvid, which is not FVD) on a dataset's train split.

Writes one safetensors file (weights, config and training settings in its metadata) and prints the
loss every `--log-every` steps. Clips are the dataset's defaults: Moving MNIST 20×64×64 grey,
camera motion 16×128×128 RGB.

    .venv/bin/python tools/train_video_encoder.py --dataset moving_mnist --steps 2000 -o runs/fd_mnist.safetensors
"""

import argparse
import sys
import time

import torch

from lightvid.data import build_dataset
from lightvid.errors import LightvidError
from lightvid.eval.video_encoder import train_video_encoder

DATASETS = {  # name: build_dataset kwargs of the train split
    "moving_mnist": dict(split="train", num_frames=20, size=64),
    "camera_motion": dict(split="train", num_frames=16, size=128),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("-o", "--output", required=True, help="path of the .safetensors file to write")
    args = parser.parse_args(argv)
    if not args.output.endswith(".safetensors"):
        parser.error("-o must name a .safetensors file")
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()

    def log(step: int, parts: dict[str, float]) -> None:
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            values = "  ".join(f"{k} {v:.4f}" for k, v in parts.items())
            print(f"step {step + 1}/{args.steps}  {values}  ({time.perf_counter() - start:.0f} s)", flush=True)

    try:
        dataset = build_dataset(args.dataset, seed=args.seed, **DATASETS[args.dataset])
        encoder = train_video_encoder(dataset, args.steps, args.batch_size, args.seed, progress=False, lr=args.lr,
                                      callback=log)
        encoder.train_info["dataset"] = args.dataset
        encoder.save(args.output)
    except LightvidError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
