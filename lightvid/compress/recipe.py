"""Compression recipes: a YAML list of transforms, each optionally followed by finetuning (`lightvid compress`).

A recipe (see lightvid/compress/recipes/mobilevd.yaml):
    finetune: {lr: 1.0e-4, batch_size: 8, ...}     # trainer `train` keys shared by every finetuning stage
    data: {name: moving_mnist, ...}                 # optional; default: the model's own training set
    steps:
      - {step: fold_cross_attention}
      - {step: temporal_multiscale, levels: [0], finetune_steps: 300}
      - {step: prune_temporal, keep_fraction: 0.3, gates: topk, finetune_steps: 300}
      - {step: funnels, ratio: 0.5, init: coupled, finetune_steps: 300}
Steps: fold_cross_attention, lower_resolution {height, width}, temporal_multiscale {levels, spatial_levels},
prune_temporal {keep | keep_fraction, gates: topk | l1 | none}, funnels {ratio, init: coupled | svd | he},
finetune {}. Every step takes `finetune_steps` (default 0) and `finetune` (overrides of the shared keys).

Native lightvid models are finetuned with the ordinary trainer (accelerate, checkpoints, resume, loss plot);
each stage lives in `work_dir/NN_step/` and a rerun resumes or skips finished stages. The model after every
stage is kept in `NN_step/result/` (a normal model folder) so each can be measured. SVD folders are
transformed without finetuning (lightvid's trainer trains native models): pruning then ranks blocks by their
learned mix factors, funnels are initialised and merged at once.
"""
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from lightvid.errors import LightvidError
from lightvid.io import atomic_dir, atomic_write, check_dir_target
from lightvid.models import SpaceTimeUNet
from lightvid.models.fold import fold_cross_attention
from lightvid.pipelines.native import PIPELINE_FILE, NativePipeline

from .funnels import FUNNEL_INITS, add_funnels, merge_funnels
from .multiscale import add_multiscale
from .prune import add_temporal_gates, keep_count, prune_temporal_blocks

RECIPES_DIR = Path(__file__).parent / "recipes"
STEP_OPTIONS = {
    "fold_cross_attention": set(),
    "lower_resolution": {"height", "width"},
    "temporal_multiscale": {"levels", "spatial_levels"},
    "prune_temporal": {"keep", "keep_fraction", "gates"},
    "funnels": {"ratio", "init"},
    "finetune": set(),
}
# What each option's value must be: (check, what is accepted).
OPTION_TYPES = {
    "height": (lambda v: isinstance(v, int) and v > 0, "a positive integer"),
    "width": (lambda v: isinstance(v, int) and v > 0, "a positive integer"),
    "levels": (lambda v: isinstance(v, list) and all(isinstance(i, int) for i in v), "a list of level indices"),
    "spatial_levels": (lambda v: isinstance(v, list) and all(isinstance(i, int) for i in v),
                       "a list of level indices"),
    "keep": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "keep_fraction": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a number in [0, 1]"),
    "gates": (lambda v: v in ("topk", "l1", "none"), "topk, l1 or none"),
    "ratio": (lambda v: isinstance(v, (int, float)) and 0 < v <= 1, "a number in (0, 1]"),
    "init": (lambda v: v in FUNNEL_INITS, ", ".join(FUNNEL_INITS)),
}


@dataclass
class RecipeStep:
    step: str
    options: dict = field(default_factory=dict)
    finetune_steps: int = 0
    finetune: dict = field(default_factory=dict)


@dataclass
class Recipe:
    steps: list[RecipeStep]
    finetune: dict = field(default_factory=dict)
    data: dict | None = None


def load_recipe(name_or_path: str) -> Recipe:
    """A bundled recipe by name (lightvid/compress/recipes/NAME.yaml) or a YAML file; every key checked."""
    path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        path = Path(name_or_path)
    bundled = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError:
        raise LightvidError(f"--recipe {name_or_path}: not a bundled recipe ({', '.join(bundled)}) nor a "
                            "readable file") from None
    except yaml.YAMLError as e:
        raise LightvidError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise LightvidError(f"{path}: a recipe is a mapping with a non-empty 'steps' list")
    unknown = sorted(set(raw) - {"steps", "finetune", "data"})
    if unknown:
        raise LightvidError(f"{path}: unknown key(s) {unknown}; accepted: steps, finetune, data")
    steps = []
    for entry in raw["steps"]:
        if not isinstance(entry, dict) or entry.get("step") not in STEP_OPTIONS:
            raise LightvidError(f"{path}: each step needs 'step:' one of {', '.join(STEP_OPTIONS)}; got {entry!r}")
        options = {k: v for k, v in entry.items() if k not in ("step", "finetune_steps", "finetune")}
        extra = sorted(set(options) - STEP_OPTIONS[entry["step"]])
        if extra:
            raise LightvidError(f"{path}: step {entry['step']}: unknown option(s) {extra}; accepted: "
                                f"{[*sorted(STEP_OPTIONS[entry['step']]), 'finetune', 'finetune_steps']}")
        for key, value in options.items():
            check, accepted = OPTION_TYPES[key]
            if not check(value):
                raise LightvidError(f"{path}: step {entry['step']}: {key} must be {accepted}, got {value!r}")
        count, finetune = entry.get("finetune_steps", 0), entry.get("finetune") or {}
        if not isinstance(count, int) or count < 0:
            raise LightvidError(f"{path}: step {entry['step']}: finetune_steps must be an integer >= 0")
        if not isinstance(finetune, dict) or "bf16" in finetune or "steps" in finetune:
            raise LightvidError(f"{path}: step {entry['step']}: finetune must be a mapping of trainer options "
                                "other than bf16 (set once, in the recipe's finetune:) and steps (finetune_steps)")
        steps.append(RecipeStep(entry["step"], options, count, dict(finetune)))
    for key in ("finetune", "data"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise LightvidError(f"{path}: '{key}' must be a mapping")
    return Recipe(steps, dict(raw.get("finetune") or {}), raw.get("data"))


def prepare(step: RecipeStep, unet: SpaceTimeUNet) -> SpaceTimeUNet:
    """The transform applied before a step's finetuning."""
    o = step.options
    if step.step == "fold_cross_attention":
        return fold_cross_attention(unet)
    if step.step == "temporal_multiscale":
        return add_multiscale(unet, tuple(o.get("levels", ())), tuple(o.get("spatial_levels", ())))
    if step.step == "prune_temporal":
        gates = o.get("gates", "topk")
        keep = keep_count(unet, o.get("keep"), o.get("keep_fraction"))
        return unet if gates == "none" else add_temporal_gates(unet, keep, gates)
    if step.step == "funnels":
        return add_funnels(unet, float(o.get("ratio", 0.5)), o.get("init", "coupled"))
    return unet  # lower_resolution, finetune: the data changes, not the network


def finish(step: RecipeStep, unet: SpaceTimeUNet) -> SpaceTimeUNet:
    """What follows a step's finetuning: pruning removes blocks for real, funnels are merged."""
    if step.step == "prune_temporal":
        keep = None if unet.temporal_gates is not None else keep_count(
            unet, step.options.get("keep"), step.options.get("keep_fraction"))
        return prune_temporal_blocks(unet, keep)
    if step.step == "funnels":
        return merge_funnels(unet)
    return unet


def _finetune(pipe: NativePipeline, step: RecipeStep, recipe: Recipe, stage: Path, progress: bool) -> SpaceTimeUNet:
    """Train `pipe` for step.finetune_steps with lightvid's trainer (resumes inside `stage`)."""
    from lightvid.train import finetune_config, train

    start = stage / "start"
    if not (start / PIPELINE_FILE).exists():
        with atomic_dir(start, overwrite=True) as tmp:
            pipe.save_pretrained(tmp)
    options = {**recipe.finetune, **step.finetune, "steps": step.finetune_steps}
    train(finetune_config(start, stage / "train", options, recipe.data), progress=progress)
    return NativePipeline.from_pretrained(stage / "train" / "model").unet


def _lower_resolution(pipe: NativePipeline, step: RecipeStep) -> NativePipeline:
    o = step.options
    height, width = o.get("height", pipe.settings.height), o.get("width", pipe.settings.width)
    if height % pipe.settings.patch or width % pipe.settings.patch:  # types were checked by load_recipe
        raise LightvidError(f"lower_resolution: height and width must be multiples of the patch size "
                            f"({pipe.settings.patch}), got {height}x{width}")
    return NativePipeline(pipe.unet, replace(pipe.settings, height=height, width=width), pipe.facts)


def _claim_stage(stage: Path, step: RecipeStep, recipe: Recipe) -> None:
    """Record what a stage folder is for; a rerun may only resume the same step with the same settings."""
    record = {"step": step.step, "options": step.options, "finetune_steps": step.finetune_steps,
              "finetune": {**recipe.finetune, **step.finetune}, "data": recipe.data}
    marker = stage / "step.json"
    if marker.exists():
        if json.loads(marker.read_text()) != json.loads(json.dumps(record)):
            raise LightvidError(f"{stage} holds a stage of another recipe or budget; pass another --work-dir or "
                                "delete it")
        return
    stage.mkdir(parents=True, exist_ok=True)
    with atomic_write(marker) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1))


def _run_native(folder: Path, recipe: Recipe, work: Path, progress: bool) -> NativePipeline:
    pipe = NativePipeline.from_pretrained(folder)
    if not isinstance(pipe.unet, SpaceTimeUNet):
        raise LightvidError(f"{folder}: MobileVD's transforms compress SpaceTimeUNet models, this one is "
                            f"{type(pipe.unet).__name__}")
    for index, step in enumerate(recipe.steps):
        stage = work / f"{index:02d}_{step.step}"
        result = stage / "result"
        _claim_stage(stage, step, recipe)
        if (result / PIPELINE_FILE).exists():  # finished in an earlier run
            pipe = NativePipeline.from_pretrained(result)
            continue
        if step.step == "lower_resolution":
            pipe = _lower_resolution(pipe, step)
        pipe = NativePipeline(prepare(step, pipe.unet), pipe.settings, pipe.facts)
        if step.finetune_steps:
            pipe = NativePipeline(_finetune(pipe, step, recipe, stage, progress), pipe.settings, pipe.facts)
        record = {"step": step.step, **step.options, "finetune_steps": step.finetune_steps}
        done = [*pipe.facts.get("compressed", []), record]
        pipe = NativePipeline(finish(step, pipe.unet), pipe.settings, {**pipe.facts, "compressed": done})
        with atomic_dir(result, overwrite=True) as tmp:
            pipe.save_pretrained(tmp)
        if progress:
            print(f"step {index + 1}/{len(recipe.steps)} {step.step}: done ({result})")
    return pipe


def _run_svd(folder: Path, recipe: Recipe) -> SpaceTimeUNet:
    unet = SpaceTimeUNet.from_pretrained(folder)
    for step in recipe.steps:
        if step.finetune_steps:
            raise LightvidError(f"step {step.step}: SVD checkpoints are transformed without finetuning "
                                "(lightvid's trainer trains native models); set finetune_steps: 0")
        if step.step == "lower_resolution":
            raise LightvidError("lower_resolution changes the data a model is finetuned on; it does not apply "
                                "to an SVD checkpoint without finetuning")
        unet = finish(step, prepare(step, unet))
    return unet


def compress(model, recipe: Recipe, output, work_dir=None, overwrite: bool = False,
             progress: bool = True) -> Path:
    """Apply `recipe` to a native model folder (or embedded name) or an SVD pipeline/unet folder; write `output`."""
    from lightvid.weights import model_folder

    folder, output = model_folder(model), Path(output)
    check_dir_target(output, overwrite)  # before any finetuning, not after it
    work = Path(work_dir) if work_dir else output.with_name(output.name + ".work")
    if (folder / PIPELINE_FILE).exists():
        pipe = _run_native(folder, recipe, work, progress)
        with atomic_dir(output, overwrite=overwrite) as tmp:
            pipe.save_pretrained(tmp)
        return output
    unet = _run_svd(folder, recipe)
    pipeline_root = folder if (folder / "unet").is_dir() else None
    with atomic_dir(output, overwrite=overwrite) as tmp:
        if pipeline_root is None:  # a bare unet/ folder in, a bare lightvid UNet folder out
            unet.save_pretrained(tmp)
        else:  # the whole pipeline (VAE, image encoder, ...) with the compressed UNet in place of unet/
            for item in pipeline_root.iterdir():
                if item.name != "unet":
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            unet.save_pretrained(tmp / "unet")
            _keep_num_frames(pipeline_root / "unet" / "config.json", tmp / "unet" / "config.json")
    return output


def _keep_num_frames(source: Path, target: Path) -> None:
    """Carry diffusers' `num_frames` (the clip length the SVD pipeline defaults to: 14, or 25 for SVD-XT)."""
    frames = json.loads(source.read_text()).get("num_frames")
    if frames is not None:
        config = json.loads(target.read_text())
        target.write_text(json.dumps({**config, "num_frames": frames}, indent=2))
