"""How much a model's image-to-video moves, and how grainy its frames get, beside the real clips.

    python bench/animate_motion.py [--model photo] [--clips 6] [--sampler S --steps N]

For held-out test clips i = 0, 7, 14, ... (spread over the split), the model animates frame 0 (seed i) and the
camera-motion ground truth is the real clip. Motion = mean Farneback flow magnitude, in pixels, from the first
to the last frame (a mean, not a median: flat sky gives zero flow, and a median then hides a moving camera).
Grain = standard deviation of the last frame's Laplacian (grey levels 0-255): a noisy sample scores higher than
the real frame.
"""
import argparse

import cv2
import numpy as np
import torch

from lightvid.data import build_dataset
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import animate
from lightvid.weights import model_folder

CLIP_STRIDE = 7  # test clips 0, 7, 14, ...: consecutive clips often share a photo and a camera path type


def grey(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W) uint8."""
    rgb = ((frame.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def motion(frames: torch.Tensor) -> float:
    """Mean flow magnitude (px) from the first to the last of (F, 3, H, W) frames."""
    flow = cv2.calcOpticalFlowFarneback(grey(frames[0]), grey(frames[-1]), None, 0.5, 4, 15, 3, 5, 1.2, 0)
    return float(np.linalg.norm(flow, axis=-1).mean())


def grain(frames: torch.Tensor) -> float:
    return float(cv2.Laplacian(grey(frames[-1]).astype(np.float32), cv2.CV_32F).std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="photo", help="an embedded model name or a native model folder")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--sampler", help="default: the model's own")
    parser.add_argument("--steps", type=int, help="default: the model's own")
    args = parser.parse_args()
    pipe = NativePipeline.from_pretrained(model_folder(args.model))
    s = pipe.settings
    data = build_dataset(pipe.facts["dataset"], split="test", num_frames=s.num_frames, size=s.height)
    rows = []
    for i in range(0, args.clips * CLIP_STRIDE, CLIP_STRIDE):
        real = data[i][0]  # (F, 3, H, W)
        spec = animate(real[0], s.num_frames, fps=s.fps)
        made = pipe(spec, steps=args.steps, sampler=args.sampler, generator=torch.Generator().manual_seed(i),
                    progress=False)
        rows.append((i, motion(made), motion(real), grain(made), grain(real)))
    print(f"{args.model}, sampler {args.sampler or s.sampler}, {args.steps or s.steps} steps")
    print("| test clip | motion model (px) | motion real (px) | grain model | grain real |\n|---|---|---|---|---|")
    for i, *values in rows:
        print(f"| {i} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    means = np.array([r[1:] for r in rows]).mean(0)
    print("| mean | " + " | ".join(f"{v:.1f}" for v in means) + " |")


if __name__ == "__main__":
    main()
