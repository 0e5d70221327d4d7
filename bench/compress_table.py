"""lightvid's own MobileVD Table 2: every stage of a `lightvid compress` run, measured side by side.

    python bench/compress_table.py mnist mnist-mobilevd.work [--clips 32] [--reps 9]

Rows: the original model, then each stage's `NN_step/result/` model. Columns: GFLOPs and parameters of one UNet
evaluation at the model's clip size (meta device), median CPU latency of one UNet evaluation (all models timed in
one process, call by call in turn, after a warm-up), and interpolation quality on the held-out test split (first +
last frame given, the default sampler): PSNR, SSIM and FD-lightvid. Prints a markdown table; -o FILE.json saves it.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch
from report import print_table, save_rows

from lightvid.eval.evaluate import evaluate
from lightvid.eval.flops import count_flops
from lightvid.eval.video_encoder import VideoEncoder
from lightvid.pipelines.native import NativePipeline
from lightvid.weights import WEIGHTS_DIR, model_folder


def unet_input(pipe: NativePipeline) -> tuple[torch.Tensor, torch.Tensor]:
    s, cfg = pipe.settings, pipe.unet.config
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, s.num_frames, cfg.in_channels, s.height // s.patch, s.width // s.patch, generator=g)
    return sample, torch.tensor([0.5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the model the run started from (embedded name or folder)")
    parser.add_argument("work_dir", type=Path, help="the compress run's work folder (OUTPUT.work)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("-o", "--output", type=Path, help="also write the rows to this .json file")
    args = parser.parse_args()

    folders = [("original", model_folder(args.model))]
    folders += [(p.name, p / "result") for p in sorted(args.work_dir.iterdir()) if (p / "result").is_dir()]
    pipes = {name: NativePipeline.from_pretrained(folder) for name, folder in folders}
    dataset = pipes["original"].facts["dataset"]
    encoder = VideoEncoder.load(WEIGHTS_DIR / "encoders" / f"{dataset}.safetensors")

    times = {name: [] for name in pipes}
    with torch.no_grad():
        for pipe in pipes.values():  # warm-up
            pipe.unet(*unet_input(pipe))
        for _ in range(args.reps):  # call by call in turn, so machine noise hits every model alike
            for name, pipe in pipes.items():
                inputs = unet_input(pipe)
                tic = time.perf_counter()
                pipe.unet(*inputs)
                times[name].append(time.perf_counter() - tic)

    rows = []
    for name, pipe in pipes.items():
        s = pipe.settings
        report = count_flops(pipe.unet.config, s.num_frames, s.height // s.patch, s.width // s.patch)
        quality = evaluate(pipe, dataset, "interpolate", clips=args.clips, encoder=encoder, model_name=name)
        model = quality.results["model"]
        rows.append(dict(stage=name, gflops=report.flops / 1e9, params=report.params,
                         unet_ms=1000 * statistics.median(times[name]), psnr=model["psnr"], ssim=model["ssim"],
                         fd_lightvid=model["fd_lightvid"], seconds_per_clip=quality.seconds_per_clip))
    print_table(f"{dataset}, interpolation (first + last given), {args.clips} held-out clips, "
                f"{torch.get_num_threads()} threads",
                ["stage", "GFLOPs", "params", "UNet ms (median)", "PSNR", "SSIM", "FD-lightvid", "s per clip"],
                [[r["stage"], f"{r['gflops']:.2f}", f"{r['params']:,}", f"{r['unet_ms']:.0f}", f"{r['psnr']:.2f}",
                  f"{r['ssim']:.3f}", f"{r['fd_lightvid']:.2f}", f"{r['seconds_per_clip']:.2f}"] for r in rows])
    save_rows(args.output, rows)


if __name__ == "__main__":
    main()
