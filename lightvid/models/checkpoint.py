"""Load and save network checkpoints: lightvid's own folders (a SpaceTimeUNet or a MarDini network, named by
config.json's `_class_name`) and diffusers-format SVD `unet/` folders.

Only safetensors are read; pickle files (.bin/.ckpt/.pt) are refused, since unpickling runs arbitrary code.
"""
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lightvid.errors import LightvidError
from lightvid.io.atomic import atomic_write

from .config import UNetConfig, config_from_diffusers, short_repr
from .mardini_config import MarDiniConfig

WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")  # never opened: unpickling runs arbitrary code
# The dtypes a checkpoint's tensors may have (safetensors' names): one of them for the whole checkpoint.
FLOAT_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
DIFFUSERS_CLASS = "UNetSpatioTemporalConditionModel"
OWN_CLASS = "SpaceTimeUNet"
MARDINI_CLASS = "MarDini"

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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def read_json(path: Path, what: str = "JSON file"):
    """The parsed JSON of a regular file; else LightvidError naming the file (a directory, a FIFO, a device, bad
    UTF-8, bad JSON, absurd nesting). what: the kind of file, for the message."""
    if not path.is_file():
        reason = "missing" if not path.exists() else "not a regular file"
        raise LightvidError(f"{path}: not a valid {what} ({reason})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LightvidError(f"{path}: not a valid {what} ({_one_line(e)[:200]})") from None


def read_json_object(path: Path, what: str = "JSON file") -> dict:
    """read_json, which must give a JSON object."""
    raw = read_json(path, what)
    if not isinstance(raw, dict):
        raise LightvidError(f"{path}: not a valid {what} (must be a JSON object, got {type(raw).__name__} "
                            f"{short_repr(raw)})")
    return raw


def _read_config(folder: Path) -> dict:
    return read_json_object(folder / "config.json", "model config")


def _resolve_folder(path) -> Path:
    folder = Path(path)
    if (folder / "unet" / "config.json").exists():  # a whole pipeline folder
        folder = folder / "unet"
    if not (folder / "config.json").exists():
        raise LightvidError(f"{path}: not a model folder (expected config.json, or unet/config.json)")
    return folder


def _inside(folder: Path, index: Path, name) -> Path:
    """The shard `name` of a sharded index: a .safetensors file name inside `folder`. It may be a link (a Hugging
    Face cache snapshot links its files to a blob store beside it): the file is read as safetensors, never
    unpickled, wherever it lies."""
    if not isinstance(name, str) or not name:
        raise LightvidError(f"{index}: shard names must be non-empty strings, got {short_repr(name)}")
    relative = Path(name)
    if relative.is_absolute() or name.startswith(("/", "\\")) or ".." in relative.parts or "\\" in name:
        raise LightvidError(f"{index}: shard {short_repr(name)} is outside the folder (accepted: a file name in "
                            f"{folder})")
    if relative.suffix.lower() in PICKLE_SUFFIXES:  # never opened
        raise LightvidError(f"{index}: shard {short_repr(name)} is a pickle file; lightvid loads safetensors only "
                            "(pickle can run code)")
    if relative.suffix != ".safetensors":
        raise LightvidError(f"{index}: shard {short_repr(name)} is not a .safetensors file")
    path = folder / relative
    if not path.is_file():
        raise LightvidError(f"{index}: shard {short_repr(name)} is {'missing' if not path.exists() else 'not a file'}")
    return path


def _shards(folder: Path, index: Path) -> tuple[list[Path], dict[str, Path]]:
    """(shard files, tensor name -> its shard) of a sharded checkpoint's index, every shard inside the folder."""
    weight_map = read_json_object(index, "sharded checkpoint index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise LightvidError(f"{index}: 'weight_map' must be a non-empty object of tensor name -> shard file, got "
                            f"{short_repr(weight_map)}")
    paths = {}
    for shard in weight_map.values():
        if not isinstance(shard, str) or shard not in paths:
            paths[shard] = _inside(folder, index, shard)
    located = {tensor: paths[shard] for tensor, shard in weight_map.items()}
    return sorted(set(paths.values())), located


def validate_index(folder: Path, name: str) -> None:
    """If `folder` holds a sharded `name` (its `name.index.json`, and no `name` itself), check the index: every
    shard a safetensors file inside the folder (for components that another library loads)."""
    index = folder / f"{name}.index.json"
    if not (folder / name).exists() and index.exists():
        _shards(folder, index)


def _weight_files(folder: Path, names: list[str]) -> tuple[Path, list[Path], dict[str, Path] | None]:
    """(the file named in messages, the safetensors files, tensor -> file as a sharded index says, or None): the
    first existing file among `names`, or a sharded index of one of them."""
    for name in names:
        path = folder / name
        if path.exists():
            if not path.is_file():
                raise LightvidError(f"{path}: not a regular file (expected a safetensors file)")
            return path, [path], None
        index = folder / f"{name}.index.json"
        if index.exists():
            files, located = _shards(folder, index)
            return index, files, located
    pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise LightvidError(f"{folder}: only pickle weights found ({', '.join(pickles)}); lightvid loads "
                            "safetensors only (pickle can run code) — convert them to .safetensors")
    raise LightvidError(f"{folder}: no weights found (expected {' or '.join(names)})")


def _read_headers(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...], str]]:
    """tensor name -> (file, shape, safetensors dtype name), from the files' headers alone (no tensor is read)."""
    headers = {}
    for path in files:
        try:
            with safe_open(path, "pt") as f:
                for key in f.keys():
                    part = f.get_slice(key)
                    if key in headers:
                        raise LightvidError(f"{path}: tensor {key!r} is also in {headers[key][0]}")
                    headers[key] = (path, tuple(part.get_shape()), part.get_dtype())
        except (SafetensorError, OSError, ValueError) as e:
            if isinstance(e, LightvidError):
                raise
            raise LightvidError(f"{path}: not a readable safetensors file ({_one_line(e)[:200]})") from None
    return headers


def check_weights(model, headers: dict, source: Path, config_path: Path, rename=None,
                  located: dict[str, Path] | None = None) -> torch.dtype:
    """Check every tensor's name, shape and dtype (headers: _read_headers) against `model` (built on the meta
    device), before anything is loaded: LightvidError naming the file and the tensor. Returns the checkpoint's
    float dtype. rename: checkpoint name -> model name (diffusers' names); located: a sharded index's map."""
    if located is not None:
        for key, (path, _, _) in headers.items():
            if key not in located:
                raise LightvidError(f"{source}: tensor {key!r} of {path.name} is not in the index's weight_map")
            if located[key] != path:
                raise LightvidError(f"{source}: tensor {key!r} is in {path.name}, the index says "
                                    f"{located[key].name}")
        absent = sorted(set(located) - set(headers))
        if absent:
            raise LightvidError(f"{source}: the index lists {short_repr(absent[:3])}, which no shard holds")
    names = {}
    for key in headers:
        name = rename(key) if rename else key
        if name in names:
            raise LightvidError(f"{source}: tensors {names[name]!r} and {key!r} are the same parameter")
        names[name] = key
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
    if missing or unexpected:
        extra = [names[k] for k in unexpected[:3]]
        raise LightvidError(f"{source}: weights do not match {config_path} (missing {short_repr(missing[:3])}"
                            f"{'...' if len(missing) > 3 else ''}, unexpected {short_repr(extra)}"
                            f"{'...' if len(unexpected) > 3 else ''})")
    dtypes = {}
    for name, key in names.items():
        path, shape, dtype = headers[key]
        if dtype not in FLOAT_DTYPES:
            raise LightvidError(f"{path}: tensor {key!r} is {dtype}; accepted: "
                                f"{', '.join(str(d).removeprefix('torch.') for d in FLOAT_DTYPES.values())}")
        dtypes.setdefault(dtype, key)
        if len(dtypes) > 1:
            (first, first_key), = [(d, k) for d, k in dtypes.items() if d != dtype]
            raise LightvidError(f"{path}: tensor {key!r} is {dtype} while {first_key!r} is {first}; "
                                "a checkpoint holds one dtype")
        if shape != tuple(expected[name].shape):
            raise LightvidError(f"{path}: tensor {key!r} has shape {list(shape)}, {config_path} makes it "
                                f"{list(expected[name].shape)}")
    return FLOAT_DTYPES[next(iter(dtypes))]


def _read_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    """Every tensor of `files` (checked by check_weights), each of which must hold finite values only."""
    state = {}
    for path in files:
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError) as e:
            raise LightvidError(f"{path}: not a readable safetensors file ({_one_line(e)[:200]})") from None
        for key, value in tensors.items():
            if not torch.isfinite(value).all():
                raise LightvidError(f"{path}: tensor {key!r} holds NaN or infinite values")
        state.update(tensors)
    return state


def unet_folder(path) -> Path:
    """The folder holding a UNet's config.json: `path` itself, or its unet/ (a whole pipeline folder)."""
    return _resolve_folder(path)


def read_config(path) -> UNetConfig | MarDiniConfig:
    """The network config of a lightvid or diffusers SVD UNet folder (or pipeline folder), or of a lightvid MarDini
    folder, from config.json alone."""
    folder = _resolve_folder(path)
    raw = _read_config(folder)
    kind = raw.get("_class_name")
    try:
        if kind == DIFFUSERS_CLASS:
            return config_from_diffusers(raw)
        if kind == OWN_CLASS:
            return UNetConfig.from_dict(raw)
        if kind == MARDINI_CLASS:
            return MarDiniConfig.from_dict(raw)
    except LightvidError as e:
        raise LightvidError(f"{folder / 'config.json'}: {e}") from None
    raise LightvidError(f"{folder / 'config.json'}: model class {short_repr(kind)} is not supported "
                        f"(accepted: {OWN_CLASS}, {MARDINI_CLASS}, diffusers {DIFFUSERS_CLASS})")


def build_network(config: UNetConfig | MarDiniConfig):
    """The network a config describes: a SpaceTimeUNet or a MarDini (planner + generator)."""
    from .mardini import MarDini
    from .unet import SpaceTimeUNet
    return MarDini(config) if isinstance(config, MarDiniConfig) else SpaceTimeUNet(config)


def load_network(path, dtype: torch.dtype | None = None, device="cpu"):
    """A SpaceTimeUNet or MarDini network from a folder. Everything is checked before any weight is loaded into the
    network: the config (every field), the weight files (sharded indexes resolved inside the folder only, pickles
    never opened), every tensor's name, shape and dtype against the network built on the meta device, and every
    value finite."""
    folder = _resolve_folder(path)
    config_path = folder / "config.json"
    config = read_config(folder)
    diffusers = _read_config(folder).get("_class_name") == DIFFUSERS_CLASS
    names = (["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"] if diffusers
             else [WEIGHTS_NAME])
    source, files, located = _weight_files(folder, names)
    try:
        with torch.device("meta"):
            model = build_network(config)
    except (ValueError, RuntimeError) as e:  # LightvidError is a ValueError
        raise LightvidError(f"{config_path}: cannot build this network ({_one_line(e)[:200]})") from None
    rename = diffusers_to_lightvid_key if diffusers else None
    saved_dtype = check_weights(model, _read_headers(files), source, config_path, rename, located)
    state = _read_weights(files)
    if rename:
        state = {rename(k): v for k, v in state.items()}
    if dtype is None:  # keep the checkpoint's float dtype, but compute in fp32 when it was saved in fp16
        dtype = torch.float32 if saved_dtype == torch.float16 else saved_dtype
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    return model.eval()


def save_network(model, path) -> None:
    """config.json (with the network's class) + model.safetensors of a SpaceTimeUNet or MarDini, each atomically."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    kind = MARDINI_CLASS if isinstance(model.config, MarDiniConfig) else OWN_CLASS
    config = {"_class_name": kind, **model.config.to_dict()}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_write(folder / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(config, indent=2))
