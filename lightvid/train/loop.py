"""The training loop: masked-frame EDM training of a native network (SpaceTimeUNet or MarDini) under accelerate.

Runs unchanged on one CPU process, `accelerate launch --num_processes N --cpu`, or multi-GPU / multi-node.
Exact resume: the data order and every random draw are functions of (seed, step, rank), and a checkpoint holds
weights, EMA and optimizer moments, so a run killed and resumed ends with the same weights as one that was not.
A kill at any moment (SIGKILL, Ctrl-C, power loss) leaves a run that a rerun finishes to those weights: outputs are
written atomically, a rerun first removes the temporary outputs a kill left behind, drops the log records after the
checkpoint it resumes from, and re-exports `model/` when it lags the last checkpoint.
"""
import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from lightvid.conditioning import PREDICTIONS
from lightvid.data import WebDatasetShards, build_dataset
from lightvid.diffusion import Denoiser
from lightvid.errors import LightvidError
from lightvid.io import atomic_dir, atomic_write
from lightvid.models import MarDini, SpaceTimeUNet, build_network, load_network
from lightvid.models.native import NativeNet
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import sample_training_masks

from .batches import ShardBatches, StepBatches, _seed
from .config import TrainConfig
from .objective import denoising_loss
from .plots import plot_loss_curve
from .state import latest_checkpoint, load_extra, load_optimizer, read_step, save_checkpoint

# Temporary outputs of this run's atomic writes (lightvid.io.atomic names them `.<name>.<random>.tmp[suffix]`, and
# `.<name>.<random>.old` for a folder being replaced): a SIGKILL leaves them behind, a rerun removes them.
STALE_TEMPS = ("checkpoints/.step_*.tmp", "checkpoints/.step_*.old", ".model.*.tmp", ".model.*.old",
               ".log.*.tmp.jsonl", ".loss.*.tmp.png")


def remove_stale_temps(output_dir: Path) -> None:
    """Delete the temporary outputs an interrupted run left in `output_dir` (nothing else is touched)."""
    for pattern in STALE_TEMPS:
        for path in Path(output_dir).glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _logged_step(line: str) -> float:
    """The step of one JSONL record; a line cut short by a kill (or anything else) counts as past any checkpoint."""
    try:
        step = json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
    return step if isinstance(step, int | float) and not isinstance(step, bool) else math.inf


def truncate_log(log_path: Path, step: int) -> None:
    """Keep the log's records up to `step` (the checkpoint a run resumes from: later ones are trained again), drop
    a line cut short by a kill; a log with no record left is removed (an empty file is no log)."""
    if not log_path.exists():
        return
    old = log_path.read_text(errors="replace")
    text = "".join(line + "\n" for line in old.splitlines() if _logged_step(line) <= step)
    if not text:
        log_path.unlink(missing_ok=True)
    elif text != old:
        with atomic_write(log_path) as tmp:
            Path(tmp).write_text(text)


def exported_step(folder: Path) -> int | None:
    """`trained_steps` of the model folder a run exported (None: no complete model folder)."""
    try:
        return json.loads((Path(folder) / "pipeline.json").read_text()).get("trained_steps")
    except (OSError, ValueError, AttributeError):
        return None


def learning_rate(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def ema_decay(step: int, target: float) -> float:
    """EMA decay with warm-up, (1 + step) / (10 + step) capped at `target`: early averages forget the random
    initial weights quickly (with a fixed 0.995, 13% of the init would still be in the EMA at step 400)."""
    return min(target, (1 + step) / (10 + step))


def _check_same_run(checkpoint: Path, config: TrainConfig) -> None:
    """Resuming continues the same run: only its length and its logging / checkpoint cadence may change."""
    saved = json.loads((checkpoint / "state.json").read_text())["config"]
    current = json.loads(json.dumps(asdict(config)))
    free = {"init_from", "train.steps", "train.checkpoint_every", "train.log_every", "train.num_workers",
            "pipeline.steps", "pipeline.sampler"}  # sampling defaults: no training step reads them
    # dataclasses: a field newer than the run was at its default
    sections = ("model", "pipeline", "diffusion", "train", "distill")
    changed = [key for key, value in current.items()
               if key not in free | set(sections) and key in saved and saved[key] != value]
    for section in sections:
        now, then = current.get(section), saved.get(section)
        if isinstance(now, dict) and isinstance(then, dict):
            changed += [f"{section}.{key}" for key, value in now.items()
                        if f"{section}.{key}" not in free and key in then and then[key] != value]
        elif section in saved and now != then:  # present on one side only (a distill section)
            changed.append(section)
    if changed:
        raise LightvidError(f"{checkpoint}: this run was started with other settings ({', '.join(changed[:4])}); "
                            "use a new output folder, or the same settings")


def _initial_weights(config: TrainConfig) -> SpaceTimeUNet | MarDini:
    """The `init_from` model's network, checked against the run's: the same architecture and channels (its hint may
    differ, e.g. a flow hint where it had a nearest-frame one: no weight depends on where a hint comes from)."""
    start = NativePipeline.from_pretrained(config.init_from)
    if start.unet.config != config.model:
        raise LightvidError(f"init_from {config.init_from}: its network differs from the config's 'model' and "
                            "'pipeline' (leave them out to use the folder's)")
    return start.unet


def _param_groups(unet: SpaceTimeUNet | MarDini, opt) -> list[dict]:
    """Network weights at the scheduled learning rate; pruning-gate scores at gate_lr (times the same warm-up /
    cosine factor), without weight decay."""
    gates = [p for name, p in unet.named_parameters() if name.startswith("temporal_gates.")]
    weights = [p for name, p in unet.named_parameters() if not name.startswith("temporal_gates.")]
    groups = [{"params": weights, "lr_scale": 1.0}]
    if gates:
        groups.append({"params": gates, "lr_scale": opt.gate_lr / opt.lr, "weight_decay": 0.0})
    return groups


def _distillation(config: TrainConfig):
    """The adversarial objective of a `distill` run (teacher loaded from its folder), else None."""
    if config.distill is None:
        return None
    from lightvid.weights import model_folder

    from .distill import Distillation

    teacher = NativePipeline.from_pretrained(model_folder(config.distill.teacher))
    return Distillation(config.distill, teacher, config.pipeline.sigma_min, config.pipeline.sigma_max)


def export_model(unet: SpaceTimeUNet | MarDini, ema: dict, config: TrainConfig, step: int, clip_shape,
                 folder: Path) -> None:
    """Write the EMA weights as a ready-to-use native model folder (what CLI commands load), atomically."""
    with torch.device("meta"):
        shipped = build_network(unet.config)
    shipped.load_state_dict({k: v.clone() for k, v in ema.items()}, assign=True)
    frames, _, height, width = clip_shape
    settings = replace(config.pipeline, num_frames=frames, height=height, width=width)
    data = {}  # the dataset's options (where its files are: `lightvid eval` reads them); the JSON-able ones
    for key, value in config.data.items():
        try:  # paths as strings
            data[key] = json.loads(json.dumps(value, default=lambda v: str(Path(v))))
        except (TypeError, ValueError):
            pass
    facts = {"trained_steps": step, "dataset": data.pop("name"), "data": data}
    if config.distill is not None:  # a student samples with the steps it was distilled for, by default
        settings = replace(settings, steps=config.distill.student_steps, sampler="renoise")
        facts.update(distilled_from=str(config.distill.teacher), student_steps=config.distill.student_steps)
    with atomic_dir(folder, overwrite=True) as tmp:
        NativePipeline(shipped, settings).save_pretrained(tmp, extra=facts)


def _publish(unet: SpaceTimeUNet | MarDini, ema: dict, config: TrainConfig, step: int, clip_shape,
             out: Path) -> None:
    """What follows each checkpoint: the exported model folder, then the loss curve."""
    export_model(unet, ema, config, step, clip_shape, out / "model")
    plot_loss_curve(out / "log.jsonl", out / "loss.png")


def train(config: TrainConfig, max_steps: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) until `config.train.steps`, or stop after `max_steps` more steps. Returns output_dir.

    A rerun after a kill at any moment continues to the weights of an uninterrupted run: it removes the temporary
    outputs the kill left, and first re-exports `model/` if it lags the last checkpoint (a run already at its last
    step only does that). An exception (KeyboardInterrupt included) propagates after this run's temporary outputs
    are removed."""
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise LightvidError(f"--max-steps must be an integer >= 1, got {max_steps!r}")
    from accelerate import PartialState

    out = Path(config.output_dir)
    main = PartialState().is_main_process
    if main:
        remove_stale_temps(out)
    try:
        return _train(config, max_steps, progress)
    except BaseException:
        if main:  # atomic writes remove their own temporaries; this also covers a second Ctrl-C during that
            remove_stale_temps(out)
        raise


def _train(config: TrainConfig, max_steps: int | None, progress: bool) -> Path:
    opt = config.train
    from accelerate import PartialState

    from lightvid.models.precision import network_dtype  # bf16: true falls back to float32 where bf16 is emulated
    state = PartialState()
    native = network_dtype(opt.bf16, state.device, "bf16: true", notice=state.is_main_process) == torch.bfloat16
    accelerator = Accelerator(mixed_precision="bf16" if native else "no")
    out = Path(config.output_dir)
    torch.manual_seed(config.seed)
    unet = build_network(config.model)
    checkpoint = latest_checkpoint(out)
    if checkpoint is None and config.init_from:
        unet.load_state_dict(_initial_weights(config).state_dict())
    unet.set_gradient_checkpointing(opt.gradient_checkpointing)
    optimizer = torch.optim.AdamW(_param_groups(unet, opt), lr=opt.lr, weight_decay=opt.weight_decay)
    ema = {k: v.detach().clone().float() for k, v in unet.state_dict().items()}

    start = 0
    if checkpoint is not None:
        saved = load_network(checkpoint / "unet")
        if saved.config != config.model:
            raise LightvidError(f"{checkpoint}: was trained with another 'model' config; use a new output_dir")
        _check_same_run(checkpoint, config)
        unet.load_state_dict(saved.state_dict())
        ema = load_file(checkpoint / "ema.safetensors")
        load_optimizer(optimizer, checkpoint)
        start = read_step(checkpoint)
        if accelerator.is_main_process:
            print(f"resuming from {checkpoint} (step {start})")
    distill = _distillation(config)
    if distill is not None and checkpoint is not None:
        load_extra(checkpoint, "discriminator", distill.heads(), distill.optimizer)
    p = config.pipeline
    model, optimizer = accelerator.prepare(NativeNet(unet, p.conditioning, p.prediction, p.patch), optimizer)
    if distill is not None:
        distill.prepare(accelerator)
    denoiser = Denoiser(model, prediction=PREDICTIONS[p.prediction], sigma_data=p.sigma_data)

    dataset = build_dataset(config.data["name"], **{k: v for k, v in config.data.items() if k != "name"})
    rank, world = accelerator.process_index, accelerator.num_processes
    if isinstance(dataset, WebDatasetShards):  # read by position: the same exact resume (train/batches.py)
        batches = ShardBatches(dataset, opt.batch_size, config.seed, rank, world)
    elif isinstance(dataset, IterableDataset):
        raise LightvidError(f"training needs a map-style dataset or webdataset shards, not {config.data['name']}")
    else:
        batches = StepBatches(dataset, opt.batch_size, config.seed, rank, world)
    clip_shape = batches.clip_shape  # (f, c, h, w)
    try:  # the model's settings with the data's frame size, checked before the first step
        replace(p, num_frames=clip_shape[0], height=clip_shape[2], width=clip_shape[3]).check_frame_size()
    except LightvidError as e:
        raise LightvidError(f"config: the data's frames: {e}") from None
    if clip_shape[1] != p.data_channels:
        raise LightvidError(f"config: pipeline.data_channels is {p.data_channels} but the dataset gives "
                            f"{clip_shape[1]}-channel frames")
    longest = max((stage.num_frames for stage in config.curriculum or ()), default=0)
    if longest > clip_shape[0]:
        raise LightvidError(f"config: the curriculum cuts clips to {longest} frames; the data's clips have "
                            f"{clip_shape[0]}")
    end = opt.steps if max_steps is None else min(opt.steps, start + max_steps)
    log_path = out / "log.jsonl"
    if accelerator.is_main_process:
        truncate_log(log_path, start)  # drop records past the checkpoint we resume from
        if checkpoint is not None and exported_step(out / "model") != start:  # killed before (or during) export
            print(f"exporting {out / 'model'} from {checkpoint} (step {start})")
            _publish(unet, ema, config, start, clip_shape, out)
        elif checkpoint is not None:  # a kill may have come between the export and the loss curve: redraw it
            plot_loss_curve(log_path, out / "loss.png")
    if start >= end:  # nothing left to train
        accelerator.wait_for_everyone()
        return out
    loader = DataLoader(batches, batch_size=None, sampler=range(start, end), num_workers=opt.num_workers,
                        persistent_workers=False)

    bar = tqdm(total=opt.steps, initial=start, disable=not (progress and accelerator.is_main_process),
               desc="training", unit="step", dynamic_ncols=True)
    tic = time.perf_counter()
    try:
        for step, clips in enumerate(loader, start=start):
            frames, tasks = config.stage(step)
            clips = clips[:, :frames].to(accelerator.device)
            g = torch.Generator().manual_seed(_seed(config.seed, step, accelerator.process_index, 1))
            clips, mask = sample_training_masks(clips, tasks, g)  # (b, f, 1, h, w), 1 = given
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, opt) * group.get("lr_scale", 1.0)  # older runs: no scale
            network = accelerator.unwrap_model(model).unet
            gates = network.temporal_gates
            if gates is not None:
                gates.reseed(_seed(config.seed, step, 2))  # the same gates on every rank
            if isinstance(network, MarDini):  # its null-plan draws (per rank: each rank's clips are its own)
                network.reseed(_seed(config.seed, step, accelerator.process_index, 3))
            logs = {}
            with accelerator.autocast():
                if distill is None:
                    loss = denoising_loss(denoiser, clips, mask, g, config.diffusion.p_mean, config.diffusion.p_std,
                                          config.diffusion.frame_weight)
                else:
                    loss, logs, fake = distill.generator_loss(denoiser, clips, mask, g)
                if gates is not None:
                    loss = loss + opt.gate_l1 * gates.penalty()
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), opt.grad_clip)
            optimizer.step()
            if gates is not None:
                gates.project()
            if distill is not None:
                logs.update(distill.discriminator_step(clips, mask, fake, g, accelerator))
            with torch.no_grad():  # EMA in float32, identical on every rank (DDP keeps weights in sync)
                decay = ema_decay(step, opt.ema_decay)
                for name, p in accelerator.unwrap_model(model).unet.state_dict().items():
                    ema[name].lerp_(p.float(), 1 - decay)
            done = step + 1
            bar.update(1)
            if accelerator.is_main_process and (done % opt.log_every == 0 or done == end):
                record = {"step": done, "loss": loss.item(), "lr": learning_rate(step, opt),
                          "grad_norm": float(grad_norm), "steps_per_s": (done - start) / (time.perf_counter() - tic),
                          **logs}
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                log_path.parent.mkdir(parents=True, exist_ok=True)
                with log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            if done % opt.checkpoint_every == 0 or done == end:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    core = accelerator.unwrap_model(model).unet
                    extra = {"discriminator": (distill.heads(), distill.optimizer)} if distill is not None else None
                    save_checkpoint(out, done, core, ema, optimizer, asdict(config), extra)
                    _publish(core, ema, config, done, clip_shape, out)
    except BaseException:
        bar.leave = False  # cleared: the message about what stopped the run is the one line left
        bar.close()
        raise
    bar.close()
    accelerator.wait_for_everyone()
    return out
