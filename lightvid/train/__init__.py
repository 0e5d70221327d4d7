"""Training native lightvid models: masked-frame EDM diffusion under accelerate."""
from .config import DistillConfig, TrainConfig, config_from_dict, finetune_config, load_config
from .loop import train

__all__ = ["DistillConfig", "TrainConfig", "config_from_dict", "finetune_config", "load_config", "train"]
