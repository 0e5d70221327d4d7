"""Copy a trained model into the package as an embedded default, weights stored in bfloat16.

    python tools/ship_model.py MODEL_FOLDER NAME [--sampler S --steps N --flow F]    e.g. runs/photo/model photo
    python tools/ship_model.py STUDENT_FOLDER NAME --student                e.g. runs/mnist-1step mnist

bf16 storage halves the size (the shipped limit is 25 MB per model); weights are loaded back as float32, so
the shipped model is the trained EMA model rounded to bf16 — the one `lightvid eval` measures. --sampler and
--steps replace the sampling defaults the training config wrote into pipeline.json (the model card says why);
--flow replaces the flow behind a flow-hinted model's hint (pipeline.json's conditioning.flow): the network's weights
take the same inputs whichever flow made them.

--student ships a `lightvid distill` output as NAME's default sampler: into NAME/<k>step/, named in NAME's
pipeline.json, so every command samples NAME with it unless the user passes --steps or --sampler. Shipping a
new NAME drops its student (it was distilled from the old weights).
"""
import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from lightvid.conditioning import FLOWS
from lightvid.diffusion.samplers import SAMPLERS
from lightvid.errors import LightvidError
from lightvid.io import atomic_dir, atomic_write
from lightvid.pipelines.native import PIPELINE_FILE, NativePipeline
from lightvid.weights import EMBEDDED, WEIGHTS_DIR

MAX_SHIPPED_BYTES = 25_000_000  # per model folder


def ship(model: Path, target: Path, sampler: str | None = None, steps: int | None = None,
         flow: str | None = None) -> None:
    """Write `model` to `target` in bf16 (keeping target's MODEL_CARD.md), with new sampling defaults and hint
    flow if given."""
    pipe = NativePipeline.from_pretrained(model)
    changes = {k: v for k, v in (("sampler", sampler), ("steps", steps)) if v is not None}
    if flow is not None:
        if pipe.settings.conditioning.hint != "flow":
            raise SystemExit(f"{model}: --flow needs a flow-hinted model, not hint '{pipe.settings.conditioning.hint}'")
        changes["conditioning"] = replace(pipe.settings.conditioning, flow=flow)
    try:  # a new NativeSettings is checked: no pipeline.json that would not load is written
        pipe.settings = replace(pipe.settings, **changes)
    except LightvidError as e:
        raise SystemExit(f"{model}: {e}") from None
    if "dataset" not in pipe.facts:
        raise SystemExit(f"{model}: pipeline.json does not name its dataset (lightvid eval needs it)")
    pipe.facts.pop("student", None)
    _write(pipe, target)


def ship_student(student: Path, teacher: Path) -> Path:
    """Write the distilled `student` into teacher/<k>step and name it in teacher's pipeline.json (replacing
    any student shipped before)."""
    pipe = NativePipeline.from_pretrained(student)
    teacher_pipe = NativePipeline.from_pretrained(teacher)  # also: a missing teacher fails before any write
    if "student_steps" not in pipe.facts:
        raise SystemExit(f"{student}: not a `lightvid distill` output (pipeline.json has no student_steps)")
    same = ("data_channels", "patch", "num_frames", "height", "width", "fps", "conditioning", "prediction")
    if any(getattr(pipe.settings, k) != getattr(teacher_pipe.settings, k) for k in same) \
            or pipe.facts.get("dataset") != teacher_pipe.facts.get("dataset"):
        raise SystemExit(f"{student} does not have {teacher}'s frame format and dataset: not its student")
    subfolder = f"{pipe.facts['student_steps']}step"
    pipe.facts["distilled_from"] = teacher.name if teacher.parent == WEIGHTS_DIR else str(teacher)
    _write(pipe, teacher / subfolder)
    saved = json.loads((teacher / PIPELINE_FILE).read_text())
    with atomic_write(teacher / PIPELINE_FILE) as tmp:
        Path(tmp).write_text(json.dumps({**saved, "student": subfolder}, indent=2))
    old = saved.get("student")
    if old not in (None, subfolder) and (teacher / old).is_dir():
        shutil.rmtree(teacher / old)
    return teacher / subfolder


def _write(pipe: NativePipeline, target: Path) -> None:
    pipe.unet.to(torch.bfloat16)
    card = target / "MODEL_CARD.md"
    card_text = card.read_text() if card.exists() else None
    with atomic_dir(target, overwrite=True) as tmp:
        pipe.save_pretrained(tmp)
        if card_text is not None:
            (Path(tmp) / "MODEL_CARD.md").write_text(card_text)
    size = sum(f.stat().st_size for f in target.iterdir() if f.is_file())
    print(f"wrote {target}: {size / 1e6:.1f} MB")
    if size > MAX_SHIPPED_BYTES:
        raise SystemExit(f"{target} is {size / 1e6:.1f} MB: over the {MAX_SHIPPED_BYTES / 1e6:.0f} MB limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a native model folder, e.g. runs/photo/model")
    parser.add_argument("name", choices=EMBEDDED)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), help="default sampler of the shipped model")
    parser.add_argument("--steps", type=int, help="default sampling steps of the shipped model")
    parser.add_argument("--flow", choices=sorted(FLOWS), help="the flow behind the shipped model's hint")
    parser.add_argument("--student", action="store_true", help="MODEL is a distilled student of NAME: ship it as "
                        "NAME's default sampler")
    args = parser.parse_args()
    if args.student:
        if args.sampler or args.steps or args.flow:
            raise SystemExit("--student ships the student's own sampling (its step count) and hint: no "
                             "--sampler/--steps/--flow")
        ship_student(args.model, WEIGHTS_DIR / args.name)
    else:
        ship(args.model, WEIGHTS_DIR / args.name, args.sampler, args.steps, args.flow)


if __name__ == "__main__":
    main()
