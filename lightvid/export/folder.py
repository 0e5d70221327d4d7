"""`lightvid export`: a native model folder -> the same folder plus its network in ONNX or ExecuTorch and the
parity report.

The output is a complete model folder (every file of MODEL, its few-step student exported too) that every command
loads with `--model DIR`, and with `--runtime onnx|executorch` runs the exported network. It lands atomically: a
failed export, or one under the parity bar, leaves nothing behind.
"""
import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from lightvid.data import WebDatasetShards, build_dataset
from lightvid.errors import LightvidError
from lightvid.io import atomic_dir, atomic_write
from lightvid.models import SpaceTimeUNet
from lightvid.models.executorch_network import PTE_FILE
from lightvid.models.onnx_network import EXPORT_FILE, ONNX_FILE, weights_digest
from lightvid.pipelines.native import PIPELINE_FILE, NativePipeline
from lightvid.tasks import task_spec
from lightvid.weights import model_folder

from .onnx import OPSET, export_network, quantize_int8
from .parity import PSNR_BAR, parity_report, recorded_calls, report_lines

FORMATS = ("onnx", "executorch")  # each is also the name of the runtime that runs it
QUANTIZATIONS = ("none", "int8")
PARITY_CLIPS = 2  # held-out clips the parity report generates from (x PARITY_TASKS, x 2 runtimes)
CALIBRATION_CLIPS = 4  # training clips int8 calibration records the network's inputs on
CALIBRATION_TASKS = ("animate", "interpolate", "extend")
CALIBRATION_INPUTS = 48  # at most this many recorded network inputs calibrate the int8 ranges


def model_clips(pipe: NativePipeline, split: str, count: int) -> tuple[list[torch.Tensor], str]:
    """`count` clips (F, 3, H, W) of the model's window and size from its dataset's `split` (pipeline.json's
    "dataset" and "data" facts), or from the bundled photos' camera motion when the folder names no dataset or
    it cannot be built here (a video folder that is not on this machine): (clips, what they are)."""
    s = pipe.settings
    size = s.height if s.height == s.width else (s.height, s.width)
    name, options = pipe.facts.get("dataset"), pipe.facts.get("data")
    options = {k: v for k, v in options.items() if k not in ("num_frames", "size", "split")} \
        if isinstance(options, dict) else {}
    source = f"{name} {split} split"
    try:
        if not isinstance(name, str):
            raise LightvidError("no dataset named in pipeline.json")
        data = build_dataset(name, **options, split=split, num_frames=s.num_frames, size=size)
    except (LightvidError, OSError) as e:
        source = f"camera_motion {split} split (the model's own dataset: {str(e).splitlines()[0]})"
        data = build_dataset("camera_motion", split=split, num_frames=s.num_frames, size=size)
    if isinstance(data, WebDatasetShards):
        data = data.clips()
    clips = [data[i][0].expand(-1, 3, -1, -1) for i in range(min(count, len(data)))]
    return clips, source


def calibration_inputs(pipe: NativePipeline) -> Iterator[dict[str, np.ndarray]]:
    """The network's inputs while the model samples CALIBRATION_TASKS on training clips: with its own sampling
    defaults, and with 4 Euler steps too when it samples in fewer (so that the ranges cover the noise levels
    between sigma_max and sigma_min that `--steps N` reaches)."""
    clips, _ = model_clips(pipe, "train", CALIBRATION_CLIPS)
    samplings = [{}] + ([{"steps": 4, "sampler": "euler"}] if pipe.settings.steps < 4 else [])
    seed = itertools.count()
    for clip, task, sampling in itertools.product(clips, CALIBRATION_TASKS, samplings):
        with recorded_calls(pipe) as calls:
            pipe(task_spec(task, clip, pipe.settings.fps), generator=torch.Generator().manual_seed(next(seed)),
                 progress=False, **sampling)
        for sample, c_noise, _ in calls:
            yield {"sample": sample.float().numpy(), "c_noise": c_noise.float().reshape(-1).numpy()}


def _student(folder: Path) -> Path | None:
    student = json.loads((folder / PIPELINE_FILE).read_text()).get("student")
    return folder / student if student is not None else None


def _onnx(pipe: NativePipeline, folder: Path, name: str, quantize: str, log: Callable[[str], None]) -> dict:
    """Write folder/network.onnx; returns its facts for export.json."""
    s = pipe.settings
    float_path = folder / ONNX_FILE if quantize == "none" else folder / ".network.float.onnx"
    log(f"{name}: exporting the network to ONNX ({s.num_frames} frames at {s.height}x{s.width}; frames and size stay "
        "dynamic)")
    export_network(pipe.unet, float_path, s.num_frames, s.height // s.patch, s.width // s.patch)
    if quantize == "int8":
        log(f"{name}: quantizing to int8, calibrated on the network's inputs while sampling training clips")
        quantize_int8(float_path, folder / ONNX_FILE, itertools.islice(calibration_inputs(pipe), CALIBRATION_INPUTS))
        float_path.unlink()
    return {"format": "onnx", "quantize": quantize, "opset": OPSET, "file": ONNX_FILE,
            "inputs": {"sample": "(batch, frames, c_in, height / patch, width / patch) float32",
                       "c_noise": "(batch,) float32"},
            "output": "(batch, frames, c_out, height / patch, width / patch) float32",
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__}}


def _executorch(pipe: NativePipeline, folder: Path, name: str, log: Callable[[str], None]) -> dict:
    """Write folder/network.pte; returns its facts for export.json."""
    from importlib.metadata import version

    from .executorch import BOUNDS_DOC, export_executorch

    s = pipe.settings
    log(f"{name}: exporting the network to ExecuTorch and lowering it to XNNPACK (up to {s.num_frames} frames at "
        f"{s.height}x{s.width}: its memory is planned for them; this takes minutes)")
    bounds = export_executorch(pipe.unet, folder / PTE_FILE, s.num_frames, s.height // s.patch, s.width // s.patch)
    return {"format": "executorch", "quantize": "none", "file": PTE_FILE, "bounds": bounds, "bounds_note": BOUNDS_DOC,
            "inputs": {"sample": "(1, frames, c_in, height / patch, width / patch) float32 within bounds",
                       "c_noise": "(1,) float32"},
            "output": "(1, frames, c_out, height / patch, width / patch) float32",
            "versions": {"torch": torch.__version__, "executorch": version("executorch")}}


def export_one(folder: Path, name: str, fmt: str, quantize: str, log: Callable[[str], None]) -> dict:
    """Export the network of the model folder `folder` in place to `fmt`; returns what export.json holds."""
    pipe = NativePipeline.from_pretrained(folder)
    facts = _onnx(pipe, folder, name, quantize, log) if fmt == "onnx" else _executorch(pipe, folder, name, log)
    facts["weights_sha256"] = weights_digest(folder)
    _write_json(folder / EXPORT_FILE, facts)  # the runtime checks the weights' digest on load
    clips, source = model_clips(pipe, "test", PARITY_CLIPS)
    log(f"{name}: parity against PyTorch on {len(clips)} clips of {source}")
    report = parity_report(pipe, NativePipeline.from_pretrained(folder, runtime=fmt), fmt, clips)
    report["data"] = source
    for line in report_lines(name, report):
        log(line)
    if not report["passes"]:
        if quantize == "none":
            raise LightvidError(f"{name}: the export's generations score {report['psnr_db_min']:.1f} dB against "
                                f"PyTorch, under the {PSNR_BAR:g} dB bar: nothing written")
        log(f"{name}: warning: int8 is under the {PSNR_BAR:g} dB bar: frames differ visibly from float32")
    facts["parity"] = report
    _write_json(folder / EXPORT_FILE, facts)
    return facts


def _write_json(path: Path, value: dict) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")


def check_export_options(fmt: str, quantize: str) -> None:
    """--format and --quantize, alone and together (int8 is onnxruntime's)."""
    if fmt not in FORMATS:
        raise LightvidError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r} (LiteRT: see "
                            "docs/export.md)")
    if quantize not in QUANTIZATIONS:
        raise LightvidError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    if quantize != "none" and fmt != "onnx":
        raise LightvidError(f"--quantize {quantize} applies to --format onnx; the {fmt} export is float32")


def export_model(model: str | Path, output: Path, fmt: str = "onnx", quantize: str = "none",
                 overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Write `output`: the model folder of `model` (an embedded name or a folder) with its network exported.
    Returns {folder name: export.json's contents} for the model and its student, if it ships one."""
    check_export_options(fmt, quantize)
    source = model_folder(model)
    if output.absolute().resolve().is_relative_to(source.resolve()):
        raise LightvidError(f"-o/--output {output}: inside the model folder {source}; export to a folder outside it")
    pipe = NativePipeline.for_sampling(source)[0]  # the folder (and its student) is a valid native model, first
    if not isinstance(pipe.unet, SpaceTimeUNet):
        raise LightvidError(f"{source}: a {type(pipe.unet).__name__} model cannot be exported; the onnx and "
                            "executorch exports cover SpaceTimeUNet models")
    reports = {}
    with atomic_dir(output, overwrite) as target:
        # a former export of MODEL (either format) is not copied: the folder holds the new one only
        shutil.copytree(source, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(ONNX_FILE, PTE_FILE, EXPORT_FILE))
        reports[str(model)] = export_one(target, str(model), fmt, quantize, log)
        student = _student(target)
        if student is not None:
            reports[f"{model}/{student.name}"] = export_one(student, f"{model}/{student.name}", fmt, quantize, log)
    return reports
