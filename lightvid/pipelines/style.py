"""Style by weights (Lumiere §4.2, after Park et al.'s interpolation of finetuned weights): sample with
W = alpha·W_style + (1 - alpha)·W_base, two checkpoints of one architecture, blended parameter by parameter."""
import copy
from dataclasses import asdict

import torch

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet

from .native import NativePipeline

# what must agree between the two models besides the network's config: how they read inputs and write outputs
SAME_SETTINGS = ("data_channels", "patch", "conditioning", "prediction", "sigma_data")


def blend_weights(base: NativePipeline, style: NativePipeline, alpha: float) -> NativePipeline:
    """`base` with every weight W = torch.lerp(W_base, W_style, alpha): exactly base's at alpha 0 and exactly
    style's at 1 (lerp computes base + a·(style - base) below 0.5 and style - (1 - a)·(style - base) from there),
    sampled with base's settings (window, size, steps, sampler)."""
    if not 0 <= alpha <= 1:
        raise LightvidError(f"--alpha must be in [0, 1], got {alpha}")
    if not (isinstance(base.unet, SpaceTimeUNet) and isinstance(style.unet, SpaceTimeUNet)):
        raise LightvidError("style weights blend PyTorch networks: load both models with the torch runtime")
    if base.unet.config != style.unet.config:
        differ = [k for k, v in asdict(base.unet.config).items() if getattr(style.unet.config, k) != v]
        raise LightvidError(f"the style model's network differs from the model's ({', '.join(differ)} in "
                            "config.json): weights blend only between two checkpoints of one architecture")
    differ = [k for k in SAME_SETTINGS if getattr(base.settings, k) != getattr(style.settings, k)]
    if differ:
        raise LightvidError(f"the style model reads or writes frames another way ({', '.join(differ)} in "
                            "pipeline.json): weights blend only between two checkpoints of one model")
    unet = copy.deepcopy(base.unet)
    style_weights = style.unet.state_dict()
    with torch.no_grad():
        for name, weight in unet.state_dict().items():  # tensors sharing the module's storage: updated in place
            if weight.is_floating_point():
                weight.copy_(torch.lerp(weight, style_weights[name].to(weight.dtype), alpha))
    return NativePipeline(unet, base.settings, base.facts)
