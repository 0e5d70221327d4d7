"""Space-Time UNet (Lumiere's STUNet) against lightvid's UNet on Moving MNIST, trained alike, compared in one run.

    python bench/stunet_mnist.py [--steps 500] [--clips 32] [--out runs/stunet_bench] [--no-train]

Trains (or resumes) two runs of `--steps` steps with one schedule: configs/stunet_mnist.yaml (the `stunet-mnist`
preset) and configs/mnist.yaml (the shipped `mnist` architecture), the same data, tasks, seed and optimiser. Then,
for both and for the shipped `mnist` (its own model, 8 re-noising steps; 4,500 training steps), one table:
parameters and GFLOPs per UNet evaluation (20 frames, 64x64), the median CPU latency of one UNet evaluation (batch 1,
float32, no autograd; the models alternate call by call, so machine noise hits them alike), and `lightvid eval`
PSNR / SSIM / FD-lightvid on interpolation and extension (prediction of the second half), held-out clips, 8 steps
of the re-noising sampler for all three.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from lightvid.eval.flops import count_flops
from lightvid.export.parity import cpu_name
from lightvid.models import SpaceTimeUNet, read_config
from lightvid.weights import model_folder

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"stunet": ROOT / "configs" / "stunet_mnist.yaml", "unet": ROOT / "configs" / "mnist.yaml"}
TASKS = ("interpolate", "extend")


def train(out: Path, steps: int) -> dict[str, Path]:
    folders = {}
    for name, base in RUNS.items():
        config = out / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"base: {base}\noutput_dir: {out / name}\n"
                          f"train: {{steps: {steps}, warmup_steps: 50, checkpoint_every: 100}}\n")
        subprocess.run([sys.executable, "-m", "lightvid.cli", "train", "--config", str(config)], check=True)
        folders[name] = out / name / "model"
    return folders


def latencies(folders: dict[str, Path], repeats: int) -> dict[str, float]:
    """Median seconds of one UNet evaluation per model, the models alternating call by call."""
    nets = {name: SpaceTimeUNet.from_pretrained(folder, dtype=torch.float32).eval() for name, folder in folders.items()}
    inputs = {name: torch.randn(1, 20, net.config.in_channels, 16, 16) for name, net in nets.items()}
    times = {name: [] for name in nets}
    with torch.no_grad():
        for i in range(repeats + 2):
            for name, net in nets.items():
                tic = time.perf_counter()
                net(inputs[name], torch.tensor(0.5))
                if i >= 2:  # two warm-up rounds
                    times[name].append(time.perf_counter() - tic)
    return {name: statistics.median(t) for name, t in times.items()}


def evaluate(folder: Path, task: str, clips: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "lightvid.cli", "eval", "--model", str(folder), "--task", task,
                           "--clips", str(clips), "--sampler", "renoise", "--steps", "8", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "stunet_bench")
    parser.add_argument("--no-train", action="store_true", help="evaluate the runs as they are")
    args = parser.parse_args()
    folders = ({name: args.out / name / "model" for name in RUNS} if args.no_train else train(args.out, args.steps))
    folders["mnist (shipped)"] = model_folder("mnist")
    seconds = latencies(folders, args.repeats)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {torch.get_num_threads()} threads\n")
    header = ["model", "training steps", "parameters", "GFLOPs", "ms / UNet call"]
    header += [f"{task} {m}" for task in TASKS for m in ("PSNR", "SSIM", "FD")]
    print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for name, folder in folders.items():
        config = read_config(folder)
        report = count_flops(config, 20, 16, 16)  # 64x64 pixels in 4x4 patches: 16x16 tokens
        params, gflops = report.params, report.flops / 1e9
        steps = json.loads((folder / "pipeline.json").read_text()).get("trained_steps", "?")
        cells = [name, str(steps), f"{params:,}", f"{gflops:.2f}", f"{1000 * seconds[name]:.1f}"]
        for task in TASKS:
            model = evaluate(folder, task, args.clips)["results"]["model"]
            cells += [f"{model['psnr']:.2f}", f"{model['ssim']:.3f}", f"{model['fd_lightvid']:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
