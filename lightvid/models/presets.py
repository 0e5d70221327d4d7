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


def stunet(channels: tuple[int, ...], heads: tuple[int, ...], in_channels: int, out_channels: int,
           coarse_depth: int = 2, spatial_attention_from: int = 1) -> UNetConfig:
    """Lumiere's Space-Time UNet (STUNet) at the given widths: time is halved beside every spatial downsampling
    (resamplers initialised to keep every 2nd frame / repeat every frame: lightvid.models.resample), factorised
    space-time convolutions (a temporal convolution after each spatial ResBlock) at every level but the coarsest,
    and temporal attention only at the coarsest level and the middle, where the clip is shortest, its transformer
    stacked `coarse_depth` deep. Spatial attention from level `spatial_attention_from` down. No cross-attention:
    native models are conditioned through their input channels."""
    n = len(channels)
    return UNetConfig(in_channels=in_channels, out_channels=out_channels, channels=channels, layers_per_level=(1,) * n,
                      heads=heads, transformer_depth=(1,) * (n - 1) + (coarse_depth,),
                      attention=tuple(i >= spatial_attention_from for i in range(n)),
                      temporal_attention=(False,) * (n - 1) + (True,), temporal_conv=(True,) * (n - 1) + (False,),
                      temporal_downsample=(True,) * (n - 1) + (False,), mid_attention=True,
                      mid_temporal_attention=True, mid_temporal_conv=False, cross_attention_dim=None,
                      num_added_time_ids=0, down_eps=(1e-6,) * n, mid_eps=1e-6)


def stunet_mnist() -> UNetConfig:
    """STUNet for Moving MNIST in `mnist`'s pixel layout (1 channel, 4x4 patches, no hint: 48 channels in, 16 out):
    10,026,330 parameters, within 4% of `mnist`'s 9,642,690 (configs/stunet_mnist.yaml trains it)."""
    return stunet(channels=(64, 64, 128), heads=(2, 2, 4), in_channels=48, out_channels=16)


def stunet_tiny() -> UNetConfig:
    """STUNet at toy width, three levels (time halved twice), for tests."""
    return stunet(channels=(32, 32, 64), heads=(1, 1, 2), in_channels=8, out_channels=4)


PRESETS = {"svd": svd, "svd-tiny": svd_tiny, "stunet-mnist": stunet_mnist, "stunet-tiny": stunet_tiny}


def get_preset(name: str) -> UNetConfig:
    if name not in PRESETS:
        raise LightvidError(f"unknown model preset '{name}'; accepted: {', '.join(PRESETS)}")
    return PRESETS[name]()
