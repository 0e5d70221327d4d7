"""Shared step of every transform: a new SpaceTimeUNet with a changed config and carried-over weights."""
import torch

from .config import UNetConfig
from .unet import SpaceTimeUNet


def rebuild(unet: SpaceTimeUNet, config: UNetConfig, state: dict[str, torch.Tensor],
            fresh: tuple[str, ...] = ()) -> SpaceTimeUNet:
    """SpaceTimeUNet(config) holding `state`. Parameters absent from `state` keep their own initialisation only
    when their name contains one of `fresh` (the modules a transform inserts); anything else is a bug.

    Without fresh modules the network is built on the meta device and takes `state`'s tensors as they are (no
    second copy of a large model; the result may share tensors with `unet`)."""
    checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in unet.modules())
    if not fresh:
        with torch.device("meta"):
            model = SpaceTimeUNet(config)
        model.load_state_dict(state, assign=True)
    else:
        reference = next(unet.parameters())
        model = SpaceTimeUNet(config).to(device=reference.device, dtype=reference.dtype)
        missing, unexpected = model.load_state_dict(state, strict=False)
        unplanned = [k for k in missing if not any(part in k for part in fresh)]
        if unplanned or unexpected:
            raise RuntimeError(f"rebuild: weights do not fit the new config (missing {unplanned[:3]}, "
                               f"unexpected {unexpected[:3]})")
    return model.set_gradient_checkpointing(checkpointing).train(unet.training)
