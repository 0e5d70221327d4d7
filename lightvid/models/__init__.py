"""Networks: the SpaceTimeUNet and MarDini (planner + generator), their configs, presets, checkpoint loading and
the dtype `--bf16` gets."""
from .checkpoint import build_network, diffusers_to_lightvid_key, load_network, read_config, unet_folder
from .config import UNetConfig, config_from_diffusers
from .mardini import MarDini
from .mardini_config import MarDiniConfig
from .precision import native_bf16, network_dtype
from .presets import PRESETS, get_preset
from .unet import SpaceTimeUNet

__all__ = [
           "PRESETS",
           "MarDini",
           "MarDiniConfig",
           "SpaceTimeUNet",
           "UNetConfig",
           "build_network",
           "config_from_diffusers",
           "diffusers_to_lightvid_key",
           "get_preset",
           "load_network",
           "native_bf16",
           "network_dtype",
           "read_config",
           "unet_folder",
]
