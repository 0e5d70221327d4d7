"""Training configuration: a small YAML file (see configs/) mapped onto dataclasses, every key checked."""
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from lightvid.errors import LightvidError
from lightvid.models import MarDiniConfig, UNetConfig, read_config
from lightvid.models.mardini_config import FAMILY as MARDINI
from lightvid.pipelines.native import NativeSettings, read_settings
from lightvid.tasks import TRAINED_TASKS

from .objective import FRAME_WEIGHTS


@dataclass
class DiffusionConfig:
    """EDM training noise (Karras et al. 2022): σ ~ LogNormal(p_mean, p_std), λ(σ) weighting (see train/objective.py).

    frame_weight: "uniform" or "hint_relative" (each frame's error over its hint's; hint_residual prediction only),
    see train/objective.py."""
    p_mean: float = -1.2
    p_std: float = 1.2
    frame_weight: str = "uniform"


@dataclass
class OptimConfig:
    batch_size: int = 8
    steps: int = 10000
    lr: float = 2e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = False
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    log_every: int = 20
    num_workers: int = 1
    # Temporal-block pruning (models with temporal_gating): learning rate of the gate scores (they start far
    # from their final values and only a few hundred steps are spent on them) and the L1 weight of "l1" gates.
    gate_lr: float = 0.05
    gate_l1: float = 1e-3


@dataclass
class DistillConfig:
    """Adversarial distillation to few steps (lightvid/train/distill.py explains each choice)."""
    teacher: str  # model folder or embedded name; the student starts from it
    student_steps: int = 1
    # The adversarial gradient at the student's sample is rescaled to adversarial_weight × the (unweighted)
    # reconstruction gradient's norm at every step: a ratio of pushes, not a fixed loss weight. mnist, 1 step,
    # 500 steps: 0.5 left a student that fades into a still frame, 2.0 one that moves (bench/RESULTS.md).
    adversarial_weight: float = 2.0
    reconstruction_weight: float = 1.0
    huber_c: float = 0.03  # pseudo-Huber sqrt(d² + c²) − c: quadratic below c, linear above (pixels in [-1, 1])
    # The heads must learn faster than the student moves: with 2e-4 and the training σ distribution, the mnist
    # discriminator stayed at chance (hinge loss ≈ 2 per head) for a whole 500-step run (bench/RESULTS.md).
    discriminator_lr: float = 1e-3
    discriminator_loss: str = "hinge"  # or "nonsaturating"
    # σ_d ~ LogNormal(mean, std) re-noises real and fake clips before the discriminator: lower than the training
    # distribution (mnist: -1.2, 1.2), because above σ ≈ 1 real and fake clips look alike and the heads learn
    # nothing there.
    discriminator_p_mean: float = -2.0
    discriminator_p_std: float = 1.0
    head_channels: int = 64
    # The teacher term (ADD's score distillation; 0 = off): pseudo-Huber to the frozen teacher's denoising of the
    # student's sample re-noised to σ_t ~ LogNormal(teacher_p_mean, teacher_p_std). One teacher call per step.
    teacher_weight: float = 0.0
    teacher_p_mean: float = -1.0
    teacher_p_std: float = 1.0


# the task mix of a config without `tasks:` (and of every `lightvid distill` run): task name -> weight
DEFAULT_TASKS = {"animate": 0.3, "interpolate": 0.2, "extend": 0.2, "random": 0.2, "unconditional": 0.1}
# pipeline settings that the data fixes (the trained model's pipeline.json takes them from the clips)
FROM_DATA = ("num_frames", "height", "width")


@dataclass
class CurriculumStage:
    """Steps before `until` train on clips cut to their first `num_frames` frames, with the task mix `tasks` (None:
    the config's): MarDini's curriculum of frame counts and mask ratios (each task masks its own share of frames,
    lightvid.tasks.registry: random about half, extend up to half, keyframes three quarters, interpolate all but
    two, animate all but one)."""
    until: int
    num_frames: int
    tasks: dict | None = None


@dataclass
class TrainConfig:
    output_dir: str
    # the network's architecture: a SpaceTimeUNet, or MarDini's planner + generator (`family: mardini`); its in/out
    # channels follow from `pipeline` (leave them out)
    model: UNetConfig | MarDiniConfig
    data: dict  # build_dataset(name=..., **kwargs)
    # The trained model's pipeline.json: frame format (data_channels, patch, fps), conditioning, prediction,
    # sigma_data and sampling defaults; num_frames, height and width come from the data.
    pipeline: NativeSettings = field(default_factory=NativeSettings)
    seed: int = 0
    tasks: dict = field(default_factory=lambda: dict(DEFAULT_TASKS))
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    # A native model folder whose weights start the run (finetuning; lightvid compress). `model` and `pipeline`
    # may then be left out: they are read from the folder.
    init_from: str | None = None
    # Present: train a few-step student of `distill.teacher` adversarially instead of denoising (lightvid distill).
    distill: DistillConfig | None = None
    # Stages of frame counts and task mixes, by step (CurriculumStage); None: every step the data's whole clips and
    # `tasks`. The last stage holds from its start to the end of the run.
    curriculum: list[CurriculumStage] | None = None

    def stage(self, step: int) -> tuple[int | None, dict]:
        """(frames to cut the clips to, None for all; task mix) at training step `step`."""
        for stage in self.curriculum or ():
            if step < stage.until or stage is self.curriculum[-1]:
                return stage.num_frames, stage.tasks or self.tasks
        return None, self.tasks


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise LightvidError(f"config: '{where}' must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LightvidError(f"config: unknown key(s) {unknown} in '{where}'; accepted: {sorted(known)}")
    try:
        return cls(**values)
    except (TypeError, LightvidError) as e:
        raise LightvidError(f"config: '{where}': {e}") from None


def _network(raw_model, settings: NativeSettings) -> UNetConfig | MarDiniConfig:
    """The `model` section with in/out channels derived from the pipeline settings (given ones must agree); with
    `family: mardini` a MarDini network, which also takes the frame format (data_channels, patch) from them."""
    if not isinstance(raw_model, dict):
        raise LightvidError("config: 'model' must be a mapping")
    channels = settings.conditioning.channels(settings.data_channels, settings.patch)
    given = (raw_model.get("in_channels", channels[0]), raw_model.get("out_channels", channels[1]))
    if given != channels:
        raise LightvidError(f"config: model in/out channels {given[0]}/{given[1]} disagree with the pipeline "
                            f"settings, which need {channels[0]}/{channels[1]}; leave them out (they are derived)")
    derived = {"in_channels": channels[0], "out_channels": channels[1]}
    family = raw_model.get("family", "unet")
    if family == MARDINI:
        derived.update(data_channels=settings.data_channels, patch=settings.patch)
        return MarDiniConfig.from_dict({**raw_model, **derived})
    if family != "unet":
        raise LightvidError(f"config: model family {family!r} is not one of unet, {MARDINI}")
    return UNetConfig.from_dict({k: v for k, v in {**raw_model, **derived}.items() if k != "family"})


def config_from_dict(raw: dict) -> TrainConfig:
    raw = dict(raw)
    if isinstance(raw.get("distill"), dict) and "teacher" in raw["distill"] and not raw.get("init_from"):
        raw["init_from"] = raw["distill"]["teacher"]  # a student starts from its teacher
    if raw.get("init_from"):
        from lightvid.weights import model_folder
        folder = model_folder(raw["init_from"])
        raw["init_from"] = str(folder)
        raw.setdefault("model", read_config(folder).to_dict())
        saved = read_settings(folder)[0].to_dict()  # the folder's settings, changed where `pipeline` says
        raw["pipeline"] = _merged({k: v for k, v in saved.items() if k not in FROM_DATA}, raw.get("pipeline") or {})
    pipeline = raw.get("pipeline", {})
    if not isinstance(pipeline, dict):
        raise LightvidError("config: 'pipeline' must be a mapping")
    fixed = sorted(set(pipeline) & set(FROM_DATA))
    if fixed:
        raise LightvidError(f"config: pipeline {fixed} come from the data section, not from 'pipeline'")
    raw["pipeline"] = _build(NativeSettings, pipeline, "pipeline")
    if "model" not in raw:
        raise LightvidError("config: a 'model' section (the UNet's architecture) is needed without init_from")
    raw["model"] = _network(raw["model"], raw["pipeline"])
    sections = {"diffusion": lambda v: _build(DiffusionConfig, v, "diffusion"),
                "train": lambda v: _build(OptimConfig, v, "train"),
                "distill": lambda v: None if v is None else _build(DistillConfig, v, "distill")}
    for key, make in sections.items():
        if key in raw:
            raw[key] = make(raw[key])
    config = _build(TrainConfig, raw, "top level")
    _check_tasks(config.tasks, "'tasks'")
    t = config.train
    for name in ("batch_size", "steps", "checkpoint_every", "log_every"):
        value = getattr(t, name)
        if not isinstance(value, int) or value < 1:
            raise LightvidError(f"config: '{name}' must be an integer >= 1, got {value!r}")
    if not isinstance(t.warmup_steps, int) or t.warmup_steps < 0 or not isinstance(t.num_workers, int) \
            or t.num_workers < 0:
        raise LightvidError("config: 'warmup_steps' and 'num_workers' must be integers >= 0")
    numbers = (t.lr, t.ema_decay, t.grad_clip, t.weight_decay, t.gate_lr, t.gate_l1)
    if not all(isinstance(v, (int, float)) for v in numbers) or not (
            t.lr > 0 and 0 <= t.ema_decay < 1 and t.grad_clip > 0 and t.gate_lr > 0 and t.gate_l1 >= 0):
        raise LightvidError("config: need lr > 0, 0 <= ema_decay < 1, grad_clip > 0, gate_lr > 0 and gate_l1 >= 0")
    prediction = config.pipeline.prediction
    if config.diffusion.frame_weight not in FRAME_WEIGHTS or (
            config.diffusion.frame_weight == "hint_relative" and prediction != "hint_residual"):
        raise LightvidError(f"config: diffusion.frame_weight '{config.diffusion.frame_weight}' is not one of "
                            f"{', '.join(FRAME_WEIGHTS)} (hint_relative needs pipeline.prediction hint_residual)")
    if config.distill is not None:
        if isinstance(config.model, MarDiniConfig):
            raise LightvidError("distill: adversarial distillation trains SpaceTimeUNet students, not MarDini")
        _check_distill(config.distill)
    if "name" not in config.data:
        raise LightvidError("config: 'data' needs a 'name' (a dataset: moving_mnist, camera_motion, ...)")
    config.curriculum = _curriculum(config.curriculum)
    return config


def _check_tasks(tasks, where: str) -> None:
    if not isinstance(tasks, dict):
        raise LightvidError(f"config: {where} must be a mapping of task names to weights")
    unknown_tasks = sorted(set(tasks) - set(TRAINED_TASKS))
    if unknown_tasks:
        raise LightvidError(f"config: unknown task(s) {unknown_tasks} in {where}; accepted: "
                            f"{', '.join(TRAINED_TASKS)}")
    weights = list(tasks.values())
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights) \
            or sum(weights) <= 0:
        raise LightvidError(f"config: task weights in {where} must be numbers >= 0 with a positive sum, got {tasks}")


def _curriculum(raw) -> list[CurriculumStage] | None:
    """The `curriculum` section: a list of stages with increasing `until` steps (each checked)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise LightvidError("config: 'curriculum' must be a non-empty list of stages {until, num_frames, tasks}")
    stages = [_build(CurriculumStage, stage, f"curriculum[{i}]") for i, stage in enumerate(raw)]
    previous = 0
    for i, stage in enumerate(stages):
        for name, low in (("until", previous + 1), ("num_frames", 2)):
            value = getattr(stage, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise LightvidError(f"config: curriculum[{i}].{name} must be an integer >= {low}, got {value!r}")
        if stage.tasks is not None:
            _check_tasks(stage.tasks, f"curriculum[{i}].tasks")
        previous = stage.until
    return stages


def _check_distill(d: DistillConfig) -> None:
    if not isinstance(d.student_steps, int) or not 1 <= d.student_steps <= 8:
        raise LightvidError(f"distill: student_steps must be an integer in [1, 8], got {d.student_steps!r}")
    if d.discriminator_loss not in ("hinge", "nonsaturating"):
        raise LightvidError(f"distill: discriminator_loss '{d.discriminator_loss}' is not one of hinge, nonsaturating")
    numbers = (d.adversarial_weight, d.reconstruction_weight, d.teacher_weight, d.huber_c, d.discriminator_lr,
               d.discriminator_p_mean, d.discriminator_p_std, d.teacher_p_mean, d.teacher_p_std)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) \
            or min(d.adversarial_weight, d.reconstruction_weight, d.teacher_weight) < 0 \
            or min(d.discriminator_p_std, d.teacher_p_std) < 0 or min(d.huber_c, d.discriminator_lr) <= 0 \
            or not isinstance(d.head_channels, int) or d.head_channels < 1:
        raise LightvidError("distill: weights and p_std values must be numbers >= 0; huber_c, discriminator_lr and "
                            "head_channels > 0")


def finetune_config(folder, output_dir, train: dict, data: dict | None = None, **extra) -> TrainConfig:
    """A config that continues training the native model in `folder` (its network, pipeline settings and dataset)
    into `output_dir`, with `train` options; `extra` top-level keys (distill, tasks) pass through."""
    settings, facts = read_settings(folder)
    if data is None:
        if "dataset" not in facts:
            raise LightvidError(f"{folder}: the model does not say which dataset it was trained on "
                                "(pipeline.json 'dataset'); give a 'data:' section")
        if settings.height != settings.width:
            raise LightvidError("finetuning on the built-in datasets needs square frames; give a 'data:' section")
        data = {"name": facts["dataset"], "num_frames": settings.num_frames, "size": settings.height}
    return config_from_dict({"output_dir": str(output_dir), "init_from": str(folder), "data": data, "train": train,
                             **extra})


# mappings that an override replaces as a whole: another dataset's options, a task mix, a conditioning's choices
WHOLE = ("data", "tasks", "conditioning")


def _merged(base: dict, override: dict) -> dict:
    """`override` on top of `base`, mappings merged key by key (a section names only what it changes), except the
    WHOLE ones."""
    if not isinstance(override, dict):
        raise LightvidError(f"config: expected a mapping, got {override!r}")
    out = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict) and key not in WHOLE
        out[key] = _merged(out[key], value) if nested else value
    return out


def read_yaml_config(path, seen: tuple = ()) -> dict:
    """A config file as a mapping, with its `base:` (a config file, relative to this one) merged underneath."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise LightvidError(f"{path}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError:
        raise LightvidError(f"{path}: not a text file (a training config is UTF-8 YAML)") from None
    except yaml.YAMLError as e:
        raise LightvidError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise LightvidError(f"{path}: a training config is a YAML mapping")
    base = raw.pop("base", None)
    if base is None:
        return raw
    base_path = (path.parent / str(base)).resolve()
    if base_path in seen:
        raise LightvidError(f"{path}: 'base' includes itself ({base})")
    return _merged(read_yaml_config(base_path, (*seen, path.resolve())), raw)


def load_config(path) -> TrainConfig:
    return config_from_dict(read_yaml_config(path))
