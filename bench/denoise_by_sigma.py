"""How well a native model denoises held-out clips at each noise level: the training objective, measured.

    python bench/denoise_by_sigma.py runs/photo_v3/model [--task animate] [--clips 8] [--sigmas 80,10,2,0.5,0.1]
                                     [--split train]

For each σ, the mean squared error (pixels in [-1, 1]) of D(x0 + σ·noise; σ) on the generated frames of the
first `clips` test clips (or training-split clips, to watch a run without looking at the test set), beside
copying the nearest given frame (the still-video baseline). A model that samples well must beat the copy at
every σ where sampling spends its steps; a curve that rises again at low σ means it cannot reproduce detail.
Models that start from their hint (hint_residual) also get the hint's own MSE: a correction that does not beat
it loses to the baseline the hint is (copy, or Farneback for native_flow).
Cheap (one UNet call per clip and σ), so it can watch a training run.
"""
import argparse

import torch

from lightvid.data import build_dataset
from lightvid.eval.baselines import BASELINES
from lightvid.eval.evaluate import given_frames
from lightvid.pipelines.native import NativePipeline
from lightvid.train.objective import given_mask
from lightvid.weights import model_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an embedded model name or a native model folder")
    parser.add_argument("--task", default="animate", choices=("animate", "interpolate", "keyframes", "predict"),
                        help="which frames are given (as in `lightvid eval`)")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--sigmas", default="80,10,2,0.5,0.1")
    parser.add_argument("--split", default="test", choices=("test", "train"))
    args = parser.parse_args()

    pipe = NativePipeline.from_pretrained(model_folder(args.model))
    s = pipe.settings
    data = build_dataset(pipe.facts["dataset"], split=args.split, num_frames=s.num_frames, size=s.height)
    real = torch.stack([data[i][0] for i in range(args.clips)])  # (n, F, c, H, W)
    given = given_frames(args.task, s.num_frames).expand(args.clips, -1)  # (n, F)
    mask = given_mask(given, real)
    generated = ~given[:, :, None, None, None]
    # the baseline reads the given rows only
    copy = torch.stack([BASELINES["copy_nearest"](clip, row) for clip, row in zip(real, given)])
    copy_mse = ((copy - real) ** 2)[generated.expand_as(real)].mean().item()
    g = torch.Generator().manual_seed(0)
    print(f"{args.model}: {args.task}, {args.clips} {args.split} clips; copy-nearest MSE {copy_mse:.4f}")
    if s.prediction == "hint_residual":  # where sampling starts: what the network's correction must improve on
        hint = pipe.denoiser.net.start(real * mask, mask)
        print(f"hint MSE {((hint - real) ** 2)[generated.expand_as(real)].mean().item():.4f}")
    print("| σ | model MSE | model / copy |\n|---|---|---|")
    with torch.no_grad():
        for sigma in (float(v) for v in args.sigmas.split(",")):
            noisy = real + sigma * torch.randn(real.shape, generator=g)
            denoised = pipe.denoiser(noisy, sigma, given=real * mask, mask=mask)
            mse = ((denoised - real) ** 2)[generated.expand_as(real)].mean().item()
            print(f"| {sigma:g} | {mse:.4f} | {mse / copy_mse:.2f} |")


if __name__ == "__main__":
    main()
