"""`lightvid export --format executorch` and `--runtime executorch` on a tiny random model: the folder it writes,
its parity report, equality with the torch runtime through the whole pipeline, and the one-line errors."""
import json
import shutil

import pytest
import torch
from cli_run import assert_runtime_matches_torch, run
from tolerances import EPS32, relative_error

from lightvid.models.executorch_network import PTE_FILE, SIZE_AXES
from lightvid.models.onnx_network import EXPORT_FILE, ONNX_FILE
from native_fixtures import tiny_native

pytest.importorskip("executorch")  # an optional dependency (make install installs it)

ROCKET = "examples/rocket.jpg"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model folder, its ExecuTorch export): tracing and lowering with dynamic sizes takes minutes on 2 cores, so
    it runs once, for a model without a student (export_model exports a student as it does the model: the ONNX
    tests check that)."""
    root = tmp_path_factory.mktemp("executorch")
    model = root / "m"
    tiny_native(3, patch=2, size=16, frames=5, conditioning="flow_warps", prediction="hint_residual").save_pretrained(
        model, extra={"trained_steps": 0, "dataset": "camera_motion"})
    from lightvid.cli import main
    assert main(["export", str(model), "--format", "executorch", "-o", str(root / "e")]) == 0
    return model, root / "e"


def test_export_writes_a_model_folder_with_the_program_and_its_parity_report(exported):
    model, out = exported
    facts = json.loads((out / EXPORT_FILE).read_text())
    assert (out / PTE_FILE).is_file() and not (out / ONNX_FILE).exists()
    # up to the window and the model's size / patch: the memory ExecuTorch plans when it loads the program
    assert facts["format"] == "executorch" and [facts["bounds"][axis][1] for axis in SIZE_AXES] == [5, 8, 8]
    parity = facts["parity"]
    assert parity["runtime"] == "executorch" and parity["passes"] and parity["psnr_db_min"] >= 35
    # float32 against float32, only the kernels' summation order differs (XNNPACK vs oneDNN/ATen): measured
    # ~2e-6 of outputs of magnitude ~0.6 on `photo`; a wrong op or weight would differ by O(1)
    assert parity["network_max_abs_diff"] <= 256 * EPS32 * max(1.0, parity["network_output_max_abs"])
    for name in ("config.json", "model.safetensors", "pipeline.json"):
        assert (out / name).read_bytes() == (model / name).read_bytes()


@pytest.mark.parametrize("args", [
    ("animate", ROCKET, "--frames", "9"),  # two windows: frames given by the first window feed the second
    ("loop", ROCKET, "--guidance", "2"),  # guidance: a batch of 2, run as two calls; 3 frames in the first pass
    ("interpolate", ROCKET, ROCKET, "--frames", "4"),  # an even frame count, below the window
])
def test_executorch_runtime_matches_torch(exported, tmp_path, capsys, args):
    _, out = exported
    assert_runtime_matches_torch(capsys, tmp_path, out, "executorch", *args)


def test_executorch_errors_are_one_line(exported, tmp_path, capsys):
    model, out = exported
    target = tmp_path / "a.mp4"
    code, _, err = run(capsys, "animate", ROCKET, "-o", target, "--model", model, "--runtime", "executorch")
    assert code == 2 and "holds no ExecuTorch export" in err and "--format executorch" in err
    code, _, err = run(capsys, "animate", ROCKET, "-o", target, "--model", out, "--runtime", "executorch",
                       "--height", "24")  # above the model's size: more memory than the program planned
    assert code == 2 and "this call has 5 frames of 12x8 network cells" in err.splitlines()[-1]
    assert "the export runs 1..5 frames of" in err and err.count("lightvid: error") == 1
    code, _, err = run(capsys, "animate", ROCKET, "-o", target, "--model", out, "--runtime", "executorch", "--bf16")
    assert code == 2 and "--bf16 applies to --runtime torch" in err
    stale = shutil.copytree(out, tmp_path / "stale")  # other weights beside the export
    data = bytearray((stale / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (stale / "model.safetensors").write_bytes(bytes(data))
    code, _, err = run(capsys, "animate", ROCKET, "-o", target, "--model", stale, "--runtime", "executorch")
    assert code == 2 and "exported from other weights" in err
    broken = shutil.copytree(out, tmp_path / "broken")
    (broken / PTE_FILE).write_bytes(b"not a program")
    code, _, err = run(capsys, "animate", ROCKET, "-o", target, "--model", broken, "--runtime", "executorch")
    assert code == 2 and "ExecuTorch cannot load it" in err and err.count("\n") == 1
    assert not target.exists()


@pytest.mark.parametrize("shape", [(2, 3, 8, 8),  # guidance's batch of 2 (two calls), fewer frames
                                   (1, 4, 6, 8),  # an even frame count, a smaller height
                                   (1, 1, 8, 8)])  # one frame (a size the trace guarded against, see export)
def test_network_matches_torch_inside_the_bounds(exported, shape):
    from lightvid.models.executorch_network import ExecutorchNetwork
    from lightvid.pipelines.native import NativePipeline

    model, out = exported
    pipe = NativePipeline.from_pretrained(model)
    net = ExecutorchNetwork(out, pipe.unet.config)
    b, f, h, w = shape
    sample = torch.randn(b, f, pipe.unet.config.in_channels, h, w, generator=torch.Generator().manual_seed(1))
    c_noise = torch.tensor([0.2, -0.7][:b])
    with torch.no_grad():
        expected = pipe.unet(sample, c_noise)
    got = net(sample, c_noise)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    # float32 kernel-order differences only (XNNPACK vs oneDNN/ATen sum the same products in other orders and
    # blocks): measured ~1e-6 of outputs of magnitude ~1, i.e. under 10 EPS32
    assert relative_error(got, expected) <= 64 * EPS32


def test_input_above_the_bounds_is_a_clear_error(exported):
    from lightvid.errors import LightvidError
    from lightvid.models.checkpoint import read_config
    from lightvid.models.executorch_network import ExecutorchNetwork

    _, out = exported
    net = ExecutorchNetwork(out, read_config(out))
    c_in = net.config.in_channels
    with pytest.raises(LightvidError, match=r"this call has 6 frames of 8x8 network cells.*runs 1\.\.5 frames"):
        net(torch.zeros(1, 6, c_in, 8, 8), torch.zeros(1))
