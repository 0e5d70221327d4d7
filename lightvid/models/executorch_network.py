"""`ExecutorchNetwork`: a native model's denoising network exported to ExecuTorch (`network.pte`), run by the
ExecuTorch runtime (XNNPACK where lowered, portable kernels elsewhere). Called like `OnnxNetwork`.

The folder holds, beside the model's own files:
    network.pte   the SpaceTimeUNet: sample (1, f, c_in, h, w) float32, c_noise (1,) float32 -> (1, f, c_out, h, w)
                  float32 (lightvid.export.executorch); a batch runs as one call per clip
    export.json   as for ONNX, with "bounds": {"batch" | "frames" | "height" | "width": [min, max]}, the sizes the
                  program was exported for: ExecuTorch plans memory for the maxima and refuses larger inputs
executorch is imported only here, when such a network is loaded, and by lightvid.export.executorch.
"""
import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from lightvid.errors import LightvidError

from .config import UNetConfig
from .onnx_network import EXPORT_FILE, read_export_report

PTE_FILE = "network.pte"
SIZE_AXES = ("frames", "height", "width")  # of sample (b, f, c_in, h, w): dims 1, 3, 4


@contextlib.contextmanager
def quiet_executorch() -> Iterator[None]:
    """Within the block: ExecuTorch's import and loading say nothing. Importing it logs warnings about torchao's
    CUDA kernels and torch's pytree (Python logging) and warns that its Python API is experimental, and the
    runtime's C++ writes cpuinfo probes straight to file descriptor 2 when it loads a program: none of it is the
    user's business, and its errors become LightvidErrors."""
    loggers = [logging.getLogger(name) for name in ("torch", "torchao", "executorch")]
    levels = [q.level for q in loggers]
    for q in loggers:
        q.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        # the runtime's own log lines go through Python's sys.stderr (pybindings), its cpuinfo probes to fd 2
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        for q, level in zip(loggers, levels):
            q.setLevel(level)


def _bounds(report: dict, path: Path) -> dict[str, tuple[int, int]]:
    raw = report.get("bounds")
    try:
        bounds = {axis: (int(raw[axis][0]), int(raw[axis][1])) for axis in SIZE_AXES}
    except (TypeError, KeyError, IndexError, ValueError):
        raise LightvidError(f"{path}: export.json has no valid \"bounds\" (frames, height, width: [min, max]); "
                            f"export the model again") from None
    return bounds


def _match_torch_threads() -> None:
    """ExecuTorch's thread pool as large as torch's (OMP_NUM_THREADS, torch.set_num_threads), so that the runtimes
    compare fairly; the pool is global and is resized only while no program runs (pybindings' own API)."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != torch.get_num_threads():
        portable_lib._unsafe_reset_threadpool(torch.get_num_threads())


class ExecutorchNetwork:
    """Called like SpaceTimeUNet: `net(sample, c_noise) -> out`, torch tensors in and out (float32)."""

    dtype = torch.float32

    def __init__(self, folder, config: UNetConfig):
        folder = Path(folder)
        path = folder / PTE_FILE
        self.report = read_export_report(folder, PTE_FILE, "ExecuTorch", "executorch")
        self.bounds = _bounds(self.report, folder / EXPORT_FILE)
        with quiet_executorch():
            try:
                from executorch.runtime import Runtime
            except ImportError:
                raise LightvidError("--runtime executorch needs ExecuTorch: pip install 'lightvid[executorch]'") \
                    from None
            try:
                # Program and Method stay referenced by self: the method's memory belongs to the program, and a
                # temporary Program freed under a live Method crashes the process
                self.program = Runtime.get().load_program(path)
                self.method = self.program.load_method("forward")
                _match_torch_threads()
            except Exception as e:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError for a damaged file
                raise LightvidError(f"{path}: ExecuTorch cannot load it ({(str(e).splitlines() or [''])[0]})") \
                    from None
        self.path, self.config = path, config

    def check(self, sample: torch.Tensor) -> None:
        """A one-line error for a sample the program was not exported for (the runtime only says 0x10)."""
        if sample.dim() != 5 or sample.shape[2] != self.config.in_channels:
            raise LightvidError(f"{self.path}: expects sample (b, f, {self.config.in_channels}, h, w), got "
                                f"{tuple(sample.shape)}")
        sizes = dict(zip(SIZE_AXES, (sample.shape[1], sample.shape[3], sample.shape[4])))
        if any(not low <= sizes[axis] <= high for axis, (low, high) in self.bounds.items()):
            f, h, w = ("{}..{}".format(*self.bounds[axis]) for axis in SIZE_AXES)
            raise LightvidError(f"{self.path}: this call has {sizes['frames']} frames of {sizes['height']}x"
                                f"{sizes['width']} network cells (pixels / the model's patch); the export runs {f} "
                                f"frames of {h} x {w} cells, the sizes ExecuTorch planned its memory for; use "
                                "--runtime torch or onnx, or fewer frames / a smaller size")

    def __call__(self, sample: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """sample (b, f, c_in, h, w), c_noise (b,) or one value -> (b, f, c_out, h, w) float32."""
        self.check(sample)
        b = sample.shape[0]
        sample = sample.detach().float().contiguous()
        c_noise = c_noise.detach().float().reshape(-1).expand(b).contiguous()
        outs = []
        for i in range(b):  # the program takes batch 1 (lightvid.export.executorch: BOUNDS_DOC)
            # not quieted (quiet_executorch swaps process-wide stderr, and the web app samples in threads): check()
            # refused every shape the program was not made for, so a failure here is unforeseen and its log is kept
            try:
                out = self.method.execute([sample[i:i + 1].contiguous(), c_noise[i:i + 1].contiguous()])[0]
            except RuntimeError as e:
                raise LightvidError(f"{self.path}: ExecuTorch could not run sample {tuple(sample.shape)} "
                                    f"({(str(e).splitlines() or [''])[0]}); the export's bounds: "
                                    f"{self.bounds}") from None
            outs.append(out.clone())  # the output lives in the program's planned memory: the next call reuses it
        return torch.cat(outs)
