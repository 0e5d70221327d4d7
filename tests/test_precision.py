"""--bf16 (and training's `bf16: true`) means bfloat16 only where the hardware computes it natively; elsewhere the
run is float32 (exactly the float32 output) with a one-line notice on stderr, once. LIGHTVID_NATIVE_BF16=1/0 forces
either branch, so both are tested on any CPU."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_run import run
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.models import precision
from native_fixtures import save_tiny_native

NOTICE = "lightvid: --bf16 ignored: "


@pytest.fixture(autouse=True)
def fresh_detection(monkeypatch):
    """Each test starts with no notice printed yet and no cached detection."""
    monkeypatch.setattr(precision, "_noticed", False)
    precision._detect.cache_clear()
    yield
    precision._detect.cache_clear()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_native(tmp_path_factory.mktemp("model") / "tiny")  # 3 channels, patch 2, 16x16, window 5


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(Path(folder).glob("*.png"))])


@pytest.mark.parametrize("arch,features,native", [
    ("x86_64", {"avx2", "fma3"}, False),  # AVX2-only (e.g. EPYC Zen 2/3): bf16 is emulated, many times slower
    ("x86_64", {"avx2", "avx512_f", "avx512_bw", "avx512_vl"}, False),  # AVX-512 without its BF16 extension
    ("x86_64", {"avx2", "avx512_f", "avx512_bf16"}, True),  # Zen 4/5, Cooper Lake and later Xeons
    ("x86_64", {"avx2", "amx_tile", "amx_bf16"}, True),  # Sapphire Rapids AMX
    ("aarch64", {"neon", "dot"}, False),
    ("aarch64", {"neon", "bf16"}, True),  # FEAT_BF16 (Graviton 3, Apple M2+)
])
def test_native_bf16_is_read_from_the_cpu_features(monkeypatch, arch, features, native):
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision, "_cpu_features", lambda: (arch, features))
    found, why = precision.native_bf16()
    assert found is native
    assert (why == "") is native and (native or "no native bfloat16" in why)


def test_torch_and_proc_cpuinfo_agree_on_this_machine(monkeypatch):
    """The main detection (torch's cpuinfo) and the fallback for an older torch (/proc/cpuinfo's flags) agree."""
    if not Path("/proc/cpuinfo").exists() or not hasattr(torch.cpu, "get_capabilities"):
        pytest.skip("needs Linux's /proc/cpuinfo and torch.cpu.get_capabilities")
    monkeypatch.delenv(precision.ENV, raising=False)
    from_torch = precision.native_bf16()
    precision._detect.cache_clear()
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    assert precision.native_bf16() == from_torch


def test_the_environment_overrides_the_detection(monkeypatch, capsys):
    monkeypatch.setenv(precision.ENV, "1")
    assert precision.network_dtype(True) == torch.bfloat16
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.native_bf16()[0] is False
    monkeypatch.setenv(precision.ENV, "yes")
    with pytest.raises(LightvidError, match="LIGHTVID_NATIVE_BF16"):
        precision.network_dtype(True)
    assert capsys.readouterr().err == ""


def test_fallback_notice_is_one_line_printed_once(monkeypatch, capsys):
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.network_dtype(False) == torch.float32
    assert capsys.readouterr().err == ""  # bf16 not asked for: nothing to say
    assert precision.network_dtype(True) == precision.network_dtype(True) == torch.float32
    err = capsys.readouterr().err
    assert err.startswith(NOTICE) and err.endswith("; running float32\n") and err.count("\n") == 1, err


def test_cli_bf16_without_native_bf16_is_the_float32_run(monkeypatch, capsys, tmp_path, model):
    from lightvid.pipelines.native import NativePipeline

    dtypes = []  # the network dtype each run loads its model with
    load = NativePipeline.for_sampling
    monkeypatch.setattr(NativePipeline, "for_sampling",
                        lambda *args, **kwargs: dtypes.append(args[3] if len(args) > 3 else kwargs.get("dtype"))
                        or load(*args, **kwargs))
    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)).save(image)
    common = ["animate", image, "--model", model, "--frames", 5]
    code, _, err = run(capsys, *common, "-o", f"{tmp_path}/fp32/")
    assert code == 0 and NOTICE not in err, err

    monkeypatch.setenv(precision.ENV, "0")  # a CPU without native bf16, e.g. an AVX2-only EPYC
    code, _, err = run(capsys, *common, "-o", f"{tmp_path}/fallback/", "--bf16")
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("lightvid:")] == [
        f"{NOTICE}bfloat16 taken as not native: LIGHTVID_NATIVE_BF16=0; running float32"]
    assert np.array_equal(png_frames(tmp_path / "fallback"), png_frames(tmp_path / "fp32"))  # exactly float32
    assert dtypes == [torch.float32, torch.float32]

    monkeypatch.setenv(precision.ENV, "1")  # native bf16: the network really runs in bf16, so the frames differ
    code, _, err = run(capsys, *common, "-o", f"{tmp_path}/bf16/", "--bf16")
    assert code == 0 and NOTICE not in err, err
    assert not np.array_equal(png_frames(tmp_path / "bf16"), png_frames(tmp_path / "fp32"))
    assert dtypes[-1] == torch.bfloat16


def test_generate_bf16_without_native_bf16_is_the_float32_run(monkeypatch, capsys, tmp_path, svd_folder):
    picture = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save(picture)
    common = ["generate", picture, "--model", svd_folder[0], "--frames", 3, "--steps", 2,
              "--height", 32, "--width", 48]
    code, _, err = run(capsys, *common, "-o", f"{tmp_path}/fp32/")
    assert code == 0, err
    monkeypatch.setenv(precision.ENV, "0")
    code, _, err = run(capsys, *common, "-o", f"{tmp_path}/fallback/", "--bf16")
    assert code == 0 and err.count(NOTICE) == 1, err
    assert np.array_equal(png_frames(tmp_path / "fallback"), png_frames(tmp_path / "fp32"))


@pytest.mark.parametrize("native,mixed_precision", [("0", "no"), ("1", "bf16")])
def test_training_bf16_falls_back_where_bf16_is_not_native(monkeypatch, capsys, tmp_path, native, mixed_precision):
    import lightvid.train.loop as loop
    from lightvid.train import config_from_dict

    class Stop(Exception):
        pass

    seen = {}

    def accelerator(**kwargs):  # records the choice, then stops before any training work
        seen.update(kwargs)
        raise Stop

    raw = yaml.safe_load((Path(__file__).parent.parent / "configs" / "tiny.yaml").read_text())
    raw["output_dir"] = str(tmp_path)
    raw["train"]["bf16"] = True
    monkeypatch.setattr(loop, "Accelerator", accelerator)
    monkeypatch.setenv(precision.ENV, native)
    with pytest.raises(Stop):
        loop.train(config_from_dict(raw))
    assert seen["mixed_precision"] == mixed_precision
    err = capsys.readouterr().err
    assert (err == "lightvid: bf16: true ignored: bfloat16 taken as not native: LIGHTVID_NATIVE_BF16=0; "
            "running float32\n") if native == "0" else err == ""
