"""Copy a trained model into the package as an embedded default, weights stored in bfloat16.

    python bench/ship_model.py MODEL_FOLDER NAME [--sampler S --steps N]    e.g. runs/photo/model photo

bf16 storage halves the size (the shipped limit is 25 MB per model); weights are loaded back as float32, so
the shipped model is the trained EMA model rounded to bf16 — the one `lightvid eval` measures. --sampler and
--steps replace the sampling defaults the training config wrote into pipeline.json (the model card says why).
"""
import argparse
from pathlib import Path

import torch

from lightvid.diffusion.samplers import SAMPLERS
from lightvid.io import atomic_dir
from lightvid.pipelines.native import NativePipeline
from lightvid.weights import EMBEDDED, WEIGHTS_DIR

MAX_SHIPPED_BYTES = 25_000_000  # per embedded model folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a native model folder, e.g. runs/photo/model")
    parser.add_argument("name", choices=EMBEDDED)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), help="default sampler of the shipped model")
    parser.add_argument("--steps", type=int, help="default sampling steps of the shipped model")
    args = parser.parse_args()
    pipe = NativePipeline.from_pretrained(args.model)
    pipe.settings.sampler = args.sampler or pipe.settings.sampler
    pipe.settings.steps = args.steps or pipe.settings.steps
    if "dataset" not in pipe.facts:
        raise SystemExit(f"{args.model}: pipeline.json does not name its dataset (lightvid eval needs it)")
    pipe.unet.to(torch.bfloat16)
    card = WEIGHTS_DIR / args.name / "MODEL_CARD.md"
    card_text = card.read_text() if card.exists() else None
    with atomic_dir(WEIGHTS_DIR / args.name, overwrite=True) as tmp:
        pipe.save_pretrained(tmp)
        if card_text is not None:
            (Path(tmp) / "MODEL_CARD.md").write_text(card_text)
    size = sum(f.stat().st_size for f in (WEIGHTS_DIR / args.name).iterdir())
    print(f"shipped {args.model} as {args.name}: {size / 1e6:.1f} MB in {WEIGHTS_DIR / args.name}")
    if size > MAX_SHIPPED_BYTES:
        raise SystemExit(f"{args.name} is {size / 1e6:.1f} MB: over the {MAX_SHIPPED_BYTES / 1e6:.0f} MB limit")


if __name__ == "__main__":
    main()
