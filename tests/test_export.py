"""`lightvid export --format onnx` and `--runtime onnx` on tiny random models: the folder it writes, the parity
report, equality with the torch runtime through the whole pipeline (dynamic frames, size and batch), int8, and the
one-line errors."""
import itertools
import json
import shutil

import pytest
import torch
from cli_run import assert_runtime_matches_torch, run, run_frames
from tolerances import EPS32

from lightvid.models.onnx_network import EXPORT_FILE, ONNX_FILE
from lightvid.pipelines.native import NativePipeline
from native_fixtures import save_model_with_student, tiny_native

ROCKET = "examples/rocket.jpg"
MOTORCYCLE = "examples/motorcycle.jpg"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model folder, its export): the export runs once for the module (torch.export takes seconds)."""
    root = tmp_path_factory.mktemp("export")
    model = save_model_with_student(root / "m")
    from lightvid.cli import main
    assert main(["export", str(model), "-o", str(root / "e")]) == 0
    return model, root / "e"


def test_export_writes_a_complete_model_folder_with_its_parity_report(exported):
    model, out = exported
    for folder in (out, out / "fast"):  # the student is exported too
        facts = json.loads((folder / EXPORT_FILE).read_text())
        assert (folder / ONNX_FILE).is_file() and facts["format"] == "onnx" and facts["quantize"] == "none"
        parity = facts["parity"]
        assert parity["passes"] and parity["psnr_db_min"] >= parity["bar_db"] == 35
        # float32 against float32, only the kernels' summation order differs: measured ~12 EPS32 of the largest
        # output through this network's ~40 layers; a wrong op or weight would differ by O(1)
        assert parity["network_max_abs_diff"] <= 256 * EPS32 * max(1.0, parity["network_output_max_abs"])
    for name in ("config.json", "model.safetensors", "pipeline.json", "fast/model.safetensors"):  # MODEL's files
        assert (out / name).read_bytes() == (model / name).read_bytes()


@pytest.mark.parametrize("args", [
    ("animate", ROCKET, "--frames", "9"),  # two windows: frames given by the first window feed the second
    ("interpolate", ROCKET, MOTORCYCLE, "--frames", "4", "--height", "24", "--width", "32"),  # other frames, size
    ("loop", ROCKET, "--guidance", "2"),  # guidance: a batch of 2
    ("animate", ROCKET, "--steps", "2"),  # --steps: the model itself, not its student
])
def test_onnx_runtime_matches_torch(exported, tmp_path, capsys, args):
    _, out = exported
    assert_runtime_matches_torch(capsys, tmp_path, out, "onnx", *args)


def test_onnx_errors_are_one_line(exported, tmp_path, capsys):
    model, out = exported
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--model", model, "--runtime", "onnx")
    assert code == 2 and "holds no ONNX export" in err and "lightvid export" in err
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--model", out, "--runtime", "onnx",
                       "--bf16")
    assert code == 2 and "--bf16 applies to --runtime torch" in err
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--model", out, "--runtime", "tvm")
    assert code == 2 and "--runtime must be one of torch, onnx, executorch" in err
    stale = shutil.copytree(out, tmp_path / "stale")  # other weights beside the export
    (stale / "fast").rename(tmp_path / "unused")
    data = bytearray((stale / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (stale / "model.safetensors").write_bytes(bytes(data))
    pipeline = json.loads((stale / "pipeline.json").read_text())
    del pipeline["student"]
    (stale / "pipeline.json").write_text(json.dumps(pipeline))
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--model", stale, "--runtime", "onnx")
    assert code == 2 and "exported from other weights" in err
    broken = shutil.copytree(out / "fast", tmp_path / "broken")
    (broken / ONNX_FILE).write_bytes(b"not onnx")
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--model", broken, "--runtime", "onnx")
    assert code == 2 and "onnxruntime cannot load it" in err and err.count("\n") == 1
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("args, message", [
    (("--format", "tflite"), "--format must be one of onnx, executorch"),
    (("--format", "executorch", "--quantize", "int8"), "--quantize int8 applies to --format onnx"),
    (("--quantize", "int4"), "--quantize must be one of none, int8"),
])
def test_export_refuses_bad_options_before_any_work(tmp_path, capsys, args, message):
    model = tiny_native(3, patch=2, size=16, frames=5)
    model.save_pretrained(tmp_path / "m")
    code, _, err = run(capsys, "export", tmp_path / "m", "-o", tmp_path / "e", *args)
    assert code == 2 and message in err
    assert not (tmp_path / "e").exists()


def test_export_never_writes_into_the_model_it_reads(exported, capsys):
    model, _ = exported
    code, _, err = run(capsys, "export", model, "-o", model / "inside")
    assert code == 2 and "-o/--output" in err and not (model / "inside").exists()


def test_int8_quantization_runs_and_reports_its_cost(exported, tmp_path, capsys):
    """The int8 path of `lightvid export --quantize int8` from the float export on: calibration on the network's
    recorded inputs, quantization, the parity report, the runtime. (A second export just for this would cost the
    test suite another torch.export; the option itself is checked in test_export_refuses_bad_options....)"""
    import onnx

    from lightvid.export.folder import calibration_inputs
    from lightvid.export.onnx import quantize_int8
    from lightvid.export.parity import parity_report

    _, out = exported
    folder = shutil.copytree(out / "fast", tmp_path / "q")
    pipe = NativePipeline.from_pretrained(folder)
    quantize_int8(out / "fast" / ONNX_FILE, folder / ONNX_FILE,
                  itertools.islice(calibration_inputs(pipe), 8))  # 8 inputs: enough ranges for a test
    # quantized for real: int8 weights behind DequantizeLinear, activations through Quantize/Dequantize pairs
    graph = onnx.load(str(folder / ONNX_FILE)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 8 and sum(node.op_type == "QuantizeLinear" for node in graph.node) >= 8
    quantized = NativePipeline.from_pretrained(folder, runtime="onnx")
    clip = torch.rand(5, 3, 16, 16) * 2 - 1
    report = parity_report(pipe, quantized, "onnx", [clip])
    assert report["network_max_abs_diff"] > 0  # lossy: the report measures a real difference
    assert report["passes"] == (report["psnr_db_min"] >= 35)
    frames = run_frames(capsys, tmp_path, "int8", "animate", ROCKET, "--model", folder, "--runtime", "onnx")
    assert frames.shape == (5, 3, 16, 16)
