"""Load and save SpaceTimeUNet checkpoints: lightvid's own folders and diffusers-format SVD `unet/` folders.

Only safetensors are read; pickle files (.bin/.ckpt/.pt) are refused, since unpickling runs arbitrary code.
"""
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lightvid.errors import LightvidError
from lightvid.io.atomic import atomic_write

from .config import UNetConfig, config_from_diffusers

WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")  # never opened: unpickling runs arbitrary code
DIFFUSERS_CLASS = "UNetSpatioTemporalConditionModel"
OWN_CLASS = "SpaceTimeUNet"

# diffusers parameter names -> lightvid's, applied in order (each a regex substitution).
_DIFFUSERS_RENAMES = [
    (r"^down_blocks\.", "down."), (r"^up_blocks\.", "up."), (r"^mid_block\.", "mid."),
    (r"\.resnets\.", ".res."), (r"\.attentions\.", ".attn."),
    (r"\.spatial_res_block\.", ".spatial."), (r"\.temporal_res_block\.", ".temporal."),
    (r"\.time_mixer\.mix_factor$", ".mix_factor"),
    (r"\.transformer_blocks\.", ".spatial_blocks."), (r"\.temporal_transformer_blocks\.", ".temporal_blocks."),
    (r"\.to_out\.0\.", ".to_out."), (r"\.net\.0\.proj\.", ".proj_in."), (r"\.net\.2\.", ".proj_out."),
    (r"\.downsamplers\.0\.", ".downsample."), (r"\.upsamplers\.0\.", ".upsample."),
    (r"^conv_norm_out\.", "norm_out."),
]


def diffusers_to_lightvid_key(key: str) -> str:
    for pattern, replacement in _DIFFUSERS_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LightvidError(f"{folder}: cannot read config.json ({e})") from None


def _resolve_folder(path) -> Path:
    folder = Path(path)
    if (folder / "unet" / "config.json").exists():  # a whole pipeline folder
        folder = folder / "unet"
    if not (folder / "config.json").exists():
        raise LightvidError(f"{path}: not a model folder (expected config.json, or unet/config.json)")
    return folder


def _read_weights(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """The first existing safetensors file among `names` (or a sharded index of them)."""
    for name in names:
        if (folder / name).exists():
            try:
                return load_file(folder / name)
            except (SafetensorError, OSError) as e:
                raise LightvidError(f"{folder / name}: not a readable safetensors file ({e})") from None
        index = folder / f"{name}.index.json"
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state = {}
            for shard in shards:
                state.update(load_file(folder / shard))
            return state
    pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise LightvidError(f"{folder}: only pickle weights found ({', '.join(pickles)}); lightvid loads "
                            "safetensors only (pickle can run code) — convert them to .safetensors")
    raise LightvidError(f"{folder}: no weights found (expected {' or '.join(names)})")


def unet_folder(path) -> Path:
    """The folder holding a UNet's config.json: `path` itself, or its unet/ (a whole pipeline folder)."""
    return _resolve_folder(path)


def read_config(path) -> UNetConfig:
    """The UNetConfig of a lightvid or diffusers SVD UNet folder (or pipeline folder), from config.json alone."""
    folder = _resolve_folder(path)
    raw = _read_config(folder)
    if not isinstance(raw, dict):
        raise LightvidError(f"{folder}/config.json: not a JSON object")
    kind = raw.get("_class_name")
    if kind == DIFFUSERS_CLASS:
        return config_from_diffusers(raw)
    if kind == OWN_CLASS:
        return UNetConfig.from_dict(raw)
    raise LightvidError(f"{folder}/config.json: model class '{kind}' is not supported "
                        f"(accepted: {OWN_CLASS}, diffusers {DIFFUSERS_CLASS})")


def load_unet(path, dtype: torch.dtype | None = None, device="cpu"):
    from .unet import SpaceTimeUNet

    folder = _resolve_folder(path)
    config = read_config(folder)
    if _read_config(folder).get("_class_name") == DIFFUSERS_CLASS:
        names = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
        state = _read_weights(folder, names)
        state = {diffusers_to_lightvid_key(k): v for k, v in state.items()}
    else:
        state = _read_weights(folder, [WEIGHTS_NAME])
    with torch.device("meta"):
        model = SpaceTimeUNet(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise LightvidError(f"{folder}: weights do not match the config (missing {missing[:3]}"
                            f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                            f"{'...' if len(unexpected) > 3 else ''})")
    if dtype is None:  # keep the checkpoint's float dtype, but compute in fp32 when it was saved in fp16
        dtype = next(iter(state.values())).dtype
        dtype = torch.float32 if dtype == torch.float16 else dtype
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    return model.eval()


def save_unet(model, path) -> None:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"_class_name": OWN_CLASS, **model.config.to_dict()}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_write(folder / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2))
