"""Exact FLOP and parameter counts of one UNet evaluation, computed on the meta device (no weights, no RAM).

`torch.utils.flop_counter` counts a multiply-add as 2 FLOPs. It is run on meta tensors on purpose: on real
CPU tensors scaled_dot_product_attention dispatches to a fused kernel the counter does not see.
"""
from dataclasses import dataclass, replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from lightvid.errors import LightvidError
from lightvid.models import (
    PRESETS,
    MarDini,
    MarDiniConfig,
    SpaceTimeUNet,
    UNetConfig,
    get_preset,
    read_config,
    unet_folder,
)
from lightvid.models.checkpoint import OWN_CLASS, read_json_object

# Pixel -> latent downscale of the autoencoder each preset is used with (SVD's VAE: 8).
PRESET_LATENT_SCALE = {"svd": 8, "svd-tiny": 8}


@dataclass
class FlopReport:
    flops: int  # one UNet evaluation, batch 1
    params: int
    frames: int
    latent_height: int
    latent_width: int

    @property
    def tflops(self) -> float:
        return self.flops / 1e12


def resolve_architecture(model: str) -> tuple[UNetConfig, int]:
    """A preset name or a model folder -> (UNet config, pixel-to-latent scale). Reads config files only."""
    if model in PRESETS:
        return get_preset(model), PRESET_LATENT_SCALE.get(model, 1)
    from lightvid.weights import EMBEDDED, model_folder
    folder = unet_folder(model_folder(model) if model in EMBEDDED else model)
    config = read_config(folder)
    vae_config = folder.parent / "vae" / "config.json"
    scale = 1
    if (folder / "pipeline.json").exists():  # a native model: p×p pixel patches folded into channels
        from lightvid.pipelines.native import read_settings
        scale = read_settings(folder)[0].patch
    elif vae_config.exists():
        levels = read_json_object(vae_config, "VAE config").get("block_out_channels", [0] * 4)
        if not isinstance(levels, list) or not 1 <= len(levels) <= 8:
            raise LightvidError(f"{vae_config}: 'block_out_channels' must be a list of 1 to 8 widths")
        scale = 2 ** (len(levels) - 1)
    elif read_json_object(folder / "config.json", "model config").get("_class_name") != OWN_CLASS:
        scale = 8  # a bare diffusers SVD unet/ folder: SVD's VAE
    return config, scale


def counted_pass(config: UNetConfig | MarDiniConfig, frames: int, latent_height: int,
                 latent_width: int) -> tuple[SpaceTimeUNet | MarDini, FlopCounterMode]:
    """One meta-device evaluation of the network on a (1, frames, c_in, h, w) sample, counted (a MarDini's: planner
    and generator, though sampling reuses one plan for every step of a clip)."""
    with torch.device("meta"):
        if isinstance(config, MarDiniConfig):
            model = MarDini(config)
            sample = torch.zeros(1, frames, config.in_channels, latent_height, latent_width)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(sample, torch.empty(1))
            return model, counter
        model = SpaceTimeUNet(config)
        sample = torch.empty(1, frames, config.in_channels, latent_height, latent_width)
        context = torch.empty(1, 1, config.cross_attention_dim) if config.cross_attention_dim else None
        ids = torch.empty(1, config.num_added_time_ids) if config.num_added_time_ids else None
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(sample, torch.empty(1), context, ids)
    return model, counter


def count_flops(config: UNetConfig, frames: int, latent_height: int, latent_width: int,
                fold_cross_attention: bool = False) -> FlopReport:
    """FLOPs of `SpaceTimeUNet(config)` on one (1, frames, c_in, h, w) sample."""
    if fold_cross_attention and config.cross_attention_dim:
        config = replace(config, cross_attention_folded=True)
    model, counter = counted_pass(config, frames, latent_height, latent_width)
    params = sum(p.numel() for p in model.parameters())
    return FlopReport(counter.get_total_flops(), params, frames, latent_height, latent_width)


def flops_for(model: str, frames: int, height: int, width: int, fold_cross_attention: bool = False) -> FlopReport:
    """FLOPs for a preset or folder at a pixel resolution (converted to the model's latent resolution)."""
    config, scale = resolve_architecture(model)
    if height % scale or width % scale:
        raise LightvidError(f"--height/--width must be multiples of {scale} for this model (got {height}x{width})")
    if min(frames, height, width) < 1:
        raise LightvidError("--frames, --height and --width must be positive")
    return count_flops(config, frames, height // scale, width // scale, fold_cross_attention)


__all__ = ["FlopReport", "count_flops", "counted_pass", "flops_for", "resolve_architecture"]
