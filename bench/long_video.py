"""Long videos: `lightvid animate IMAGE --frames N --windows chain|multidiffusion` for N = 16, 64, 256, each in a
fresh process, side by side in one run.

    python bench/long_video.py [--image examples/rocket.jpg] [--frames 16 64 256] [--model photo]

For each run: wall time per frame, the process's peak RSS, and the frame-to-frame change (mean absolute
difference, 8-bit levels) at the steps where windows meet against the steps inside windows. Prints a markdown table
and the CPU.
"""
import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lightvid.export.parity import cpu_name
from lightvid.io import read_video
from lightvid.pipelines.multidiffusion import temporal_windows
from lightvid.pipelines.windows import chain_plan
from lightvid.weights import model_folder

CHILD = """
import resource, sys
from lightvid.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def chain_boundaries(total: int, window: int) -> list[int]:
    """The frame indices i where step i-1 -> i crosses into the new frames of the next window of the chain that
    `animate` samples (one frame given; pipelines.windows.chain_plan)."""
    news = [new for _, new in chain_plan(1, total, window)]
    return list(itertools.accumulate(news[:-1], initial=1))[1:]  # where each window after the first begins


def md_boundaries(total: int, window: int) -> list[int]:
    edges = set()
    for w in temporal_windows(total, window, window // 2):
        edges.update(i for i in (w.start, w.stop) if 0 < i < total)
    return sorted(edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="examples/rocket.jpg")
    parser.add_argument("--model", default="photo")
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    window = json.loads((model_folder(args.model) / "pipeline.json").read_text())["num_frames"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.frames:
            for mode in ("chain", "multidiffusion"):
                out = Path(tmp) / f"{mode}-{frames}"
                tic = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", CHILD, "animate", args.image, "-o", f"{out}/",
                                       "--model", args.model, "--frames", str(frames), "--windows", mode],
                                      capture_output=True, text=True)
                seconds = time.perf_counter() - tic
                if done.returncode != 0:
                    raise SystemExit(done.stderr)
                peak_mib = int(done.stderr.strip().splitlines()[-1]) / 1024
                video = read_video(out)[0]  # (N, 3, H, W) in [-1, 1]
                steps = 127.5 * (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))  # steps[i - 1]: frame i-1 -> i
                edges = chain_boundaries(frames, window) if mode == "chain" else md_boundaries(frames, window)
                at = torch.tensor([i - 1 for i in edges], dtype=torch.long)
                inside = torch.ones(len(steps), dtype=torch.bool)
                inside[at] = False
                ratio = float(steps[at].mean() / steps[inside].mean()) if len(at) else float("nan")
                rows.append((frames, mode, seconds / frames, peak_mib, float(steps[inside].mean()), ratio))
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; model {args.model} (window {window})\n")
    print("| frames | windows | s / frame | peak RSS (MiB) | mean step inside (levels) | boundary / inside |")
    print("|---|---|---|---|---|---|")
    for frames, mode, per_frame, peak, inside, ratio in rows:
        print(f"| {frames} | {mode} | {per_frame:.3f} | {peak:.0f} | {inside:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
