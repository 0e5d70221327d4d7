"""The denoising network to ExecuTorch: one `network.pte`, float32, lowered to XNNPACK where XNNPACK can run it.

Same network as the ONNX export (lightvid.export.onnx._Network): sample (1, f, c_in, h, w), c_noise (1,) ->
out (1, f, c_out, h, w); frames, height and width are dynamic, the batch is 1 (BOUNDS_DOC says why). ExecuTorch
plans its activation memory once, for the upper bound of every axis, and allocates it when the program loads; so
the bounds are the smallest that serve every call a pipeline makes at the model's own size, not the ONNX export's
"anything up to MAX_SIZE": lightvid.models.executorch_network refuses a larger input with a one-line error.

What torch.export and XNNPACK need from this UNet (each found by exporting it; see the comments where it is done):
- `backed_size_oblivious`: without it, tracing reasons about every dynamic size being 0 or 1, and the tiny test
  UNet had not finished tracing after 5 minutes (with it: seconds; torch.onnx.export sets it too).
- size guards (frames != 1, an odd frame count after a temporal downsample, ...) kept as runtime asserts, then
  dropped: ExecuTorch drops every assert anyway (RemoveGraphAssertsPass in to_executorch); the graph computes the
  same for the excluded sizes, which tests/test_export_executorch.py checks against PyTorch.
- lower bounds on height/width that guards do state as ranges (a 2x downsample of 1 or 2 pixels) are taken from
  torch.export's suggested fixes, as torch.onnx.export does, and recorded in the bounds.
- XNNPACK reshapes with at most one dynamic axis: squeeze/unsqueeze with more stay out of the delegate and run in
  ExecuTorch's portable kernels, and so does a Conv1d whose input has more (XNNPACK runs Conv1d as unsqueeze ->
  Conv2d -> squeeze): the temporal down/upsampling convolutions over (h·w, c, f).
"""
import contextlib
import io
import warnings
from pathlib import Path

import torch

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.executorch_network import quiet_executorch

from .onnx import _Network

AXES = {"batch": 0, "frames": 1, "height": 3, "width": 4}  # of sample (b, f, c_in, h, w)
# Why dynamic axes at all: a static program (one shape) lowers in 50 s instead of 160 s on the tiny test UNet and
# runs no faster on `photo`, but the pipelines call the network at other frame counts than the window (a loop's
# first pass, interpolate --frames N), which a static program cannot serve.
# Batch is fixed at 1: with a dynamic batch the program lowered but failed at batch 2 (the runtime had planned a
# (b, 4·c) time-embedding tensor as a static (1, 4·c) one: "Attempted to resize a static tensor"), so
# ExecutorchNetwork runs guidance's batch of 2 as two calls (the same arithmetic; on a CPU a batch of 2 is no
# faster than two calls), and half the memory is planned.
# Frames: up to the model's window (longer videos are made window by window). Height and width: up to the model's
# own size / patch, because memory is planned for the upper bounds and allocated when the program loads (the ONNX
# export's MAX_SIZE would plan terabytes); a pipeline asked for a larger size gets a one-line error.
BOUNDS_DOC = "batch 1 (a batch runs as one call per clip), frames up to the model's window, height and width up to " \
             "the model's size / patch"


def _one_dynamic_axis(config_cls):
    """A partitioner config that also refuses nodes whose output has more than one dynamic axis: XNNPACK lowers
    them to a static reshape, which infers at most one axis at run time (op_squeeze.py raises at lowering)."""
    from torch.fx.experimental.symbolic_shapes import free_symbols

    class OneDynamicAxis(config_cls):
        def check_constraints(self, node: torch.fx.Node, ep) -> bool:
            shape = node.meta["val"].shape
            if sum(bool(free_symbols(d)) for d in shape) > 1:
                return False
            return super().check_constraints(node, ep)

    return OneDynamicAxis


def _conv1d_one_dynamic_axis(config_cls):
    """The Convolution config refusing a 1D convolution whose input has more than one dynamic axis: XNNPACK runs
    Conv1d as unsqueeze -> Conv2d -> squeeze inside the delegate (the reshape limit above)."""
    from torch.fx.experimental.symbolic_shapes import free_symbols

    class Conv1dOneDynamicAxis(config_cls):
        def check_constraints(self, node: torch.fx.Node, ep) -> bool:
            shape = node.args[0].meta["val"].shape
            if len(shape) == 3 and sum(bool(free_symbols(d)) for d in shape) > 1:
                return False
            return super().check_constraints(node, ep)

    return Conv1dOneDynamicAxis


def _partitioner():
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.gemm_configs import ConvolutionConfig
    from executorch.backends.xnnpack.partition.config.generic_node_configs import UnsqueezeCopyConfig
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    replaced = {UnsqueezeCopyConfig: _one_dynamic_axis(UnsqueezeCopyConfig),
                ConvolutionConfig: _conv1d_one_dynamic_axis(ConvolutionConfig)}
    return XnnpackPartitioner(configs=[replaced.get(c, c) for c in ALL_PARTITIONER_CONFIGS])


def _export(net: torch.nn.Module, example: tuple, shapes: dict) -> torch.export.ExportedProgram:
    # backed_size_oblivious: see the module docstring (seconds instead of > 5 minutes, as in torch.onnx.export)
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        try:
            return torch.export.export(net, example, dynamic_shapes=shapes, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)
        except torch._dynamo.exc.UserError as e:  # a range the guards need (height >= 3): take the suggested fix
            refined = torch.export.dynamic_shapes.refine_dynamic_shapes_from_suggested_fixes(e.msg, shapes)
            return torch.export.export(net, example, dynamic_shapes=refined, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)


def _lower(program: torch.export.ExportedProgram):
    """The exported program in ExecuTorch's edge dialect, XNNPACK subgraphs lowered: an EdgeProgramManager."""
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    from executorch.exir.passes.remove_graph_asserts_pass import RemoveGraphAssertsPass

    # the deferred size asserts (see the module docstring) hold Python sym ops the edge dialect refuses;
    # to_executorch would drop them anyway
    RemoveGraphAssertsPass()(program.graph_module)
    # weights computed from weights at run time become constants: XNNPACK takes a convolution or linear only when
    # its weight is a constant. The temporal convolutions apply Conv3d weights (c, c, 3, 1, 1) squeezed to (c, c, 3, 1)
    # and attention concatenates q, k, v weights: unfolded, all of them ran in ExecuTorch's naive portable kernels,
    # 40x slower than eager on `photo` (the ONNX export folds them with onnxscript's optimizer for the same reason)
    program = constant_prop_pass(program)
    return to_edge_transform_and_lower(program, partitioner=[_partitioner()],
                                       transform_passes=[RemoveGraphAssertsPass()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False))


def _bounds(program: torch.export.ExportedProgram) -> dict[str, list[int]]:
    """{axis name: [min, max]} of the sample input, as the exported program states them."""
    sample = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == "sample")
    shape = sample.meta["val"].shape
    bounds = {}
    for name, axis in AXES.items():
        size = shape[axis]
        if isinstance(size, int):
            bounds[name] = [size, size]
        else:
            r = program.range_constraints[size.node.expr]
            bounds[name] = [int(r.lower), int(r.upper)]
    return bounds


def export_executorch(unet: SpaceTimeUNet, path: Path, frames: int, height: int, width: int) -> dict[str, list[int]]:
    """Write `unet` (float32, XNNPACK-lowered) to the ExecuTorch program `path`, traced at
    (1, frames, c_in, height, width), which are also the upper bounds of the dynamic axes (BOUNDS_DOC).
    Returns the bounds {"batch" | "frames" | "height" | "width": [min, max]} for export.json."""
    net = _Network(unet.float()).eval()
    sample = torch.randn(1, frames, unet.config.in_channels, height, width,
                         generator=torch.Generator().manual_seed(0))
    c_noise = torch.zeros(1)
    dims = {"frames": torch.export.Dim("frames", min=1, max=frames),
            "height": torch.export.Dim("height", min=1, max=height),
            "width": torch.export.Dim("width", min=1, max=width)}
    shapes = {"sample": {1: dims["frames"], 3: dims["height"], 4: dims["width"]}, "c_noise": None}
    # torch.export and ExecuTorch print progress, log warnings about packages lightvid does not use (torchao's CUDA
    # kernels) and write C++ logs to fd 2: quiet_executorch silences the last two
    try:
        with quiet_executorch(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = _export(net, (sample, c_noise), shapes)
            bounds = _bounds(program)
            edge = _lower(program)
            buffer = edge.to_executorch().buffer
    except ImportError:
        raise LightvidError("--format executorch needs ExecuTorch: pip install 'lightvid[executorch]'") from None
    except Exception as e:  # noqa: BLE001 - torch.export / ExecuTorch raise many types; the user needs the first line
        raise LightvidError(f"ExecuTorch export failed: {type(e).__name__}: "
                            f"{(str(e).strip().splitlines() or [''])[0]}") from None
    Path(path).write_bytes(buffer)
    return bounds
