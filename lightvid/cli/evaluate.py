"""`lightvid eval`: a model against ground truth and baselines on its dataset's held-out clips."""
import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app, check_positive
from .tasks import Model, Sampler, Steps


@app.command("eval")
def evaluate(
    task: Annotated[str, typer.Option(help="interpolate (first+last given), keyframes (every 4th and the last "
                                      "given), predict (first half given), animate (first frame given) or loop.")],
    model: Model = "photo",
    clips: Annotated[int, typer.Option(help="Held-out clips to evaluate (the first N of the test split).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the model's sampling noise (clip i uses seed + i).")] = 0,
    steps: Steps = None,
    sampler: Sampler = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset whose test split is used (default: the one the "
                                                "model was trained on, from its pipeline.json).")] = None,
    encoder: Annotated[Path | None, typer.Option(help="A lightvid video encoder (.safetensors) for the Fréchet "
                                                 "distance (default: the bundled one for the dataset).")] = None,
    no_fd: Annotated[bool, typer.Option("--no-fd", help="Skip the Fréchet distance.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
):
    """PSNR / SSIM (and Moving MNIST MSE per frame) on the generated frames, beside copy-nearest, linear-blend and
    Farneback-flow baselines computed in the same run; the Fréchet distance in lightvid's own video encoder
    features (FD-lightvid, not FVD); median seconds per clip."""
    from lightvid.errors import LightvidError
    from lightvid.eval.evaluate import TASKS, save_report
    from lightvid.eval.evaluate import evaluate as run_eval
    from lightvid.pipelines.native import PIPELINE_FILE, NativePipeline
    from lightvid.weights import WEIGHTS_DIR, model_folder

    if task not in TASKS:
        raise LightvidError(f"unknown --task {task!r}; accepted: {', '.join(TASKS)}")
    check_positive(clips=clips)
    folder = model_folder(model)
    pipe = NativePipeline.from_pretrained(folder)
    dataset = dataset or json.loads((folder / PIPELINE_FILE).read_text()).get("dataset")
    if dataset is None:
        raise LightvidError(f"{folder}: the model does not say which dataset it was trained on; pass --dataset")
    video_encoder = None
    if not no_fd:
        from lightvid.eval.video_encoder import VideoEncoder
        bundled = WEIGHTS_DIR / "encoders" / f"{dataset}.safetensors"
        if encoder is not None or bundled.exists():
            video_encoder = VideoEncoder.load(encoder or bundled)
    report = run_eval(pipe, dataset, task, clips=clips, seed=seed, steps=steps, sampler=sampler,
                      encoder=video_encoder, model_name=str(model))
    typer.echo(f"{model} · {task} · {dataset} test split · {clips} clips · {report.steps} steps · "
               f"{report.seconds_per_clip:.2f} s per clip (median)")
    typer.echo(report.table())
    if json_out is not None:
        save_report(report, json_out)
        typer.echo(f"wrote {json_out}")
