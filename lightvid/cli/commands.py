"""`lightvid generate` (SVD folders), `lightvid flops`, `lightvid train`, `lightvid compress`, `lightvid distill`."""
import json
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
import yaml

from lightvid.errors import LightvidError

from .app import app, check_finite, check_range, check_seed, check_size, warn_slow
from .options import (
    FRAMES,
    HEIGHT,
    MAX_FPS,
    MAX_FRAMES,
    MAX_MOTION_BUCKET,
    MAX_TRAIN_STEPS,
    NATIVE_DEFAULT,
    NATIVE_MODELS,
    STEPS,
    SVD_FOLDER,
    WIDTH,
    AnyModel,
    Bf16,
    Gif,
    Json,
    MaxSteps,
    Model,
    ModelOutput,
    Output,
    Overwrite,
    Seed,
    SvdModel,
)


@app.command()
def generate(
    image: Annotated[Path, typer.Argument(help="The photo to animate (any image file, any size): it conditions "
                                          "the model, resized to cover HEIGHTxWIDTH (aspect ratio kept), then "
                                          "center-cropped.")],
    output: Output,
    model: SvdModel,
    frames: Annotated[int | None, typer.Option(help=f"{FRAMES} (default: the UNet's num_frames, 14 for SVD; the "
                                               "native commands default to the model's window).")] = None,
    steps: Annotated[int, typer.Option(help=f"{STEPS}, Euler with the Karras schedule (default here: 25; "
                                       f"{NATIVE_DEFAULT}).")] = 25,
    seed: Seed = 0,
    height: Annotated[int, typer.Option(help=f"{HEIGHT}, a multiple of the VAE factor (8 for SVD) (default here: "
                                        f"576, SVD's; {NATIVE_DEFAULT}).")] = 576,
    width: Annotated[int, typer.Option(help=f"{WIDTH}, a multiple of the VAE factor (8 for SVD) (default here: "
                                       f"1024, SVD's; {NATIVE_DEFAULT}).")] = 1024,
    fps: Annotated[int, typer.Option(help=f"Frames per second, 1 to {MAX_FPS}: conditions the model and sets the "
                                     "file's frame rate (the native commands use the model's own).")] = 7,
    motion_bucket: Annotated[int, typer.Option("--motion-bucket", help=f"SVD motion bucket id, 0 to "
                                               f"{MAX_MOTION_BUCKET}: more = more motion.")] = 127,
    noise_aug: Annotated[float, typer.Option("--noise-aug", help="Noise added to the conditioning image (a finite "
                                             "number >= 0).")] = 0.02,
    min_guidance: Annotated[float, typer.Option(help="Guidance scale of the first frame, a finite number (ramps "
                                                "linearly to --max-guidance).")] = 1.0,
    max_guidance: Annotated[float, typer.Option(help="Guidance scale of the last frame, a finite number.")] = 3.0,
    decode_chunk: Annotated[int | None, typer.Option("--decode-chunk", help=f"Frames decoded per VAE call, 1 to "
                                                     f"{MAX_FRAMES}: lower bounds memory (default: the whole clip "
                                                     "in one call).")] = None,
    gif: Gif = False,
    bf16: Bf16 = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the UNet: the first step compiles "
                                          "(minutes on CPU), later steps run fused kernels.")] = False,
):
    """Image-to-video with a Stable Video Diffusion checkpoint folder: IMAGE conditions the video."""
    import torch

    from lightvid.io import check_output_path, load_image, pil_to_tensor, resize_and_crop, shown, write_video
    from lightvid.pipelines import SVDPipeline, SVDSettings
    from lightvid.tasks import animate

    check_output_path(output, inputs=[image], gif_preview=gif)  # never an input; load_image refuses a FIFO unopened
    check_seed(seed)
    check_size(height, width, frames, steps)
    check_range("--fps", fps, 1, MAX_FPS)
    check_range("--motion-bucket", motion_bucket, 0, MAX_MOTION_BUCKET)
    check_range("--decode-chunk", decode_chunk, 1, MAX_FRAMES)
    check_finite(noise_aug=noise_aug, min_guidance=min_guidance, max_guidance=max_guidance)
    if noise_aug < 0:
        raise LightvidError(f"--noise-aug must be >= 0, got {noise_aug}")
    picture = pil_to_tensor(resize_and_crop(load_image(image), height, width))
    if frames is not None:  # validate the request before the (slow) model load
        animate(picture, frames, fps)
    from .tasks import network_dtype
    pipe = SVDPipeline.from_pretrained(model, unet_dtype=network_dtype(bf16), compile=compile)
    check_size(height, width, frames if frames is not None else pipe.default_frames)
    warn_slow(steps=steps, frames=frames)
    spec = animate(picture, frames if frames is not None else pipe.default_frames, fps)
    settings = SVDSettings(steps=steps, min_guidance=min_guidance, max_guidance=max_guidance,
                           motion_bucket_id=motion_bucket, noise_aug_strength=noise_aug, decode_chunk_size=decode_chunk)
    video = pipe(spec, settings, generator=torch.Generator().manual_seed(seed))
    for path in write_video(video, output, fps=fps, gif_preview=gif):
        typer.echo(f"wrote {shown(path)}")


@app.command()
def flops(
    model: Annotated[str, typer.Option("--model", help=f"The model to count: an architecture preset (svd, "
                                       f"svd-tiny), {NATIVE_MODELS}, or {SVD_FOLDER} or just its unet/ folder. "
                                       "Only config files are read.")] = "svd",
    frames: Annotated[int, typer.Option(help=f"Frames in the clip one UNet evaluation denoises, 1 to {MAX_FRAMES} "
                                        "(default here: 14, SVD's, whatever the model).")] = 14,
    height: Annotated[int, typer.Option(help=f"{HEIGHT} (default here: 576, SVD's, whatever the model); latent "
                                        "height = height / the model's VAE factor.")] = 576,
    width: Annotated[int, typer.Option(help=f"{WIDTH} (default here: 1024, SVD's, whatever the model).")] = 1024,
    fold_cross_attention: Annotated[bool, typer.Option("--fold-cross-attention", help="Count with single-token "
                                                       "cross-attention folded (MobileVD).")] = False,
    as_json: Json = False,
    table: Annotated[str | None, typer.Option("--table", help="Print a named table instead of one model: "
                                              "'mobilevd' = MobileVD's Table 2 TFLOPs column recomputed from the "
                                              "architectures (SVD, 14 frames), beside the paper's figures.")] = None,
):
    """FLOPs and parameters of ONE UNet evaluation (batch 1), counted exactly on the meta device.

    A multiply-add counts as 2 FLOPs. No weights are loaded.
    """
    from lightvid.eval.flops import flops_for

    if table is not None:
        _print_table(table, as_json)
        return
    check_size(height, width, frames)
    report = flops_for(model, frames, height, width, fold_cross_attention)
    if as_json:
        typer.echo(json.dumps(dict(model=model, frames=frames, height=height, width=width,
                                   latent_height=report.latent_height, latent_width=report.latent_width,
                                   flops=report.flops, tflops=report.tflops, params=report.params)))
    else:
        typer.echo(f"{model}: {frames}x{height}x{width} (latent {report.latent_height}x{report.latent_width}): "
                   f"{_flops_text(report.flops)} per UNet evaluation, {report.params:,} parameters")


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", help="A training YAML file (see configs/): model, data, "
                                         "training options and output_dir.")],
    max_steps: MaxSteps = None,
):
    """Train a native model (or resume it from output_dir's last checkpoint).

    Runs as is on one CPU process; for several processes or GPUs use
    `accelerate launch [--num_processes N] [--cpu] -m lightvid.train --config FILE`.
    """
    from lightvid.train import load_config
    from lightvid.train import train as run_training

    check_range("--max-steps", max_steps, 1, MAX_TRAIN_STEPS)
    out = run_training(load_config(config), max_steps=max_steps)
    typer.echo(f"checkpoints in {out / 'checkpoints'}, model in {out / 'model'}")


@app.command()
def compress(
    model: AnyModel,
    output: ModelOutput,
    recipe: Annotated[str, typer.Option("--recipe", help="A bundled recipe (mobilevd) or a recipe YAML "
                                        "file.")] = "mobilevd",
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where finetuning stages and each stage's "
                                                  "model live (default: OUTPUT.work). Rerunning resumes "
                                                  "there.")] = None,
    finetune_steps: Annotated[int | None, typer.Option("--finetune-steps", help="Training steps of every "
                                                       "finetuning stage of the recipe, replacing the recipe's "
                                                       f"(0 to {MAX_TRAIN_STEPS:,}; 0: transforms only; default: the "
                                                       "recipe's).")] = None,
    overwrite: Overwrite = False,
):
    """Compress a model with a recipe of MobileVD transforms, finetuning between them.

    Steps: fold single-token cross-attention (exact), temporal/spatial multiscaling, temporal-block pruning with
    learned gates (or the L1 baseline), channel funnels (coupled singular init, merged after finetuning), lower
    resolution. The result is a normal model folder that every command loads (--model OUTPUT).
    """
    from lightvid.compress.recipe import compress as run_recipe
    from lightvid.compress.recipe import load_recipe

    check_range("--finetune-steps", finetune_steps, 0, MAX_TRAIN_STEPS)
    _check_folder_output(output, "-o/--output", overwrite, model)
    _check_folder_output(work_dir if work_dir is not None else output.with_name(output.name + ".work"), "--work-dir",
                         model=model)
    plan = load_recipe(recipe)
    if finetune_steps is not None:
        for step in plan.steps:
            step.finetune_steps = finetune_steps if step.finetune_steps else 0
    out = run_recipe(model, plan, output, work_dir, overwrite)
    typer.echo(f"wrote {out}")


# Distillation defaults for a 2-core CPU (overridable with --config's `train:` section).
DISTILL_TRAIN = {"batch_size": 8, "steps": 500, "lr": 5e-5, "warmup_steps": 20, "ema_decay": 0.99, "bf16": True,
                 "checkpoint_every": 50, "log_every": 10}


@app.command()
def distill(
    model: Model,
    output: ModelOutput,
    student_steps: Annotated[int, typer.Option("--student-steps", help="Sampling steps of the student: the step "
                                               "count it is trained for and samples with by default (1 to 8; 1, 2 "
                                               "or 4 are usual).")] = 1,
    config: Annotated[Path | None, typer.Option("--config", help="YAML with optional sections 'train:' (trainer "
                                                "options: steps, lr, batch_size, ...), 'distill:' "
                                                "(adversarial_weight, reconstruction_weight, teacher_weight, "
                                                "teacher_p_mean, teacher_p_std, huber_c, discriminator_lr, "
                                                "discriminator_loss, discriminator_p_mean, discriminator_p_std, "
                                                "head_channels) and 'data:' (a dataset, default: the "
                                                "model's).")] = None,
    max_steps: MaxSteps = None,
    overwrite: Overwrite = False,
):
    """Distill a model (the teacher) into a 1- or few-step student, adversarially (MobileVD, SF-V, SnapGen-V).

    The student starts from the teacher's weights. The run (checkpoints, log.jsonl, loss.png) lives in OUTPUT.work
    and resumes when run again; OUTPUT, a normal model folder that samples with its step count by default, is
    written when training completes.
    """
    from lightvid.io import atomic_dir
    from lightvid.train import finetune_config
    from lightvid.train import train as run_training
    from lightvid.train.state import latest_checkpoint, read_step
    from lightvid.weights import model_folder

    check_range("--student-steps", student_steps, 1, 8)
    check_range("--max-steps", max_steps, 1, MAX_TRAIN_STEPS)
    _check_folder_output(output, "-o/--output", overwrite, model)
    _check_folder_output(output.with_name(output.name + ".work"), "-o/--output", model=model)
    sections = _read_sections(config, ("train", "distill", "data")) if config else {}
    folder = model_folder(model)
    work = output.with_name(output.name + ".work")
    run = finetune_config(folder, work, {**DISTILL_TRAIN, **sections.get("train", {})}, sections.get("data"),
                          distill={"teacher": model, **sections.get("distill", {}), "student_steps": student_steps})
    run_training(run, max_steps=max_steps)
    done = read_step(latest_checkpoint(work))
    if done < run.train.steps:
        typer.echo(f"stopped at step {done} of {run.train.steps}; run the same command again to continue")
        return
    with atomic_dir(output, overwrite=overwrite) as tmp:
        shutil.copytree(work / "model", tmp, dirs_exist_ok=True)
    typer.echo(f"wrote {output} ({student_steps}-step student of {model}; training run in {work})")


@app.command("export")
def export(
    model: Annotated[str, typer.Argument(help=f"The model to export: {NATIVE_MODELS}.")],
    output: ModelOutput,
    fmt: Annotated[str, typer.Option("--format", help="onnx (network.onnx for onnxruntime: any frame count and "
                                     "size) or executorch (network.pte for the ExecuTorch runtime, float32, lowered "
                                     "to XNNPACK: up to the model's window and size; the export takes minutes; "
                                     "needs pip install 'lightvid[executorch]').")] = "onnx",
    quantize: Annotated[str, typer.Option(help="none (float32) or int8 (--format onnx only: static int8 weights "
                                          "and activations for onnxruntime, calibrated on the network's inputs "
                                          "while the model samples clips of its training data: faster, lossy; the "
                                          "parity report says how much).")] = "none",
    overwrite: Overwrite = False,
):
    """Export MODEL's denoising network: OUTPUT is MODEL's folder plus network.onnx (or network.pte) and export.json.

    Every command loads OUTPUT with --model OUTPUT; with --runtime onnx (or executorch) it runs the exported network
    in onnxruntime, any frame count and size (or in the ExecuTorch runtime, up to the model's window and size). The
    conditioning around the network (a flow hint's optical flow, the warps, patch folding) and the sampler stay in
    PyTorch/NumPy. After the export a parity report is printed and kept in export.json: the network's max abs
    difference from PyTorch on the inputs it gets while sampling, the PSNR of whole generations against PyTorch
    (same seed and inputs; a float32 export under 35 dB is refused), and one network call timed in both runtimes.
    A model that ships a few-step student has it exported too.
    """
    from lightvid.export import check_export_options, export_model

    check_export_options(fmt, quantize)  # before the output folder is checked: the options come first
    _check_folder_output(output, "-o/--output", overwrite, model)
    export_model(model, output, fmt, quantize, overwrite, log=typer.echo)
    typer.echo(f"wrote {output} (use it with --model {output} --runtime {fmt})")


def _check_folder_output(path: Path, option: str, overwrite: bool | None = None, model: str | None = None) -> None:
    """Before any work: `path` can become a folder (a new, empty or, with `overwrite`, replaceable one; `overwrite`
    None: an existing folder is reused, as a work folder is), and it neither is nor holds the model folder read."""
    from lightvid.io import check_dir_target
    from lightvid.io.paths import check_name_length, check_not_input

    if not path.name or path.name == "..":
        raise LightvidError(f"{option} {str(path)!r}: expected the path of a folder to create, with a name")
    check_name_length(path)
    if model is not None and Path(model).exists():  # an embedded name is inside the package, never an output
        check_not_input(path, [model], folder=True, what=option)
    if overwrite is not None:
        check_dir_target(path, overwrite)
    elif path.exists() and not path.is_dir():
        raise LightvidError(f"{option} {path}: exists and is not a folder; expected a folder")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK)):
        raise LightvidError(f"{option} {path}: cannot create a folder in {parent}")


def _read_sections(path: Path, accepted: tuple[str, ...]) -> dict:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise LightvidError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise LightvidError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    unknown = sorted(set(raw) - set(accepted)) if isinstance(raw, dict) else ["(not a mapping)"]
    if unknown:
        raise LightvidError(f"{path}: unknown section(s) {unknown}; accepted: {', '.join(accepted)}")
    if not all(isinstance(v, dict) for v in raw.values() if v is not None):
        raise LightvidError(f"{path}: each section ({', '.join(accepted)}) must be a mapping")
    return {k: v for k, v in raw.items() if v is not None}


def _print_table(name: str, as_json: bool) -> None:
    if name != "mobilevd":
        raise LightvidError(f"--table: unknown table '{name}'; accepted: mobilevd")
    from lightvid.compress.mobilevd_table import mobilevd_rows

    rows = mobilevd_rows()
    if as_json:
        typer.echo(json.dumps(dict(table=name, rows=[dict(label=r.label, tflops=r.tflops, paper_tflops=r.paper,
                                                          params=r.params) for r in rows])))
        return
    typer.echo("MobileVD Table 2: one SVD UNet evaluation, batch 1, 14 frames")
    typer.echo(f"{'configuration':<48} {'lightvid':>9} {'paper':>7} {'diff':>7} {'params':>15}")
    for r in rows:
        typer.echo(f"{r.label:<48} {r.tflops:>9.2f} {r.paper:>7.2f} {r.difference:>+7.1%} {r.params:>15,}")
    typer.echo("TFLOPs (multiply-add = 2). Choices where the paper is silent: lightvid/compress/mobilevd_table.py")


def _flops_text(flops: int) -> str:
    return f"{flops / 1e12:.2f} TFLOPs" if flops >= 1e12 else f"{flops / 1e9:.2f} GFLOPs"
