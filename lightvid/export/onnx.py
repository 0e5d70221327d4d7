"""The denoising network to ONNX (torch.export -> onnxscript), and its int8 quantization for onnxruntime.

Only the SpaceTimeUNet is exported: sample (b, f, c_in, h, w), c_noise (b,) -> out (b, f, c_out, h, w), with batch,
frames, height and width as dynamic axes (one file serves every frame count and size a command allows; guidance
runs a batch of 2). The conditioning around it (flow hints, warps, patch folding) stays in PyTorch/NumPy
(lightvid.models.onnx_network).
"""
import contextlib
import io
import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.onnx_network import INPUTS, OUTPUT
from lightvid.pipelines.native import MAX_SIZE
from lightvid.tasks.framespec import MAX_FRAMES

OPSET = 20
MAX_BATCH = 64
ONE_FILE_LIMIT = 1_800_000_000  # bytes of weights: ONNX keeps one file under protobuf's 2 GB
# the ops that hold the weights and the time; the norms and the time embedding's Gemms stay float, and so do the
# first and last convolutions, which read the conditioning channels and write the prediction (measured on photo:
# this split was both more accurate and faster than quantizing every Conv/MatMul/Gemm)
QUANTIZED_OPS = ["Conv", "MatMul"]


class _Network(nn.Module):
    """The UNet with the two inputs the pipelines give it, under the names the ONNX graph takes."""

    def __init__(self, unet: SpaceTimeUNet):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, c_noise)


def export_network(unet: SpaceTimeUNet, path: Path, frames: int, height: int, width: int) -> None:
    """Write `unet` (float32) to the ONNX file `path`, traced at (2, frames, c_in, height, width): every axis but
    the channels is dynamic in the file (an axis traced at 1 would be fixed: it is traced at 2 at least)."""
    weight_bytes = sum(p.numel() * 4 for p in unet.parameters())
    if weight_bytes > ONE_FILE_LIMIT:
        raise LightvidError(f"the network has {weight_bytes / 1e9:.1f} GB of float32 weights: more than one ONNX "
                            f"file holds ({ONE_FILE_LIMIT / 1e9:.1f} GB)")
    import onnx
    import onnxscript

    net = _Network(unet.float()).eval()
    # traced at batch 2 (guidance's batch): torch.export specializes an axis whose example size is 1
    frames, height, width = max(frames, 2), max(height, 2), max(width, 2)
    sample = torch.randn(2, frames, unet.config.in_channels, height, width, generator=torch.Generator().manual_seed(0))
    c_noise = torch.zeros(2)
    dims = {"batch": torch.export.Dim("batch", min=1, max=MAX_BATCH),
            "frames": torch.export.Dim("frames", min=1, max=MAX_FRAMES),
            "height": torch.export.Dim("height", min=1, max=MAX_SIZE),
            "width": torch.export.Dim("width", min=1, max=MAX_SIZE)}
    shapes = {"sample": {0: dims["batch"], 1: dims["frames"], 3: dims["height"], 4: dims["width"]},
              "c_noise": {0: dims["batch"]}}
    # the exporter prints its progress and logs warnings about packages lightvid does not use (torchvision)
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (sample, c_noise), dynamo=True, input_names=list(INPUTS),
                                        output_names=[OUTPUT], dynamic_shapes=shapes, opset_version=OPSET,
                                        optimize=False, verbose=False)
    except Exception as e:  # noqa: BLE001 - torch.export raises many types; the user needs the first line
        raise LightvidError(f"ONNX export failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from None
    finally:
        quiet.level = level
    # fold constant subgraphs (e.g. a temporal convolution's weight reshaped at run time) into initializers: one
    # less op per call, and quantization needs each Conv's weight to be an initializer. onnxscript's pattern
    # rewrites (the exporter's optimize=True) are left to onnxruntime's own graph optimizations at load time: they
    # took most of the export's time
    model = program.model
    onnxscript.optimizer.fold_constants(model, input_size_limit=1 << 31, output_size_limit=1 << 31)
    onnxscript.optimizer.remove_unused_nodes(model)
    onnx.save(onnxscript.ir.serde.serialize_model(model), str(path))


def quantize_int8(source: Path, target: Path, calibration: Iterable[dict[str, np.ndarray]]) -> None:
    """Static int8 quantization (QDQ: uint8 activations, per-channel int8 weights) of QUANTIZED_OPS, the
    activation ranges calibrated (min-max) on `calibration`: network inputs {"sample", "c_noise"} as NumPy arrays,
    recorded from the model's own sampling (lightvid.export.folder)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: Iterator[dict[str, np.ndarray]]):
            self.feeds = feeds

        def get_next(self):
            return next(self.feeds, None)

    convs = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node
             if node.op_type == "Conv"]
    root = logging.getLogger()  # onnxruntime's quantizer logs advice (pre-processing) on the root logger
    level, root.level = root.level, logging.ERROR
    try:
        quantize_static(str(source), str(target), Reader(iter(calibration)), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=[convs[0], convs[-1]] if convs else [])
    finally:
        root.level = level
    # (min-max calibration keeps two numbers per tensor and call: little memory, whatever the number of inputs)
