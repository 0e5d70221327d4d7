"""Units for the tests' numeric tolerances.

Two float32 computations of the same value differ by rounding, and how much depends on the kernels: AVX2, AVX-512,
AMX and Arm builds of oneDNN/ATen sum products in different orders and block sizes. Relative to the magnitude of
what is compared, that difference is a small multiple of the format's epsilon on any CPU, while an absolute bound
near epsilon only holds for values of one size on one CPU. So bounds on rounding are written here as
`relative_error(got, expected) <= k * EPS32`, k a small multiple of what was measured, and the comment at each
says what the rounding comes from.
"""
import torch

EPS32 = torch.finfo(torch.float32).eps  # 2^-23 ≈ 1.19e-7: float32's spacing at 1 (24-bit significand)
EPS64 = torch.finfo(torch.float64).eps  # 2^-52 ≈ 2.2e-16
BF16_EPS = torch.finfo(torch.bfloat16).eps  # 2^-7 = 0.0078: bf16 keeps 8 significant bits


def relative_error(got, expected) -> float:
    """max |got - expected| / max |expected|: the error in units of the largest value compared (0 if both are 0)."""
    got, expected = torch.as_tensor(got).double(), torch.as_tensor(expected).double()
    error, scale = (got - expected).abs().max().item(), expected.abs().max().item()
    return error / scale if scale else (0.0 if error == 0 else float("inf"))
