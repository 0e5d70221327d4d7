"""The training loop: masked-frame EDM training of a native SpaceTimeUNet under accelerate.

Runs unchanged on one CPU process, `accelerate launch --num_processes N --cpu`, or multi-GPU / multi-node.
Exact resume: the data order and every random draw are functions of (seed, step, rank), and a checkpoint holds
weights, EMA and optimizer moments, so a run killed and resumed ends with the same weights as one that was not.
"""
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from lightvid.data import build_dataset
from lightvid.diffusion import Denoiser
from lightvid.errors import LightvidError
from lightvid.io import atomic_dir, atomic_write
from lightvid.models import SpaceTimeUNet
from lightvid.models.native import PREDICTIONS, SWITCHABLE_MODES, NativeNet, widen_for_blend
from lightvid.pipelines.native import NativePipeline, NativeSettings

from .config import TrainConfig
from .masking import sample_given_frames
from .objective import denoising_loss
from .plots import plot_loss_curve
from .state import latest_checkpoint, load_extra, load_optimizer, read_step, save_checkpoint


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and machines)."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return value


class StepBatches(Dataset):
    """Item `step` = this rank's batch of clips for that step: (b, f, c, h, w) frames.

    The clip indices come from a fresh permutation of the dataset per epoch, seeded by (seed, epoch), so the
    batch at any step is known without replaying earlier steps.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int, world: int):
        self.dataset, self.batch_size, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self._perm_epoch, self._perm = -1, None

    def __len__(self) -> int:
        return 1 << 62

    def _index(self, position: int) -> int:
        n = len(self.dataset)
        epoch, offset = divmod(position, n)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(self.seed, epoch)))
            self._perm_epoch = epoch
            if hasattr(self.dataset, "set_epoch"):  # new crops/starts per epoch, still a function of the step
                self.dataset.set_epoch(epoch)
        return int(self._perm[offset])

    def __getitem__(self, step: int) -> torch.Tensor:
        start = (step * self.world + self.rank) * self.batch_size
        return torch.stack([self.dataset[self._index(start + i)][0] for i in range(self.batch_size)])


def _logged_step(line: str) -> float:
    """The step of one JSONL record; a line cut short by a kill counts as past any checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


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
    free = {"init_from", "train.steps", "train.checkpoint_every", "train.log_every", "train.num_workers"}
    sections = ("model", "diffusion", "train", "distill")  # dataclasses: a field newer than the run was at default
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


def _initial_weights(config: TrainConfig) -> SpaceTimeUNet:
    """The `init_from` model, checked against the run's model config and frame format."""
    start = NativePipeline.from_pretrained(config.init_from)
    saved = start.unet.config
    if {saved.conditioning, config.model.conditioning} <= set(SWITCHABLE_MODES):
        # native_nearest <-> native_flow: the same channels and weights, a new hint for in-between frames
        saved = replace(saved, conditioning=config.model.conditioning)
    elif saved.conditioning in SWITCHABLE_MODES and config.model.conditioning == "native_flow_blend":
        # zero weights on the new channels: the run starts from exactly the model it was given
        start.unet = widen_for_blend(start.unet, start.settings.data_channels, start.settings.patch)
        saved = start.unet.config
    saved = replace(saved, flow=config.model.flow)  # the hint's flow: no weight depends on it
    if saved != config.model:
        raise LightvidError(f"init_from {config.init_from}: its UNet config differs from the config's 'model' "
                            "(leave 'model' out to use the folder's)")
    start.unet.config = config.model
    if (start.settings.data_channels, start.settings.patch) != (config.data_channels, config.patch):
        raise LightvidError(f"init_from {config.init_from}: it takes {start.settings.data_channels}-channel frames "
                            f"in {start.settings.patch}x{start.settings.patch} patches; the config says "
                            f"{config.data_channels} and {config.patch}")
    return start.unet


def _param_groups(unet: SpaceTimeUNet, opt) -> list[dict]:
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
    from lightvid.compress.distill import Distillation
    from lightvid.weights import model_folder

    teacher = NativePipeline.from_pretrained(model_folder(config.distill.teacher))
    return Distillation(config.distill, teacher, config.diffusion.sigma_min, config.diffusion.sigma_max)


def export_model(unet: SpaceTimeUNet, ema: dict, config: TrainConfig, step: int, clip_shape, folder: Path) -> None:
    """Write the EMA weights as a ready-to-use native model folder (what CLI commands load), atomically."""
    with torch.device("meta"):
        shipped = SpaceTimeUNet(unet.config)
    shipped.load_state_dict({k: v.clone() for k, v in ema.items()}, assign=True)
    frames, _, height, width = clip_shape
    settings = NativeSettings(data_channels=config.data_channels, patch=config.patch, num_frames=frames,
                              height=height, width=width, fps=config.fps,
                              sigma_data=config.diffusion.sigma_data, prediction=config.diffusion.prediction,
                              sigma_min=config.diffusion.sigma_min,
                              sigma_max=config.diffusion.sigma_max, steps=config.diffusion.sample_steps,
                              sampler=config.diffusion.sampler)
    facts = {"trained_steps": step, "dataset": config.data["name"]}
    if config.distill is not None:  # a student samples with the steps it was distilled for, by default
        settings = replace(settings, steps=config.distill.student_steps, sampler="renoise")
        facts.update(distilled_from=str(config.distill.teacher), student_steps=config.distill.student_steps)
    with atomic_dir(folder, overwrite=True) as tmp:
        NativePipeline(shipped, settings).save_pretrained(tmp, extra=facts)


def train(config: TrainConfig, max_steps: int | None = None, progress: bool = True) -> Path:
    """Train (or resume) until `config.train.steps`, or stop after `max_steps` more steps. Returns output_dir."""
    opt = config.train
    accelerator = Accelerator(mixed_precision="bf16" if opt.bf16 else "no")
    out = Path(config.output_dir)
    torch.manual_seed(config.seed)
    unet = SpaceTimeUNet(config.model)
    checkpoint = latest_checkpoint(out)
    if checkpoint is None and config.init_from:
        unet.load_state_dict(_initial_weights(config).state_dict())
    unet.set_gradient_checkpointing(opt.gradient_checkpointing)
    optimizer = torch.optim.AdamW(_param_groups(unet, opt), lr=opt.lr, weight_decay=opt.weight_decay)
    ema = {k: v.detach().clone().float() for k, v in unet.state_dict().items()}

    start = 0
    if checkpoint is not None:
        saved = SpaceTimeUNet.from_pretrained(checkpoint / "unet")
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
    hint_skip = config.diffusion.prediction == "hint_residual"
    model, optimizer = accelerator.prepare(NativeNet(unet, config.patch, hint_skip), optimizer)
    if distill is not None:
        distill.prepare(accelerator)
    denoiser = Denoiser(model, prediction=PREDICTIONS[config.diffusion.prediction],
                        sigma_data=config.diffusion.sigma_data)

    dataset = build_dataset(config.data["name"], **{k: v for k, v in config.data.items() if k != "name"})
    if isinstance(dataset, IterableDataset):
        raise LightvidError("training needs a map-style dataset (moving_mnist, camera_motion, video_folder); "
                            "streaming shards cannot resume exactly yet")
    clip_shape = tuple(dataset[0][0].shape)  # (f, c, h, w)
    if clip_shape[1] != config.data_channels:
        raise LightvidError(f"config: data_channels is {config.data_channels} but the dataset gives "
                            f"{clip_shape[1]}-channel frames")
    batches = StepBatches(dataset, opt.batch_size, config.seed, accelerator.process_index, accelerator.num_processes)
    end = opt.steps if max_steps is None else min(opt.steps, start + max_steps)
    loader = DataLoader(batches, batch_size=None, sampler=range(start, end), num_workers=opt.num_workers,
                        persistent_workers=False)

    log_path = out / "log.jsonl"
    if accelerator.is_main_process and log_path.exists():  # drop records past the checkpoint we resume from
        kept = [line for line in log_path.read_text().splitlines() if _logged_step(line) <= start]
        with atomic_write(log_path) as tmp:
            Path(tmp).write_text("".join(line + "\n" for line in kept))
    bar = tqdm(total=opt.steps, initial=start, disable=not (progress and accelerator.is_main_process),
               desc="training", unit="step", dynamic_ncols=True)
    tic = time.perf_counter()
    for step, clips in enumerate(loader, start=start):
        clips = clips.to(accelerator.device)
        g = torch.Generator().manual_seed(_seed(config.seed, step, accelerator.process_index, 1))
        given = sample_given_frames(clips.shape[0], clips.shape[1], config.tasks, g)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, opt) * group.get("lr_scale", 1.0)  # older runs: no scale
        gates = accelerator.unwrap_model(model).unet.temporal_gates
        if gates is not None:
            gates.reseed(_seed(config.seed, step, 2))  # the same gates on every rank
        logs = {}
        with accelerator.autocast():
            if distill is None:
                loss = denoising_loss(denoiser, clips, given, g, config.diffusion.p_mean, config.diffusion.p_std,
                                      config.diffusion.frame_weight)
            else:
                loss, logs, fake = distill.generator_loss(denoiser, clips, given, g)
            if gates is not None:
                loss = loss + opt.gate_l1 * gates.penalty()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), opt.grad_clip)
        optimizer.step()
        if gates is not None:
            gates.project()
        if distill is not None:
            logs.update(distill.discriminator_step(clips, given, fake, g, accelerator))
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
                export_model(core, ema, config, done, clip_shape, out / "model")
                plot_loss_curve(log_path, out / "loss.png")
    bar.close()
    accelerator.wait_for_everyone()
    return out
