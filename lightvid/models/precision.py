"""Whether bfloat16 arithmetic is native here, and the dtype that `--bf16` (or training's `bf16: true`) gets.

Asking for bf16 is only worth it where the hardware computes in bf16: CPUs with AVX-512 BF16 or AMX (x86), or the
BF16 extension (Arm), and CUDA GPUs that support it. Elsewhere PyTorch emulates bf16 and a bf16 network runs many
times slower than float32, so `network_dtype` falls back to float32 there and says so once, on stderr.

Detection reads the CPU's features through `torch.cpu.get_capabilities()` (cpuinfo), or /proc/cpuinfo's flags on an
older torch. Set LIGHTVID_NATIVE_BF16=1 to treat bf16 as native (run bf16 whatever the hardware) or
LIGHTVID_NATIVE_BF16=0 to treat it as emulated (always fall back to float32); tests use it to cover both branches.
"""
import functools
import os
import sys

import torch

from lightvid.errors import LightvidError

ENV = "LIGHTVID_NATIVE_BF16"
X86_BF16 = ("avx512_bf16", "amx_bf16")  # bf16 dot products / tile multiplies: what oneDNN's bf16 kernels use
ARM_BF16 = ("bf16", "sve_bf16")  # FEAT_BF16 (BFDOT, BFMMLA)

_noticed = False  # the fallback notice is printed once per process


def _cpu_features() -> tuple[str, set[str]]:
    """(architecture, the names of the CPU features present), from torch's cpuinfo or /proc/cpuinfo."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        caps = capabilities()
        return str(caps.get("architecture", "")), {k for k, v in caps.items() if v is True}
    import platform
    try:
        lines = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return platform.machine(), set()
    flags = next((line.split(":", 1)[1].split() for line in lines if line.split(":")[0].strip() in
                  ("flags", "Features")), [])
    return platform.machine(), set(flags)


@functools.cache
def _detect(device_type: str) -> tuple[bool, str]:
    if device_type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        return native, "this GPU has no native bfloat16"
    if device_type != "cpu":
        return True, ""  # other accelerators: the user's choice is trusted
    arch, features = _cpu_features()
    wanted = ARM_BF16 if arch.lower() in ("arm64", "aarch64") else X86_BF16
    if features & set(wanted):
        return True, ""
    return False, (f"this CPU has no native bfloat16 ({torch.backends.cpu.get_cpu_capability()}, no "
                   f"{'/'.join(wanted)})")


def native_bf16(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """(whether `device` computes in bfloat16 natively, why not when it does not). LIGHTVID_NATIVE_BF16 overrides."""
    forced = os.environ.get(ENV, "").strip()
    if forced == "1":
        return True, ""
    if forced == "0":
        return False, f"bfloat16 taken as not native: {ENV}=0"
    if forced:
        raise LightvidError(f"{ENV}={forced!r}: expected 1 (bf16 is native) or 0 (it is not), or unset to detect")
    return _detect(torch.device(device).type)


def network_dtype(bf16: bool, device: str | torch.device = "cpu", option: str = "--bf16",
                  notice: bool = True) -> torch.dtype:
    """The network's dtype: bfloat16 when `bf16` is asked for and native on `device`, else float32 (the exact
    reference). Asking for bf16 where it is not native prints one line on stderr, once per process (notice=False:
    not at all, e.g. on every rank but the main one): emulated bf16 is many times slower than float32, never a
    speed-up."""
    global _noticed
    if not bf16:
        return torch.float32
    native, why = native_bf16(device)
    if native:
        return torch.bfloat16
    if notice and not _noticed:
        _noticed = True
        print(f"lightvid: {option} ignored: {why}; running float32", file=sys.stderr)
    return torch.float32
