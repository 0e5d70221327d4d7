"""Training checkpoints: model, EMA and optimizer state in safetensors + JSON — nothing is ever unpickled.

Layout of `output_dir/checkpoints/step_00000500/` (written as a whole, atomically):
  unet/             the trained weights (config.json + model.safetensors)
  ema.safetensors   exponential moving average of the weights (what gets shipped)
  optimizer.safetensors + optimizer.json   AdamW moments and param groups
  state.json        step and the config the run was started with
Data order and noise are functions of (seed, step, rank), so step + weights + optimizer is the whole state.
"""
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lightvid.io import atomic_dir
from lightvid.models import SpaceTimeUNet

KEEP = 2  # checkpoints kept on disk


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path, name: str = "optimizer") -> None:
    state = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value.detach().contiguous() for idx, entry in state["state"].items()
               for key, value in entry.items() if isinstance(value, torch.Tensor)}
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps({"param_groups": state["param_groups"]}))


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, name: str = "optimizer") -> None:
    tensors = load_file(folder / f"{name}.safetensors")
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        idx, entry = key.split(".", 1)
        per_param.setdefault(int(idx), {})[entry] = value
    groups = json.loads((folder / f"{name}.json").read_text())["param_groups"]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})


def save_checkpoint(output_dir: Path, step: int, unet: SpaceTimeUNet, ema: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, config: dict,
                    extra: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] | None = None) -> Path:
    """`extra`: more trained parts (a distillation discriminator) as name -> (module, its optimizer), saved as
    NAME.safetensors + NAME_optimizer.safetensors/json; `load_extra` reads them back."""
    root = Path(output_dir) / "checkpoints"
    target = root / f"step_{step:08d}"
    with atomic_dir(target, overwrite=True) as tmp:
        tmp = Path(tmp)
        unet.save_pretrained(tmp / "unet")
        save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
        save_optimizer(optimizer, tmp)
        for name, (module, module_optimizer) in (extra or {}).items():
            save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()},
                      str(tmp / f"{name}.safetensors"))
            save_optimizer(module_optimizer, tmp, f"{name}_optimizer")
        (tmp / "state.json").write_text(json.dumps({"step": step, "config": config}, indent=1))
    for old in sorted(root.glob("step_*"))[:-KEEP]:
        _remove(old)
    return target


def _remove(folder: Path) -> None:
    """Delete a checkpoint folder: renamed aside first, so a kill midway leaves a `.step_*.old` folder (which a
    rerun removes) rather than a half-deleted checkpoint."""
    aside = folder.with_name(f".{folder.name}.pruned.old")
    try:
        os.rename(folder, aside)
    except OSError:
        aside = folder
    shutil.rmtree(aside, ignore_errors=True)


def load_extra(checkpoint: Path, name: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    module.load_state_dict(load_file(checkpoint / f"{name}.safetensors"))
    load_optimizer(optimizer, checkpoint, f"{name}_optimizer")


def latest_checkpoint(output_dir: Path) -> Path | None:
    done = sorted(p for p in (Path(output_dir) / "checkpoints").glob("step_*") if (p / "state.json").exists())
    return done[-1] if done else None


def read_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "state.json").read_text())["step"]
