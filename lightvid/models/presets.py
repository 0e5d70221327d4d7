"""Named UNet architectures, usable without weights (FLOP counts, shapes, fresh training)."""
from lightvid.errors import LightvidError

from .config import UNetConfig


def svd() -> UNetConfig:
    """Stable Video Diffusion (img2vid / -xt): 1,524,623,082 parameters."""
    return UNetConfig()


def svd_tiny() -> UNetConfig:
    """SVD's layout at toy width, for tests and quick experiments."""
    return UNetConfig(channels=(32, 64), layers_per_level=(1, 1), heads=(2, 4), transformer_depth=(1, 1),
                      attention=(True, False), temporal_attention=(True, False), temporal_conv=(True, True),
                      temporal_downsample=(False, False), cross_attention_dim=32, down_eps=(1e-6, 1e-5))


PRESETS = {"svd": svd, "svd-tiny": svd_tiny}


def get_preset(name: str) -> UNetConfig:
    if name not in PRESETS:
        raise LightvidError(f"unknown model preset '{name}'; accepted: {', '.join(PRESETS)}")
    return PRESETS[name]()
