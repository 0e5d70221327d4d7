"""Spatial and temporal down/up-sampling.

Temporal resamplers (Lumiere's STUNet, MobileVD's temporal multiscaling) are identity-initialised:
`TemporalDownsample` starts as "keep every 2nd frame" and `TemporalUpsample` as "repeat every frame",
so inserting them into a trained network perturbs it as little as the change of frame rate allows.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


class Downsample(nn.Module):
    """3×3 convolution with stride 2: (n, c, h, w) -> (n, c, ⌈h/2⌉, ⌈w/2⌉)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour resize to `size` (normally 2×), then a 3×3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class SpatialSubsample(nn.Module):
    """Extra 2× spatial subsampling (MobileVD's spatial multiscaling): a stride-2 3×3 convolution initialised to
    keep pixel (2y, 2x), so at insertion it is plain subsampling. (n, c, h, w) -> (n, c, ⌈h/2⌉, ⌈w/2⌉)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :, 1, 1].copy_(torch.eye(ch))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _identity_temporal_conv(ch: int, stride: int) -> nn.Conv1d:
    """Conv1d over time whose kernel is [0, I, 0]: output frame k = input frame stride·k."""
    conv = nn.Conv1d(ch, ch, 3, stride=stride, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 1].copy_(torch.eye(ch))
        conv.bias.zero_()
    return conv


class TemporalDownsample(nn.Module):
    """Strided temporal convolution: (b·f, c, h, w) -> (b·⌈f/2⌉, c, h, w)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = _identity_temporal_conv(ch, stride=2)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        seq = rearrange(x, "(b f) c h w -> (b h w) c f", f=num_frames)
        return rearrange(self.conv(seq), "(b h w) c f -> (b f) c h w", h=h, w=w)


class TemporalUpsample(nn.Module):
    """Frame duplication to `target_frames`, then a temporal convolution: (b·f, …) -> (b·target_frames, …)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = _identity_temporal_conv(ch, stride=1)

    def forward(self, x: torch.Tensor, num_frames: int, target_frames: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        seq = rearrange(x, "(b f) c h w -> (b h w) c f", f=num_frames)
        seq = seq.repeat_interleave(2, dim=-1)[..., :target_frames]
        return rearrange(self.conv(seq), "(b h w) c f -> (b f) c h w", h=h, w=w)
