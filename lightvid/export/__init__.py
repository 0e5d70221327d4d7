"""Export: a native model's denoising network to ONNX or ExecuTorch, with a parity report against PyTorch, and int8
quantization for onnxruntime (`lightvid export`; the exported folder runs with `--runtime onnx|executorch`)."""
from .folder import FORMATS, QUANTIZATIONS, check_export_options, export_model
from .parity import PSNR_BAR, parity_report

__all__ = ["FORMATS", "PSNR_BAR", "QUANTIZATIONS", "check_export_options", "export_model", "parity_report"]
