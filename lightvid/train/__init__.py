"""Training native lightvid models: masked-frame EDM diffusion under accelerate."""
from .config import TrainConfig, config_from_dict, load_config
from .loop import train

__all__ = ["TrainConfig", "config_from_dict", "load_config", "train"]
