"""Train an instruction editor (UNet + text encoder, together) on edit pairs, under accelerate.

    python -m lightvid.edit.train --config configs/edit/editor.yaml [--steps N]

Checkpoints (`OUTPUT/checkpoints/step_N/`: unet/, text_encoder/, ema.safetensors, optimizer.*, state.json) are
written atomically every `checkpoint_every` steps; a run resumes from its newest one exactly: the pairs and the
noise of step s are functions of (seed, s). The EMA weights are exported to `OUTPUT/model` (an editor folder).
Classifier-free guidance is trained as InstructPix2Pix does: the instruction, the image or both dropped (5% each).
"""
import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lightvid.errors import LightvidError
from lightvid.io import atomic_dir
from lightvid.train.loop import truncate_log
from lightvid.train.state import KEEP, load_optimizer, save_optimizer

from .data import EditPairs
from .editor import Editor, EditorSettings
from .instructions import EDITS, words


@dataclass
class EditorTrainConfig:
    output_dir: str = "runs/editor"
    seed: int = 0
    steps: int = 3000
    batch_size: int = 12
    crop: int = 96
    lr: float = 2e-4
    warmup: int = 200
    ema: float = 0.999
    checkpoint_every: int = 250
    equivariant: bool = False
    photos: str | None = None  # a folder of images to train on instead of the bundled photos and clips
    init_from: str | None = None  # an editor folder to finetune (its architecture kept, its settings unless given)
    drop: float = 0.05  # probability of each of: no instruction, no image, neither
    unet: dict = field(default_factory=dict)  # UNet2DConditionModel arguments
    text: dict = field(default_factory=dict)  # TextEncoderConfig arguments (the vocabulary is the phrasings')
    settings: dict = field(default_factory=dict)  # EditorSettings fields


def new_editor(cfg: EditorTrainConfig) -> Editor:
    from diffusers import UNet2DConditionModel

    from lightvid.models.text_encoder import PAD, TextEncoder, TextEncoderConfig
    torch.manual_seed(cfg.seed)
    vocabulary = (PAD, *sorted({w for e in EDITS for p in e.phrasings for w in words(p)}))
    text = TextEncoder(TextEncoderConfig(vocabulary=vocabulary, **cfg.text))
    settings = EditorSettings(**cfg.settings)
    channels = 3 * settings.patch ** 2
    unet = UNet2DConditionModel(in_channels=2 * channels, out_channels=channels, sample_size=cfg.crop // settings.patch,
                                cross_attention_dim=text.config.dim, **cfg.unet)
    return Editor(unet, text, settings)


def _loss(editor: Editor, source, edited, phrases, generator, drop: float) -> torch.Tensor:
    # source, edited: (b, 3, s, s) in [0, 1]
    b = source.shape[0]
    x0 = editor.encode_image(edited * 2 - 1)
    image = editor.encode_image(source * 2 - 1)
    u = torch.rand(b, generator=generator)
    no_text = u < 2 * drop  # [0, d): neither, [d, 2d): no instruction, [2d, 3d): no image
    no_image = (u < drop) | ((u >= 2 * drop) & (u < 3 * drop))
    image = torch.where(no_image.view(-1, 1, 1, 1), torch.zeros_like(image), image)
    context = editor.encode_text(["" if n else p for p, n in zip(phrases, no_text.tolist())])
    t = torch.randint(0, editor.settings.train_timesteps, (b,), generator=generator)
    sigma = editor.sigma_table[t]
    noise = torch.randn(x0.shape, generator=generator)
    out = editor.network_output(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma, t.float(), image, context)
    return torch.nn.functional.mse_loss(out, editor.target(x0, noise, sigma))


def _batch(data: EditPairs, step: int, batch_size: int):
    items = [data[step * batch_size + i] for i in range(batch_size)]
    return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items]), [i[2] for i in items]


def _save(out: Path, step: int, editor: Editor, ema: dict, optimizer, cfg: EditorTrainConfig) -> None:
    root = out / "checkpoints"
    with atomic_dir(root / f"step_{step:08d}", overwrite=True) as tmp:
        tmp = Path(tmp)
        editor.save_pretrained(tmp / "editor")
        save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
        save_optimizer(optimizer, tmp)
        (tmp / "state.json").write_text(json.dumps({"step": step, "config": cfg.__dict__}, indent=1))
    for old in sorted(root.glob("step_*"))[:-KEEP]:
        shutil.rmtree(old)


def export(editor: Editor, ema: dict, folder: Path) -> None:
    """The EMA weights as an editor folder."""
    live = {k: v.clone() for k, v in editor.state_dict().items()}
    editor.load_state_dict(ema, strict=False)
    with atomic_dir(folder, overwrite=True) as tmp:
        editor.save_pretrained(Path(tmp))
    editor.load_state_dict(live)


def train(cfg: EditorTrainConfig, max_steps: int | None = None, progress: bool = True) -> Path:
    from accelerate import Accelerator
    out = Path(cfg.output_dir)
    checkpoints = sorted((out / "checkpoints").glob("step_*"))
    start = 0
    if checkpoints:
        editor = Editor.from_pretrained(checkpoints[-1] / "editor")
        start = json.loads((checkpoints[-1] / "state.json").read_text())["step"]
    elif cfg.init_from:  # `settings` given here change the loaded editor's (e.g. what its UNet predicts)
        loaded = Editor.from_pretrained(Path(cfg.init_from))
        editor = Editor(loaded.unet, loaded.text_encoder, replace(loaded.settings, **cfg.settings))
    else:
        editor = new_editor(cfg)
    editor.train()
    params = [p for p in editor.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    ema = {k: v.detach().clone() for k, v in editor.state_dict().items() if v.is_floating_point()}
    if checkpoints:
        load_optimizer(optimizer, checkpoints[-1])
        ema = load_file(checkpoints[-1] / "ema.safetensors")
    accelerator = Accelerator(cpu=True)
    editor, optimizer = accelerator.prepare(editor, optimizer)
    model = accelerator.unwrap_model(editor)
    data = EditPairs("train", cfg.crop, cfg.seed, equivariant=cfg.equivariant, folder=cfg.photos)
    end = min(cfg.steps, max_steps if max_steps is not None else cfg.steps)
    out.mkdir(parents=True, exist_ok=True)
    truncate_log(out / "log.jsonl", start)  # lines past the checkpoint were written by an interrupted run
    log = (out / "log.jsonl").open("a")
    for step in tqdm(range(start, end), initial=start, total=end, disable=not progress, desc="editor"):
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        loss = _loss(model, *_batch(data, step, cfg.batch_size), generator, cfg.drop)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))
            for k, v in model.state_dict().items():
                if k in ema:
                    ema[k].lerp_(v, 1 - decay)
        log.write(json.dumps({"step": step + 1, "loss": loss.item()}) + "\n")
        log.flush()
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
            _save(out, step + 1, model, ema, optimizer, cfg)
    export(model, ema, out / "model")
    return out / "model"


def load_config(path: Path) -> EditorTrainConfig:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(raw) - set(EditorTrainConfig.__dataclass_fields__)
    if unknown:
        raise LightvidError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    return EditorTrainConfig(**raw)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train an instruction editor (see lightvid/edit/train.py).")
    parser.add_argument("--config", required=True, type=Path, help="a YAML file of EditorTrainConfig fields")
    parser.add_argument("--steps", type=int, default=None, help="stop at this step (the config's steps by default)")
    args = parser.parse_args(argv)
    try:
        print(train(load_config(args.config), args.steps))
    except LightvidError as e:
        print(f"lightvid: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
