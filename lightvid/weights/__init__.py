"""The embedded default models, shipped inside the package as safetensors + config.json + pipeline.json.

    photo   animates any photo with camera motion (pan / zoom / rotation), 128x128, 16 frames at 8 fps
    mnist   Moving MNIST, 64x64, 20 frames at 10 fps: the measurable benchmark model; samples with its
            distilled 1-step student (mnist/1step) by default
    mnist-mobilevd   `mnist` compressed by `lightvid compress --model mnist --recipe mobilevd` (half the FLOPs)
    editor  the instruction editor of `lightvid edit` (lightvid.edit: unet/ + text_encoder/ + pipeline.json, not a
            native model folder; `editor_folder`)

Each folder has a MODEL_CARD.md (data, steps, CPU-hours, metrics). A model is rebuilt by
`lightvid train --config configs/<name>.yaml`, then `python tools/ship_model.py runs/<name>/model <name>`
(`photo`'s card lists the stages its shipped weights were trained in).
Every command that takes `--model` accepts one of these names or the path of any native model folder (e.g. a
training run's `runs/<name>/model`). A folder may also ship a few-step student in a subfolder named by its
pipeline.json (`tools/ship_model.py STUDENT NAME --student`): the sampling commands then use the student unless
`--steps`/`--sampler` is given (`NativePipeline.for_sampling`); `NativePipeline.from_pretrained` always loads the
folder's own weights.
"""
from pathlib import Path

from lightvid.errors import LightvidError

WEIGHTS_DIR = Path(__file__).resolve().parent
EMBEDDED = ("photo", "mnist", "mnist-mobilevd")  # native models
EDITOR = "editor"


def model_folder(model: str | Path) -> Path:
    """The folder of an embedded model name or of a model path; LightvidError if neither exists."""
    if str(model) in EMBEDDED:
        folder = WEIGHTS_DIR / str(model)
        if not (folder / "model.safetensors").exists():
            raise LightvidError(f"the embedded model {model!r} is missing from this install ({folder}); "
                                f"reinstall lightvid, or pass --model PATH to a model folder")
        return folder
    folder = Path(model)
    if not folder.is_dir():
        raise LightvidError(f"model {model}: not an embedded model ({', '.join(EMBEDDED)}) nor a folder")
    return folder


def editor_folder(model: str | Path) -> Path:
    """The embedded editor's folder (name "editor") or an editor folder's path; LightvidError if neither exists."""
    folder = WEIGHTS_DIR / EDITOR if str(model) == EDITOR else Path(model)
    if not folder.is_dir():
        raise LightvidError(f"--model {model}: not the embedded editor ({EDITOR}) nor a folder")
    return folder
