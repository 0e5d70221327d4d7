"""`lightvid eval`: a native model against ground truth and baselines on its dataset's held-out split.

For each held-out clip (window = the model's num_frames), a task of lightvid.tasks.EVALUATED_TASKS (animate,
interpolate, keyframes, extend, loop) fixes which frames are given; a loop is made as `lightvid loop` makes it (two
passes: lightvid.pipelines.loops) and its seam is measured (PSNR/SSIM against the real clip say little there: a
real clip is no loop).
The model fills the other frames; so do the baselines (copy-nearest, linear blend, OpenCV Farneback flow, and
farneback_visible: Farneback with each warp dropped where it leaves its frame; farneback_global: farneback_visible
on flow whose global, camera motion is fitted first) from the same given frames, in
the same run. Metrics on the generated frames only: PSNR and SSIM (and Moving MNIST's
per-frame MSE), plus the Fréchet distance of whole clips to 256 real test clips in the features of lightvid's
own video encoder when one is supplied (FD-lightvid; it is not FVD), and FVD itself when the user supplies an
I3D network (lightvid bundles none). With tens of generated clips and 256-d features the distance is biased
upwards: it ranks methods evaluated on the same clips; it is not an absolute number.
"""
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from lightvid.data import WebDatasetShards, build_dataset
from lightvid.errors import LightvidError
from lightvid.pipelines.loops import sample_loop
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import EVALUATED_TASKS, get_task, task_spec

from .baselines import BASELINES
from .metrics import loop_seam, mnist_frame_mse, psnr, ssim

FD_REFERENCE_CLIPS = 256  # real clips (of the evaluated split) for the Fréchet distance's reference statistics
# the baselines that interpolate need a generated frame between two given ones; copy_nearest (a still video where
# one frame is given) fills any pattern
FLOW_BASELINES = ("copy_nearest", "linear_blend", "farneback", "farneback_visible", "farneback_global")


def baselines_for(given: torch.Tensor) -> tuple[str, ...]:
    """The baselines that can fill the frames a (F,) bool pattern does not give."""
    indices = given.nonzero().flatten()
    between = len(indices) >= 2 and bool((~given[int(indices[0]):int(indices[-1])]).any())
    return FLOW_BASELINES if between else ("copy_nearest",)


@dataclass
class EvalReport:
    model: str
    task: str
    dataset: str
    split: str
    clips: int
    steps: int
    seconds_per_clip: float  # median wall-clock of the model per clip (sampling only)
    results: dict = field(default_factory=dict)  # method -> metric -> mean value

    def table(self) -> str:
        """A markdown table: one row per method."""
        metrics = sorted({m for r in self.results.values() for m in r})
        lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for method, r in self.results.items():
            lines.append(f"| {method} | " + " | ".join(f"{r[m]:.4g}" if m in r else "" for m in metrics) + " |")
        return "\n".join(lines)


def _scores(pred: torch.Tensor, real: torch.Tensor, generated: torch.Tensor, mnist: bool, seam: bool) -> dict:
    """Per-clip metrics on the generated frames. pred, real: (F, C, H, W) in [-1, 1]; generated: (F,) bool.
    seam: add the loop seam: its ratio (jump last -> first over the median step; a still video counts as 1), and
    the jump and the median step themselves in 8-bit gray levels (mean |difference| × 255). The ratio alone misleads
    on a nearly still loop: it divides by steps far below one gray level, where any flicker swings it."""
    p, r = pred[generated], real[generated]
    out = {"psnr": psnr(p, r).mean().item(), "ssim": ssim(p, r).mean().item()}
    if mnist:
        out["mse_per_frame"] = mnist_frame_mse(p, r).mean().item()
    if seam:
        seam_stats = loop_seam(pred)  # on the [0, 1] scale
        out.update(seam_ratio=seam_stats["ratio"], seam_levels=255 * seam_stats["seam"],
                   step_levels=255 * seam_stats["median_step"])
    return out


def evaluate(pipe: NativePipeline, dataset_name: str, task: str, clips: int = 32, seed: int = 0,
             steps: int | None = None, sampler: str | None = None, encoder=None, i3d=None, model_name: str = "",
             progress: bool = True, split: str = "test", data_options: dict | None = None) -> EvalReport:
    """Run `task` on the first `clips` held-out clips; mean metrics for the model and each baseline.

    split: "test" (held out: for reporting) or "train" (for choosing sampling settings without looking at the
    test clips); the Fréchet reference clips come from the same split.

    data_options: more of the dataset's options (pipeline.json's "data" fact: where a webdataset model's shards are);
    num_frames, size and split are eval's own. Shards are read by position (`WebDatasetShards.clips`: epoch 0, the
    shards in their listed order), so "the first N clips" is well defined.

    encoder: a lightvid VideoEncoder -> FD-lightvid; i3d: an I3D network (`lightvid.eval.i3d.load_i3d`) -> FVD.
    Both need clips >= 2.
    """
    get_task(task, EVALUATED_TASKS)
    s = pipe.settings
    frames = s.num_frames
    if data_options is not None and not isinstance(data_options, dict):
        raise LightvidError(f"the dataset options must be a mapping, got {type(data_options).__name__}")
    options = {k: v for k, v in (data_options or {}).items() if k not in ("num_frames", "size", "split")}
    size = s.height if s.height == s.width else (s.height, s.width)
    data = build_dataset(dataset_name, **options, split=split, num_frames=frames, size=size)
    if isinstance(data, WebDatasetShards):
        data = data.clips()
    low = 2 if encoder is not None or i3d is not None else 1  # a covariance needs two clips
    if not low <= clips <= len(data):
        raise LightvidError(f"--clips must be in [{low}, {len(data)}] for the {dataset_name} {split} split"
                            f"{' with a Fréchet distance' if low == 2 else ''}, got {clips}")
    mnist = dataset_name == "moving_mnist"
    # every clip of a task has the same pattern: the baselines follow from the first clip's output frames
    first = task_spec(task, data[0][0].expand(-1, 3, -1, -1), s.fps)
    baselines = baselines_for(first.frame_mask()[: first.output_frames])
    per_method: dict[str, list[dict]] = {"model": [], **{b: [] for b in baselines}}
    videos: dict[str, list[torch.Tensor]] = {m: [] for m in per_method}
    reals, seconds = [], []
    for index in tqdm(range(clips), desc=f"eval {task}", disable=not progress):
        real, _ = data[index]  # (F, C, H, W)
        spec = task_spec(task, real.expand(-1, 3, -1, -1), s.fps)
        real = real[: spec.output_frames]  # a loop has F - 1 frames: the first F - 1 of the real clip
        generated = ~spec.frame_mask()[: spec.output_frames]  # (F,) bool
        sampling = dict(steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(seed + index),
                        progress=False)
        tic = time.perf_counter()
        if task == "loop":  # as `lightvid loop` makes it: two passes (lightvid.pipelines.loops)
            out = sample_loop(pipe, spec.given[0], spec.output_frames, **sampling)
        else:
            out = pipe(spec, **sampling)
        seconds.append(time.perf_counter() - tic)
        if real.shape[1] == 1:  # 1-channel models return their frames repeated to RGB
            out = out.mean(dim=1, keepdim=True)
        reals.append(real)
        per_method["model"].append(_scores(out, real, generated, mnist, seam=task == "loop"))
        videos["model"].append(out)
        for name in baselines:
            filled = BASELINES[name](real * (~generated)[:, None, None, None], ~generated)
            per_method[name].append(_scores(filled, real, generated, mnist, seam=task == "loop"))
            videos[name].append(filled)
    results = {m: {k: statistics.fmean(r[k] for r in rows) for k in rows[0]} for m, rows in per_method.items()}
    features = {}  # metric name -> (clips (N, F, C, H, W) -> features (N, D))
    if encoder is not None:
        features["fd_lightvid"] = encoder.features
    if i3d is not None:
        from .i3d import i3d_features
        features["fvd"] = lambda clips: i3d_features(i3d, clips)
    if features:  # generated clips vs a larger real reference set (less bias from the real side)
        from .frechet import frechet_distance
        length = reals[0].shape[0]
        extra = [data[i][0][:length] for i in range(clips, min(len(data), FD_REFERENCE_CLIPS))]
        reference = torch.stack(reals + extra)
        for metric, featurize in features.items():
            reference_features = featurize(reference)
            for method, vids in videos.items():
                results[method][metric] = frechet_distance(featurize(torch.stack(vids)), reference_features)
    steps = steps if steps is not None else s.steps
    return EvalReport(model_name, task, dataset_name, split, clips, steps, statistics.median(seconds), results)


def save_report(report: EvalReport, path) -> None:
    from lightvid.io import atomic_write
    with atomic_write(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(report.__dict__, indent=2))
