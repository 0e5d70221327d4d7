"""`lightvid eval`: a model against ground truth and baselines on its dataset's held-out clips."""
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .app import app, check_range, warn_slow
from .options import MAX_CLIPS, SEED, SLOW_CLIPS, Bf16, Json, Model, Runtime, Sampler, Steps
from .tasks import check_runtime, network_dtype, sampling_args


@app.command("eval")
def evaluate(
    task: Annotated[str, typer.Option(help="interpolate (first+last given), keyframes (every 4th and the last "
                                      "given), extend (first half given), animate (first frame given) or loop.")],
    model: Model = "photo",
    clips: Annotated[int, typer.Option(help=f"Clips to evaluate (the first N of the split): 1 to {MAX_CLIPS} and "
                                       f"at most the split's size; more than {SLOW_CLIPS} takes long.")] = 32,
    seed: Annotated[int, typer.Option(help=f"{SEED}; clip i uses seed + i.")] = 0,
    steps: Steps = None,
    sampler: Sampler = None,
    bf16: Bf16 = False,
    runtime: Runtime = "torch",
    dataset: Annotated[str | None, typer.Option(help="Whose clips are used: moving_mnist, camera_motion, or the "
                                                "model's own dataset with the options it was trained with "
                                                "(webdataset shards, a video folder), the default "
                                                "(pipeline.json's dataset).")] = None,
    split: Annotated[str, typer.Option(help="test (held out, for reporting) or train (for choosing sampling "
                                       "settings without looking at the test clips).")] = "test",
    encoder: Annotated[Path | None, typer.Option(help="A lightvid video encoder (.safetensors) for FD-lightvid "
                                                 "(default: the bundled one for the dataset).")] = None,
    no_fd: Annotated[bool, typer.Option("--no-fd", help="Skip FD-lightvid.")] = False,
    i3d: Annotated[Path | None, typer.Option(help="A Kinetics-400 I3D network (.safetensors, see lightvid.eval.i3d) "
                                             "for FVD; none is bundled.")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Also write the report to this .json "
                                               "file.")] = None,
    as_json: Json = False,
):
    """A model against ground truth and classical baselines on held-out clips of its dataset.

    PSNR / SSIM (and Moving MNIST's MSE per frame) on the generated frames, beside copy-nearest, linear blend,
    Farneback flow, farneback_visible (each warp dropped where it leaves its frame) and farneback_global (the same
    after the camera's motion is compensated), computed in the same run; the Fréchet distance in lightvid's own
    video encoder features (FD-lightvid, not FVD), FVD with --i3d; median seconds per clip."""
    from lightvid.errors import LightvidError
    from lightvid.eval.evaluate import evaluate as run_eval
    from lightvid.eval.evaluate import save_report
    from lightvid.pipelines.native import NativePipeline
    from lightvid.tasks import EVALUATED_TASKS, get_task
    from lightvid.weights import WEIGHTS_DIR
    get_task(task, EVALUATED_TASKS, what="--task")
    if split not in ("test", "train"):
        raise LightvidError(f"unknown --split {split!r}; accepted: test, train")
    check_range("--clips", clips, 1, MAX_CLIPS)
    sampling_args(seed + clips - 1, steps, sampler)  # validates --seed (every clip's), --steps, --sampler
    if output is not None and not output.endswith(".json"):
        raise LightvidError(f"-o/--output {output}: expected a file path ending in .json")
    if no_fd and encoder is not None:
        raise LightvidError("--encoder and --no-fd contradict each other; pass one")
    if output is not None:
        _check_report_path(Path(output))
    if dataset is not None:
        from lightvid.data import DATASETS
        if dataset not in DATASETS:
            raise LightvidError(f"--dataset: unknown dataset {dataset!r}; accepted: {', '.join(DATASETS)}")
    check_runtime(runtime, bf16)
    dtype = network_dtype(bf16)  # float32 where bf16 is not native
    pipe, used, note = NativePipeline.for_sampling(model, steps, sampler, dtype, runtime)
    used = f"{used} (bf16)" if dtype != network_dtype(False) else used
    used = f"{used} ({runtime})" if runtime != "torch" else used
    if note is not None:
        typer.echo(note, err=True)
    data_options = {}
    recorded = pipe.facts.get("dataset")
    dataset = dataset or recorded
    # the model's own dataset: where its files are too (the built-in datasets' held-out splits are fixed)
    if dataset == recorded and dataset not in ("moving_mnist", "camera_motion"):
        data_options = pipe.facts.get("data", {})
    if dataset is None:
        raise LightvidError(f"{model}: the model does not say which dataset it was trained on; pass --dataset")
    video_encoder = None
    if not no_fd:
        from lightvid.eval.video_encoder import VideoEncoder
        bundled = WEIGHTS_DIR / "encoders" / f"{dataset}.safetensors"
        if encoder is None and not bundled.exists():
            raise LightvidError(f"no bundled video encoder for {dataset!r}: pass --encoder FILE "
                                "(tools/train_video_encoder.py trains one) or --no-fd")
        video_encoder = VideoEncoder.load(encoder or bundled)
    i3d_model = None
    if i3d is not None:
        from lightvid.eval.i3d import load_i3d
        i3d_model = load_i3d(i3d)
    warn_slow(steps=steps, clips=clips)
    report = run_eval(pipe, dataset, task, clips=clips, seed=seed, steps=steps, sampler=sampler,
                      encoder=video_encoder, i3d=i3d_model, model_name=used, split=split, data_options=data_options)
    if as_json:
        typer.echo(json.dumps(report.__dict__))  # the object -o writes
    else:
        typer.echo(f"{used} · {task} · {dataset} {split} split · {clips} clips · {report.steps} steps · "
                   f"{report.seconds_per_clip:.2f} s per clip (median)")
        typer.echo(report.table())
    if output is not None:
        save_report(report, output)
        typer.echo(f"wrote {output}", err=as_json)  # with --json, stdout is the JSON object only


def _check_report_path(path: Path) -> None:
    """-o/--output: a .json file path that can be written (checked before any work)."""
    from lightvid.errors import LightvidError
    from lightvid.io.paths import check_name_length
    check_name_length(path)  # before is_dir, which raises for an overlong name
    if path.is_dir():
        raise LightvidError(f"-o/--output {path}: is a folder; expected a .json file path")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK)):
        raise LightvidError(f"-o/--output {path}: cannot write into {parent}")
