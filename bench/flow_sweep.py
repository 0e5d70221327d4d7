"""Farneback's pyramid levels and window size against interpolation PSNR, for both flow baselines.

    python bench/flow_sweep.py [--clips 32] [--split train]

Clips of the camera-motion split (16 frames, 128x128); interpolation (first + last given) and keyframes (every
4th + last). lightvid.eval.baselines.FARNEBACK is changed in place for each setting: the baselines and the flow
hints of native_flow models read it, so this script is the place to try other values, not the library.
"""
import argparse

import lightvid.eval.baselines as baselines
from lightvid.data import build_dataset
from lightvid.eval.evaluate import given_frames
from lightvid.eval.metrics import psnr

SETTINGS = [(3, 15), (4, 15), (5, 15), (5, 21), (6, 21), (5, 31)]  # (levels, winsize); (3, 15) is the default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--split", default="train", choices=("train", "test"))
    args = parser.parse_args()
    data = build_dataset("camera_motion", split=args.split, num_frames=16, size=128)
    clips = [data[i][0] for i in range(args.clips)]  # each (16, 3, 128, 128)
    default = dict(baselines.FARNEBACK)
    print(f"mean PSNR (dB) over {args.clips} {args.split} clips")
    print("| levels | winsize | interpolate: farneback | farneback_visible | keyframes: farneback | "
          "farneback_visible |")
    print("|---|---|---|---|---|---|")
    for levels, winsize in SETTINGS:
        baselines.FARNEBACK.update(default, levels=levels, winsize=winsize)
        cells = []
        for task in ("interpolate", "keyframes"):
            given = given_frames(task, 16)  # (16,) bool
            for name in ("farneback", "farneback_visible"):
                fill = baselines.BASELINES[name]
                scores = [psnr(fill(c * given[:, None, None, None], given)[~given], c[~given]).mean() for c in clips]
                cells.append(f"{sum(scores).item() / len(scores):.2f}")
        print(f"| {levels} | {winsize} | " + " | ".join(cells) + " |", flush=True)
    baselines.FARNEBACK.update(default)


if __name__ == "__main__":
    main()
