"""Networks: the SpaceTimeUNet, its config, presets and checkpoint loading."""
from .checkpoint import diffusers_to_lightvid_key, load_unet
from .config import UNetConfig, config_from_diffusers
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
]
