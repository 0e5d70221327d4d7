"""The parity report of an export: the exported network against PyTorch on the same inputs, and whole generations
with the same seed and given frames.

    network      the max abs difference of the network's outputs on every input it got while PyTorch sampled
                 (recorded, so the inputs are the real ones: noise levels, hints, masks), beside the largest output
    generation   PSNR of the generated frames (given frames excluded: both runtimes return them unchanged) against
                 PyTorch's, for each clip and task, with the model's own sampling defaults; the max difference in
                 8-bit gray levels
    speed        one network call, median of 3, both runtimes side by side on this CPU (named in the report)

PSNR_BAR is apple/ml-stable-diffusion's bar for a converted model: a float32 export under it is refused.
"""
import contextlib
import platform
import statistics
import time
from collections.abc import Iterator

import torch

from lightvid.eval.metrics import psnr
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import task_spec

PSNR_BAR = 35.0  # dB
PARITY_TASKS = ("animate", "interpolate")


@contextlib.contextmanager
def recorded_calls(pipe: NativePipeline, limit: int = 1000
                   ) -> Iterator[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """Within the block, every (sample, c_noise, output) of the PyTorch pipeline's network is appended to the list
    yielded (at most `limit`): the network's real inputs and what it answered, for parity checks and int8
    calibration."""
    calls = []

    def record(module, args, output):
        if len(calls) < limit:
            calls.append((args[0].detach().clone(), args[1].detach().clone(), output.detach().float().clone()))

    hook = pipe.unet.register_forward_hook(record)
    try:
        yield calls
    finally:
        hook.remove()


def _seconds(network, sample: torch.Tensor, c_noise: torch.Tensor) -> float:
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        network(sample, c_noise)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def cpu_name() -> str:
    """The CPU model and the SIMD level torch uses: a timing is only read beside them."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


@torch.no_grad()
def parity_report(reference: NativePipeline, exported: NativePipeline, runtime: str, clips: list[torch.Tensor],
                  seed: int = 0) -> dict:
    """Compare `exported` (the model on `runtime`, "onnx" or "executorch") with `reference` (PyTorch float32) on
    `clips`, each (F, 3, H, W) in [-1, 1] at the model's frame size and window: PARITY_TASKS on every clip, seed
    `seed`."""
    fps = reference.settings.fps
    scores, network_diff, network_scale, first_call = [], 0.0, 0.0, None
    for clip in clips:
        for task in PARITY_TASKS:
            spec = task_spec(task, clip, fps)
            with recorded_calls(reference) as calls:
                expected = reference(spec, generator=torch.Generator().manual_seed(seed), progress=False)
            got = exported(spec, generator=torch.Generator().manual_seed(seed), progress=False)
            generated = ~spec.frame_mask()[: spec.output_frames]
            # PSNR over every generated frame at once: the frames stacked as the channels of one image
            scores.append((float(psnr(got[generated].flatten(0, 1)[None], expected[generated].flatten(0, 1)[None])),
                           127.5 * float((got - expected).abs().max())))
            for sample, c_noise, out in calls:
                network_diff = max(network_diff, float((exported.denoiser.net.unet(sample, c_noise) - out).abs().max()))
                network_scale = max(network_scale, float(out.abs().max()))
            first_call = first_call or calls[0]
    torch_seconds = _seconds(reference.denoiser.net.unet, *first_call[:2])
    exported_seconds = _seconds(exported.denoiser.net.unet, *first_call[:2])
    psnrs = [p for p, _ in scores]
    return {
        "runtime": runtime, "tasks": list(PARITY_TASKS), "clips": len(clips), "seed": seed,
        "steps": reference.settings.steps, "sampler": reference.settings.sampler,
        "network_max_abs_diff": network_diff, "network_output_max_abs": network_scale,
        "psnr_db_min": min(psnrs), "psnr_db_mean": statistics.fmean(psnrs),
        "max_diff_gray_levels": max(d for _, d in scores),
        "network_seconds": {"torch": torch_seconds, runtime: exported_seconds,
                            "input": list(first_call[0].shape), "cpu": cpu_name()},
        "bar_db": PSNR_BAR, "passes": min(psnrs) >= PSNR_BAR,
    }


def report_lines(name: str, report: dict) -> list[str]:
    """The report as the lines `lightvid export` prints."""
    t, runtime = report["network_seconds"], report["runtime"]
    return [
        f"{name}: network max abs diff {report['network_max_abs_diff']:.2e} (outputs up to "
        f"{report['network_output_max_abs']:.2f})",
        f"{name}: generation PSNR vs PyTorch min {report['psnr_db_min']:.1f} dB, mean {report['psnr_db_mean']:.1f} dB "
        f"(bar {report['bar_db']:g} dB; {report['clips']} clips x {', '.join(report['tasks'])}, "
        f"{report['steps']} {report['sampler']} steps), max diff {report['max_diff_gray_levels']:.2f} gray levels",
        f"{name}: one network call {tuple(t['input'])}: torch {t['torch'] * 1000:.0f} ms, {runtime} "
        f"{t[runtime] * 1000:.0f} ms ({t['torch'] / t[runtime]:.2f}x) on {t['cpu']}",
    ]
