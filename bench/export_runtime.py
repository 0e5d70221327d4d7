"""PyTorch eager float32 against the ONNX (float32 and int8) and ExecuTorch exports of the embedded models, side by
side in one run.

    python bench/export_runtime.py                 # exports every embedded model to a scratch folder first (minutes)
    python bench/export_runtime.py --repeats 5 --exports runs/exports   # reuse / keep the exports there

For each model and runtime: the median seconds of one whole `animate` sampling (the pipeline call: conditioning,
flow hints, sampler and network; loading excluded) and of one network call, and the PSNR of the generated frames
against PyTorch float32 (same seed, same held-out clips). Prints a markdown table; the CPU is named beside it.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from lightvid.eval.metrics import psnr
from lightvid.export import export_model
from lightvid.export.folder import model_clips
from lightvid.export.parity import cpu_name, recorded_calls
from lightvid.models.onnx_network import EXPORT_FILE
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import task_spec

EXPORTS = {"onnx float32": ("onnx", "none"), "onnx int8": ("onnx", "int8"),
           "executorch float32": ("executorch", "none")}  # runtime name: (--format, --quantize)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations, onnxruntime's arena
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["photo", "mnist", "mnist-mobilevd"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--exports", type=Path, default=None, help="folder for the exports (default: a temp folder)")
    parser.add_argument("--exported", nargs="+", default=list(EXPORTS), choices=list(EXPORTS),
                        help="the exported runtimes to compare with torch float32")
    args = parser.parse_args()
    root = args.exports or Path(tempfile.mkdtemp(prefix="lightvid-exports-"))
    rows = []
    for model in args.models:
        runtimes = {"torch float32": NativePipeline.for_sampling(model)[0]}
        for name in args.exported:
            fmt, quantize = EXPORTS[name]
            folder = root / f"{model}-{fmt}-{quantize}"
            if not (folder / EXPORT_FILE).is_file():
                print(f"exporting {model} ({fmt}, {quantize}) to {folder}", file=sys.stderr)
                export_model(model, folder, fmt, quantize, log=lambda line: print(line, file=sys.stderr))
            runtimes[name] = NativePipeline.for_sampling(folder, runtime=fmt)[0]
        reference = runtimes["torch float32"]
        clips, _ = model_clips(reference, "test", args.clips)
        specs = [task_spec("animate", clip, reference.settings.fps) for clip in clips]

        def sample(pipe, spec):
            return pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)

        expected = [sample(reference, spec) for spec in specs]
        with recorded_calls(reference) as calls:
            sample(reference, specs[0])
        first = calls[0][:2]  # (sample, c_noise)
        for name, pipe in runtimes.items():
            seconds = median_seconds(lambda pipe=pipe, spec=specs[0]: sample(pipe, spec), args.repeats)
            with torch.no_grad():  # as the pipeline calls it (autograd's bookkeeping would slow torch's call)
                network = median_seconds(lambda pipe=pipe, first=first: pipe.denoiser.net.unet(*first), args.repeats)
            scores = []
            for spec, want in zip(specs, expected):
                got, generated = sample(pipe, spec), ~spec.frame_mask()[: spec.output_frames]
                scores.append(float(psnr(got[generated].flatten(0, 1)[None], want[generated].flatten(0, 1)[None])))
            rows.append((model, name, reference.settings.steps, seconds, network, min(scores)))
    print(f"CPU: {cpu_name()}; torch {torch.__version__}\n")
    print("| model | runtime | steps | animate (s) | speed-up | one network call (s) | PSNR vs torch f32, min (dB) |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for model, name, steps, seconds, network, score in rows:
        base.setdefault(model, seconds)
        shown = "identical (capped)" if score >= 100 else f"{score:.1f}"
        print(f"| {model} | {name} | {steps} | {seconds:.3f} | {base[model] / seconds:.2f}x | {network:.3f} "
              f"| {shown} |")


if __name__ == "__main__":
    main()
