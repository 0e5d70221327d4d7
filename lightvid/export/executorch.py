"""The denoising network to ExecuTorch: one `network.pte`, float32, lowered to XNNPACK where XNNPACK can run it.

Same network and signature as the ONNX export (lightvid.export.onnx._Network): sample (b, f, c_in, h, w),
c_noise (b,) -> out (b, f, c_out, h, w). Batch, frames, height and width are dynamic, but ExecuTorch plans its
activation memory once, for the upper bound of every axis, and allocates it when the program loads; so the bounds
are the smallest that serve every call a pipeline makes (BOUNDS_DOC), not the ONNX export's "anything up to
MAX_SIZE": an input above them is refused by the runtime (lightvid.models.executorch_network says so in one line).

What torch.export and XNNPACK need from this UNet (each found by exporting it; see the comments where it is done):
- `backed_size_oblivious`: without it, tracing with four dynamic axes reasons about every size being 0 or 1 and a
  tiny UNet takes tens of minutes to trace (torch.onnx.export does the same).
- size guards (frames != 1, an odd frame count after a temporal downsample, ...) kept as runtime asserts, then
  dropped: ExecuTorch drops every assert anyway (RemoveGraphAssertsPass in to_executorch); the graph computes the
  same for the excluded sizes, which tests/test_export_executorch.py checks against PyTorch.
- lower bounds on height/width that guards do state as ranges (a 2x downsample of 1 or 2 pixels) are taken from
  torch.export's suggested fixes, as torch.onnx.export does, and recorded in the bounds.
- XNNPACK reshapes with at most one dynamic axis: squeeze/unsqueeze with more (a Conv1d over (b·h·w, c, f) is run by
  XNNPACK as unsqueeze -> Conv2d -> squeeze) stay out of the delegate and run in ExecuTorch's portable kernels.
"""
import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet

from .onnx import _Network

MAX_BATCH = 2  # classifier-free guidance runs the conditional and unconditional inputs as one batch of 2
AXES = {"batch": 0, "frames": 1, "height": 3, "width": 4}  # of sample (b, f, c_in, h, w)
BOUNDS_DOC = ("batch 1..2 (guidance), frames up to the model's window (longer videos are made window by window), "
              "height and width up to the model's size / patch: memory is planned for the upper bounds")


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
    # backed_size_oblivious: see the module docstring (minutes instead of tens of minutes, as in torch.onnx.export)
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):
        try:
            return torch.export.export(net, example, dynamic_shapes=shapes, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)
        except torch._dynamo.exc.UserError as e:  # a range the guards need (height >= 3): take the suggested fix
            refined = torch.export.dynamic_shapes.refine_dynamic_shapes_from_suggested_fixes(e.msg, shapes)
            return torch.export.export(net, example, dynamic_shapes=refined, strict=False,
                                       prefer_deferred_runtime_asserts_over_guards=True)


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
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dims = {"frames": torch.export.Dim("frames", min=1, max=frames),
            "height": torch.export.Dim("height", min=1, max=height),
            "width": torch.export.Dim("width", min=1, max=width)}
    shapes = {"sample": {0: batch, 1: dims["frames"], 3: dims["height"], 4: dims["width"]}, "c_noise": {0: batch}}
    # torch.export and ExecuTorch print progress and log warnings about packages lightvid does not use
    quiet = [logging.getLogger(name) for name in ("torch", "executorch", "torchao")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
        from executorch.exir.passes.remove_graph_asserts_pass import RemoveGraphAssertsPass

        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = _export(net, (sample, c_noise), shapes)
            bounds = _bounds(program)
            # the deferred size asserts (see the module docstring) hold Python sym ops the edge dialect refuses;
            # to_executorch would drop them anyway
            RemoveGraphAssertsPass()(program.graph_module)
            edge = to_edge_transform_and_lower(program, partitioner=[_partitioner()],
                                               transform_passes=[RemoveGraphAssertsPass()],
                                               compile_config=EdgeCompileConfig(_check_ir_validity=False))
            buffer = edge.to_executorch().buffer
    except Exception as e:  # noqa: BLE001 - torch.export / ExecuTorch raise many types; the user needs the first line
        raise LightvidError(f"ExecuTorch export failed: {type(e).__name__}: "
                            f"{(str(e).strip().splitlines() or [''])[0]}") from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    Path(path).write_bytes(buffer)
    return bounds
