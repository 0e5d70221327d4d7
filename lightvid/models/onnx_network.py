"""`OnnxNetwork`: a native model's denoising network exported to ONNX (`lightvid export`), run by onnxruntime.

An exported model folder is a normal model folder plus two files:
    network.onnx   the SpaceTimeUNet: sample (b, f, c_in, h, w) float32, c_noise (b,) float32
                   -> out (b, f, c_out, h, w) float32; batch, frames, height and width are dynamic axes
    export.json    how it was exported (format, quantization, versions), the sha256 of the model.safetensors it was
                   exported from, and the parity report against PyTorch (lightvid.export.parity)
Everything around the network stays in PyTorch/NumPy and runs as it does with `--runtime torch`: the conditioning
(the optical flow of a flow hint, the warps, patch folding), the preconditioning and the sampler.
"""
import hashlib
from pathlib import Path

import torch

from lightvid.errors import LightvidError

from .checkpoint import read_json_object
from .config import UNetConfig

ONNX_FILE = "network.onnx"
EXPORT_FILE = "export.json"
WEIGHTS_FILE = "model.safetensors"
INPUTS = ("sample", "c_noise")
OUTPUT = "out"


def weights_digest(folder: Path) -> str:
    """sha256 of the folder's model.safetensors: export.json records it, so an export never runs beside other
    weights than the ones it was made from."""
    digest = hashlib.sha256()
    with open(folder / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export_report(folder: Path, network_file: str, runtime: str, fmt: str) -> dict:
    """export.json of the export of `network_file` in `folder`, checked: both files are there and the export was
    made from the folder's own weights. runtime/fmt name them in the error ("ONNX", "onnx")."""
    if not ((folder / network_file).is_file() and (folder / EXPORT_FILE).is_file()):
        raise LightvidError(f"{folder}: holds no {runtime} export ({network_file} + {EXPORT_FILE}); make one with "
                            f"`lightvid export MODEL --format {fmt} -o DIR`, then use --model DIR")
    report = read_json_object(folder / EXPORT_FILE, "export report")
    if report.get("weights_sha256") != weights_digest(folder):
        raise LightvidError(f"{folder / network_file} was exported from other weights than {folder / WEIGHTS_FILE} "
                            f"(export.json's weights_sha256 differs); export the model again")
    return report


class OnnxNetwork:
    """Called like SpaceTimeUNet: `net(sample, c_noise) -> out`, torch tensors in and out (float32)."""

    dtype = torch.float32

    def __init__(self, folder, config: UNetConfig, threads: int | None = None):
        folder = Path(folder)
        self.report = read_export_report(folder, ONNX_FILE, "ONNX", "onnx")
        import onnxruntime as ort

        options = ort.SessionOptions()
        # as many threads as torch uses (OMP_NUM_THREADS, torch.set_num_threads): the two runtimes compare fairly
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's business
        try:
            self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a damaged or foreign file
            raise LightvidError(f"{folder / ONNX_FILE}: onnxruntime cannot load it ({str(e).splitlines()[0]})") \
                from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if tuple(inputs) != INPUTS or inputs["sample"][2] != config.in_channels:
            raise LightvidError(f"{folder / ONNX_FILE}: expected inputs sample (b, f, {config.in_channels}, h, w) "
                                f"and c_noise (b,), got {inputs}")
        self.config = config

    def __call__(self, sample: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """sample (b, f, c_in, h, w), c_noise (b,) or one value -> (b, f, c_out, h, w) float32."""
        b = sample.shape[0]
        feed = {"sample": sample.detach().float().contiguous().numpy(),
                "c_noise": c_noise.detach().float().reshape(-1).expand(b).contiguous().numpy()}
        return torch.from_numpy(self.session.run([OUTPUT], feed)[0])
