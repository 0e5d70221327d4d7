"""Networks: the SpaceTimeUNet, its config, presets, checkpoint loading and the dtype `--bf16` gets."""
from .checkpoint import diffusers_to_lightvid_key, load_unet, read_config, unet_folder
from .config import UNetConfig, config_from_diffusers
from .precision import native_bf16, network_dtype
from .presets import PRESETS, get_preset
from .unet import SpaceTimeUNet

__all__ = [
           "PRESETS",
           "SpaceTimeUNet",
           "UNetConfig",
           "config_from_diffusers",
           "diffusers_to_lightvid_key",
           "get_preset",
           "load_unet",
           "native_bf16",
           "network_dtype",
           "read_config",
           "unet_folder",
]
