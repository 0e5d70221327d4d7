"""Bad model folders (native and SVD) give one line naming the file, never a traceback or a wrong model (#23).

A seeded generator mutates a tiny valid folder in every way the issue lists (config fields of each type and range,
pipeline.json, sharded indexes, weights, SVD components); each case must raise LightvidError with a one-line message
naming the file from the Python API, and through the CLI exit with code 2, one stderr line and no output.
"""
import json
import math
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from cli_run import run
from PIL import Image
from safetensors.torch import load_file, save_file

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.config import UNET_FIELD_RULES, check_value
from lightvid.pipelines import SVDPipeline
from lightvid.pipelines.native import NativePipeline
from native_fixtures import save_tiny_native

SEED = 23
WEIGHTS = "model.safetensors"
SVD_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"

# values of every JSON type, and numbers at the edges: the generator draws the bad ones for each field from these
GARBAGE = [None, True, False, 0, -1, 1.5, 32.0, 10 ** 9, float("nan"), float("inf"), "", "8", "x", [], [0], [None],
           ["x"], [1.5], [True], [[1]], [32, "x"], {}, {"a": 1}, {"a": [None, {"b": "c"}]}]


def _bad_values(rule, rng: random.Random, count: int) -> list:
    bad = [v for v in GARBAGE if check_value(v, rule) is not None]
    return rng.sample(bad, min(count, len(bad)))


# -- mutations of a folder ------------------------------------------------------------------------------------------

def _edit_json(name: str, change):
    """A mutation that replaces the JSON file `name` by change(its parsed contents)."""
    def mutate(folder: Path):
        path = folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return mutate


def _set(name: str, key: str, value):
    return _edit_json(name, lambda d: {**d, key: value})


def _drop(name: str, key: str):
    return _edit_json(name, lambda d: {k: v for k, v in d.items() if k != key})


def _write(name: str, data: bytes | str):
    def mutate(folder: Path):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mutate


def _make_dir(name: str):
    def mutate(folder: Path):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        path.mkdir()
    return mutate


def _remove(name: str):
    def mutate(folder: Path):
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return mutate


def _tensors(name: str, change):
    """A mutation of the safetensors file `name`: change(state dict) edits it in place."""
    def mutate(folder: Path):
        state = load_file(folder / name)
        change(state)
        save_file(state, str(folder / name), metadata={"format": "pt"})
    return mutate


def _pick(state: dict, rng: random.Random, ndim: int = 0) -> str:
    return rng.choice(sorted(k for k, v in state.items() if v.ndim >= ndim))


def _poison(value: float, rng: random.Random):
    def change(state):
        key = _pick(state, rng)
        state[key] = state[key].clone().reshape(-1).index_fill(0, torch.tensor([0]), value).reshape(state[key].shape)
    return change


def _reshape(rng: random.Random):
    def change(state):
        key = _pick(state, rng, ndim=1)
        state[key] = torch.zeros(*[n + 1 for n in state[key].shape])
    return change


def _retype(dtype: torch.dtype, rng: random.Random | None = None):
    def change(state):  # the alphabetically first tensor, or a random one
        key = sorted(state)[0] if rng is None else _pick(state, rng)
        state[key] = state[key].to(dtype) if dtype.is_floating_point else state[key].round().to(dtype)
    return change


def _sharded(name: str, index_change=None, before=None):
    """Split `name` into two shards plus its index (after `before(folder)`), then index_change(index dict)."""
    def mutate(folder: Path):
        path = folder / name
        state = load_file(path)
        path.unlink()
        keys = sorted(state)
        weight_map = {}
        for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:])):
            shard = f"{path.stem}-0000{i + 1}-of-00002.safetensors"
            save_file({k: state[k] for k in part}, str(path.parent / shard), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(part, shard))
        index = {"metadata": {}, "weight_map": weight_map}
        if before is not None:
            before(path.parent, index)
        index = index_change(index) if index_change else index
        Path(f"{path}.index.json").write_text(index if isinstance(index, str) else json.dumps(index))
    return mutate


def _first_shard(index: dict) -> str:
    return sorted(set(index["weight_map"].values()))[0]


def _point_shard(to: str):
    """The index names `to` for the first shard's tensors."""
    def change(index):
        first = _first_shard(index)
        return {**index, "weight_map": {k: (to if v == first else v) for k, v in index["weight_map"].items()}}
    return change


def _outside_link(folder: Path, index: dict):
    """The first shard becomes a link to its file outside the model folder (as in a Hugging Face cache snapshot)."""
    first = folder / _first_shard(index)
    outside = folder.parent / f"outside-{folder.parent.name}.safetensors"
    shutil.move(first, outside)
    os.symlink(outside, first)


def _stray_tensor(folder: Path, index: dict):
    """The first shard holds a tensor the index does not list."""
    first = folder / _first_shard(index)
    state = load_file(first)
    save_file({**state, "stray": torch.zeros(1)}, str(first))


# -- the cases ------------------------------------------------------------------------------------------------------

def native_cases() -> list[tuple[str, str, object]]:
    """(case id, the file the message must name, mutation) for a native folder."""
    rng = random.Random(SEED)
    cases = []
    for field, rule in UNET_FIELD_RULES.items():  # every UNetConfig field, two bad values each
        for value in _bad_values(rule, rng, 2):
            cases.append((f"config-{field}={value!r}", "config.json", _set("config.json", field, value)))
    cases += [
        ("config-channels-null", "config.json", _set("config.json", "channels", None)),
        ("config-channels-x", "config.json", _set("config.json", "channels", [32, "x"])),
        ("config-heads-0", "config.json", _set("config.json", "heads", [0, 1])),
        ("config-norm_groups-0", "config.json", _set("config.json", "norm_groups", 0)),
        ("config-norm_groups-not-dividing", "config.json", _set("config.json", "norm_groups", 5)),
        ("config-in_channels-negative", "config.json", _set("config.json", "in_channels", -1)),
        ("config-in_channels-other", "model.safetensors", _set("config.json", "in_channels", 7)),
        ("config-levels-mismatch", "config.json", _set("config.json", "heads", [1, 1, 1])),
        ("config-unknown-key", "config.json", _set("config.json", "colour", 3)),
        ("config-class", "config.json", _set("config.json", "_class_name", ["SpaceTimeUNet"])),
        ("config-pruned-unknown", "config.json", _set("config.json", "pruned_temporal", ["down.9.res.0"])),
        ("config-list", "config.json", _write("config.json", "[1, 2, 3]")),
        ("config-string", "config.json", _write("config.json", '"SpaceTimeUNet"')),
        ("config-nested", "config.json", _write("config.json", "[" * 100000 + "]" * 100000)),
        ("config-invalid-json", "config.json", _write("config.json", '{"channels": [32, 32')),
        ("config-bad-utf8", "config.json", _write("config.json", b'{"a": "\xff\xfe"}')),
        ("config-directory", "config.json", _make_dir("config.json")),
        ("config-nan", "config.json", _write("config.json", '{"_class_name": "SpaceTimeUNet", "mid_eps": NaN}')),
    ]
    pipeline_rules = {"data_channels": ("int", 1, 3), "patch": ("int", 1, 64), "num_frames": ("int", 1, 1024),
                      "height": ("int", 1, 16384), "width": ("int", 1, 16384), "steps": ("int", 1, 10000),
                      "fps": ("number", 0, 1e12), "sigma_data": ("number", 0, 1e12), "sigma_min": ("number", 0, 79),
                      "sigma_max": ("number", 0.002, 1e12), "prediction": ("str", ("edm",)),
                      "sampler": ("str", ("heun",))}  # the values each field accepts (a few more, never fewer)
    for field, rule in pipeline_rules.items():
        for value in _bad_values(rule, rng, 2):
            cases.append((f"pipeline-{field}={value!r}", "pipeline.json", _set("pipeline.json", field, value)))
    cases += [
        ("pipeline-fps-true", "pipeline.json", _set("pipeline.json", "fps", True)),
        ("pipeline-fps-nan", "pipeline.json", _write("pipeline.json", '{"fps": NaN, "conditioning": {}}')),
        ("pipeline-sigma-inf", "pipeline.json", _set("pipeline.json", "sigma_max", float("inf"))),
        ("pipeline-data_channels-float", "pipeline.json", _set("pipeline.json", "data_channels", 3.0)),
        ("pipeline-sampler-list", "pipeline.json", _set("pipeline.json", "sampler", ["heun"])),
        ("pipeline-prediction-dict", "pipeline.json", _set("pipeline.json", "prediction", {"edm": 1})),
        ("pipeline-flow-list", "pipeline.json", _set("pipeline.json", "conditioning", {"hint": "flow", "flow": []})),
        ("pipeline-hint-int", "pipeline.json", _set("pipeline.json", "conditioning", {"hint": 1})),
        ("pipeline-conditioning-true", "pipeline.json", _set("pipeline.json", "conditioning", True)),
        ("pipeline-conditioning-list", "pipeline.json", _set("pipeline.json", "conditioning", ["flow"])),
        ("pipeline-conditioning-unknown", "pipeline.json", _set("pipeline.json", "conditioning", {"a": 1})),
        ("pipeline-warp-inputs-int", "pipeline.json",
         _set("pipeline.json", "conditioning", {"hint": "flow", "warp_inputs": 1})),
        ("pipeline-student-int", "pipeline.json", _set("pipeline.json", "student", 3)),
        ("pipeline-student-outside", "pipeline.json", _set("pipeline.json", "student", "../x")),
        ("pipeline-student-absolute", "pipeline.json", _set("pipeline.json", "student", "/tmp")),
        ("pipeline-teacher-list", "pipeline.json", _set("pipeline.json", "distilled_from", ["mnist"])),
        ("pipeline-size-not-patch", "pipeline.json", _set("pipeline.json", "height", 15)),
        ("pipeline-list", "pipeline.json", _write("pipeline.json", "[]")),
        ("pipeline-invalid-json", "pipeline.json", _write("pipeline.json", "{")),
        ("pipeline-directory", "pipeline.json", _make_dir("pipeline.json")),
        ("pipeline-legacy-conditioning-list", "config.json",
         lambda f: (_drop("pipeline.json", "conditioning")(f), _set("config.json", "conditioning", [1])(f))),
        ("pipeline-channels-mismatch", "pipeline.json", _set("pipeline.json", "data_channels", 1)),
    ]
    cases += [
        ("weights-shape", WEIGHTS, _tensors(WEIGHTS, _reshape(rng))),
        ("weights-shape-2", WEIGHTS, _tensors(WEIGHTS, _reshape(rng))),
        ("weights-int", WEIGHTS, _tensors(WEIGHTS, _retype(torch.int32, rng))),
        ("weights-int-first", WEIGHTS, _tensors(WEIGHTS, _retype(torch.int64))),
        ("weights-bool", WEIGHTS, _tensors(WEIGHTS, lambda s: s.update({"conv_in.bias": s["conv_in.bias"] > 0}))),
        ("weights-bf16-first", WEIGHTS, _tensors(WEIGHTS, _retype(torch.bfloat16))),
        ("weights-f64-first", WEIGHTS, _tensors(WEIGHTS, _retype(torch.float64))),
        ("weights-f16-one", WEIGHTS, _tensors(WEIGHTS, _retype(torch.float16, rng))),
        ("weights-nan", WEIGHTS, _tensors(WEIGHTS, _poison(math.nan, rng))),
        ("weights-inf", WEIGHTS, _tensors(WEIGHTS, _poison(-math.inf, rng))),
        ("weights-missing-tensor", WEIGHTS, _tensors(WEIGHTS, lambda s: s.pop(sorted(s)[3]))),
        ("weights-extra-tensor", WEIGHTS, _tensors(WEIGHTS, lambda s: s.update(extra=torch.zeros(2)))),
        ("weights-truncated", WEIGHTS, lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:-100])),
        ("weights-header-only", WEIGHTS, lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:40])),
        ("weights-garbage", WEIGHTS, _write(WEIGHTS, bytes(random.Random(SEED).randbytes(4096)))),
        ("weights-empty", WEIGHTS, _write(WEIGHTS, b"")),
        ("weights-directory", WEIGHTS, _make_dir(WEIGHTS)),
        ("weights-absent", "", _remove(WEIGHTS)),
        ("weights-pickle-only", "model.bin", lambda f: (f / WEIGHTS).rename(f / "model.bin")),
    ]
    index = f"{WEIGHTS}.index.json"
    cases += [
        ("index-invalid-json", index, _sharded(WEIGHTS, lambda i: "{weight_map")),
        ("index-list", index, _sharded(WEIGHTS, lambda i: list(i["weight_map"]))),
        ("index-no-weight_map", index, _sharded(WEIGHTS, lambda i: {"metadata": {}})),
        ("index-weight_map-list", index, _sharded(WEIGHTS, lambda i: {"weight_map": list(i["weight_map"])})),
        ("index-weight_map-empty", index, _sharded(WEIGHTS, lambda i: {"weight_map": {}})),
        ("index-parent", index, _sharded(WEIGHTS, _point_shard("../model.safetensors"))),
        ("index-absolute", index, _sharded(WEIGHTS, _point_shard("/etc/passwd.safetensors"))),
        ("index-pickle", index, _sharded(WEIGHTS, _point_shard("model.bin"))),
        ("index-not-safetensors", index, _sharded(WEIGHTS, _point_shard("config.json"))),
        ("index-missing-shard", index, _sharded(WEIGHTS, _point_shard("model-00009-of-00009.safetensors"))),
        ("index-shard-not-string", index, _sharded(WEIGHTS, _point_shard(7))),
        ("index-shard-stray", index, _sharded(WEIGHTS, before=_stray_tensor)),
        ("index-shard-unlisted", index,
         _sharded(WEIGHTS, lambda i: {"weight_map": dict(list(i["weight_map"].items())[1:])})),
        ("index-directory", index, lambda f: (_sharded(WEIGHTS)(f), _make_dir(index)(f))),
    ]
    return cases


def svd_cases() -> list[tuple[str, str, object]]:
    rng = random.Random(SEED + 1)
    unet, extractor = "unet/config.json", "feature_extractor/preprocessor_config.json"
    cases = [
        ("index-directory", "model_index.json", _make_dir("model_index.json")),
        ("index-invalid", "model_index.json", _write("model_index.json", "{")),
        ("index-list", "model_index.json", _write("model_index.json", "[]")),
        ("index-class", "model_index.json", _set("model_index.json", "_class_name", "StableDiffusionPipeline")),
        ("missing-vae", "vae", _remove("vae")),
        ("missing-feature-extractor", "feature_extractor", _remove("feature_extractor")),
        ("unet-is-a-file", "unet", lambda f: (_remove("unet")(f), _write("unet", "{}")(f))),
        ("extractor-mean-string", extractor, _set(extractor, "image_mean", "x")),
        ("extractor-mean-short", extractor, _set(extractor, "image_mean", [0.5, 0.5])),
        ("extractor-std-zero", extractor, _set(extractor, "image_std", [0, 1, 1])),
        ("extractor-std-nan", extractor, _set(extractor, "image_std", [float("nan"), 1, 1])),
        ("extractor-no-std", extractor, _drop(extractor, "image_std")),
        ("extractor-list", extractor, _write(extractor, "[0.5]")),
        ("unet-list", unet, _write(unet, "[1, 2]")),
        ("unet-num_frames-0", unet, _set(unet, "num_frames", 0)),
        ("unet-num_frames-true", unet, _set(unet, "num_frames", True)),
        ("unet-num_frames-float", unet, _set(unet, "num_frames", 4.0)),
        ("unet-block-types", unet, _set(unet, "down_block_types", ["CrossAttnDownBlock2D", "DownBlock2D"])),
        ("unet-up-not-mirrored", unet, _set(unet, "up_block_types", ["UpBlockSpatioTemporal"] * 2)),
        ("unet-layers-per-level", unet, _set(unet, "layers_per_block", [1, 2, 3])),
        ("unet-projection", unet, _set(unet, "projection_class_embeddings_input_dim", 47)),
        ("unet-cross-mismatch", "unet", _set(unet, "cross_attention_dim", 16)),
        ("unet-class", unet, _set(unet, "_class_name", "UNet2DConditionModel")),
        ("unet-weights-nan", SVD_WEIGHTS, _tensors(SVD_WEIGHTS, _poison(math.nan, rng))),
        ("unet-weights-shape", SVD_WEIGHTS, _tensors(SVD_WEIGHTS, _reshape(rng))),
        ("unet-weights-truncated", SVD_WEIGHTS,
         lambda f: (f / SVD_WEIGHTS).write_bytes((f / SVD_WEIGHTS).read_bytes()[:-8])),
        ("unet-index-outside", f"{SVD_WEIGHTS}.index.json",
         _sharded(SVD_WEIGHTS, _point_shard("../vae/diffusion_pytorch_model.safetensors"))),
        ("unet-pickle-only", "unet", lambda f: (f / SVD_WEIGHTS).rename(f / "unet/diffusion_pytorch_model.bin")),
        ("vae-channels-null", "vae/config.json", _set("vae/config.json", "block_out_channels", None)),
        ("vae-scaling-nan", "vae/config.json", _set("vae/config.json", "scaling_factor", float("nan"))),
        ("vae-latent-mismatch", "unet", _set("vae/config.json", "latent_channels", 3)),
        ("vae-weights-truncated", "vae", lambda f: (f / "vae/diffusion_pytorch_model.safetensors").write_bytes(
            (f / "vae/diffusion_pytorch_model.safetensors").read_bytes()[:-8])),
        ("vae-weights-nan", "vae", _tensors("vae/diffusion_pytorch_model.safetensors", _poison(math.nan, rng))),
        ("vae-index-pickle", "vae/diffusion_pytorch_model.safetensors.index.json",
         _sharded("vae/diffusion_pytorch_model.safetensors", _point_shard("x.bin"))),
        ("encoder-projection-string", "image_encoder/config.json",
         _set("image_encoder/config.json", "projection_dim", "32")),
        ("encoder-config-list", "image_encoder/config.json", _write("image_encoder/config.json", "[]")),
    ]
    for value in _bad_values(("int", 1, 1024), rng, 3):  # drawn: more num_frames
        cases.append((f"unet-num_frames={value!r}", unet, _set(unet, "num_frames", value)))
    return cases


NATIVE_CASES, SVD_CASES = native_cases(), svd_cases()


def test_the_generator_covers_every_class():
    assert len(NATIVE_CASES) + len(SVD_CASES) >= 60
    assert len({c[0] for c in NATIVE_CASES}) == len(NATIVE_CASES) and len({c[0] for c in SVD_CASES}) == len(SVD_CASES)
    for prefix in ("config-", "pipeline-", "weights-", "index-"):
        assert sum(c[0].startswith(prefix) for c in NATIVE_CASES) >= 10


# -- fixtures -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native_base(tmp_path_factory):
    return save_tiny_native(tmp_path_factory.mktemp("native") / "tiny")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "in.png"
    Image.new("RGB", (20, 16), (200, 100, 50)).save(path)
    return path


def _mutated(base: Path, tmp_path: Path, mutate) -> Path:
    folder = tmp_path / "models" / "model"
    shutil.copytree(base, folder, symlinks=True)
    mutate(folder)
    return folder


def _check_message(error: LightvidError, folder: Path, names: str):
    """One line that names the file (its folder's path, and the file or subfolder)."""
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert str(folder) in message and Path(names).name in message, message


def _check_cli(capsys, tmp_path: Path, command: list):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run(capsys, *command, "-o", out_dir / "clip.mp4")
    assert code == 2, err
    assert err.startswith("lightvid: error: ") and err.count("\n") == 1, err
    assert list(out_dir.iterdir()) == []


# -- the checks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", NATIVE_CASES, ids=[c[0] for c in NATIVE_CASES])
def test_bad_native_folder_is_one_line(case, native_base, image, tmp_path, capsys):
    _, names, mutate = case
    folder = _mutated(native_base, tmp_path, mutate)
    with pytest.raises(LightvidError) as error:
        NativePipeline.from_pretrained(folder)
    _check_message(error.value, folder, names)
    if not case[0].startswith("pipeline-"):  # the network alone, from its config.json and weights
        with pytest.raises(LightvidError) as error:
            SpaceTimeUNet.from_pretrained(folder)
        if names != "pipeline.json":
            _check_message(error.value, folder, names)
    _check_cli(capsys, tmp_path, ["animate", image, "--model", folder])


@pytest.mark.parametrize("case", SVD_CASES, ids=[c[0] for c in SVD_CASES])
def test_bad_svd_folder_is_one_line(case, svd_folder, image, tmp_path, capsys):
    _, names, mutate = case
    folder = _mutated(svd_folder[0], tmp_path, mutate)
    with pytest.raises(LightvidError) as error:
        SVDPipeline.from_pretrained(folder)
    _check_message(error.value, folder, names)
    _check_cli(capsys, tmp_path, ["generate", image, "--model", folder, "--height", "16", "--width", "16",
                                  "--frames", "2", "--steps", "1"])


def test_good_folders_still_load(native_base, svd_folder, tmp_path):
    """The unmutated folders load, a sharded copy loads the very same tensors, and an fp16 file computes in fp32."""
    reference = SpaceTimeUNet.from_pretrained(native_base).state_dict()
    sharded = _mutated(native_base, tmp_path, _sharded(WEIGHTS))
    state = NativePipeline.from_pretrained(sharded).unet.state_dict()
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)
    linked = _mutated(native_base, tmp_path / "linked", _sharded(WEIGHTS, before=_outside_link))  # a cache snapshot
    state = NativePipeline.from_pretrained(linked).unet.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in state)
    half = _mutated(native_base, tmp_path / "half", _tensors(WEIGHTS, lambda s: s.update(
        {k: v.half() for k, v in s.items()})))
    assert next(SpaceTimeUNet.from_pretrained(half).parameters()).dtype == torch.float32
    assert SVDPipeline.from_pretrained(svd_folder[0]).default_frames == 4
