"""Residual blocks: a 2D (per-frame) ResBlock, a temporal ResBlock, and their learned mix.

Activations travel as (b·f, c, h, w): frames folded into the batch so every spatial op is a plain 2D op.
The temporal block rearranges them into a (b, c, f, h·w) image and convolves over f only.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


class ResBlock2D(nn.Module):
    """GroupNorm-SiLU-Conv3x3, + time embedding, GroupNorm-SiLU-Conv3x3, + (projected) input."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, eps: float, groups: int = 32):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (b·f, c, h, w); emb: (b, d) — one embedding per clip, projected once, not once per frame.
        h = self.conv1(F.silu(self.norm1(x)))
        t = self.time_emb_proj(F.silu(emb))  # (b, c_out)
        # each clip's row once per frame: (b·f, c_out). Not repeat_interleave(num_frames): its ONNX translation with
        # a dynamic frame count fixes the batch at the traced size; expand + reshape is the same copy and exports
        t = t[:, None].expand(-1, num_frames, -1).reshape(-1, t.shape[-1])
        h = h + t[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


def as_time_image(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(b·f, c, h, w) -> (b, c, f, h·w), contiguous."""
    return rearrange(x, "(b f) c h w -> b c f (h w)", f=num_frames).contiguous()


def from_time_image(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of `as_time_image`. Contiguous NCHW on purpose: a channels-last result would switch the next
    convolutions to channels-last, which re-lays out their weights on every call."""
    return rearrange(x, "b c f (h w) -> (b f) c h w", h=height, w=width).contiguous()


class TemporalResBlock(nn.Module):
    """The same block with (3, 1, 1) convolutions: mixes each pixel with its neighbours in time.

    GroupNorm here normalises over (channels/group, f, h, w) of the whole clip, not per frame.
    Weights keep SVD's Conv3d shape (c, c, 3, 1, 1) so checkpoints load unchanged; they are applied as a
    (3, 1) 2D convolution over the (b, c, f, h·w) view, which oneDNN runs far faster than Conv3d.
    """

    def __init__(self, ch: int, emb_dim: int, eps: float, groups: int = 32):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv1 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))
        self.time_emb_proj = nn.Linear(emb_dim, ch)
        self.norm2 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv2 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # x: (b, c, f, h·w); emb: (b, d)
        h = self._conv(self.conv1, F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self._conv(self.conv2, F.silu(self.norm2(h)))
        return x + h

    @staticmethod
    def _conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, conv.weight.squeeze(-1), conv.bias, padding=(1, 0))


class SpaceTimeResBlock(nn.Module):
    """ResBlock2D followed, when `temporal`, by a TemporalResBlock blended in with a learned factor.

    out = σ(m)·spatial + (1 − σ(m))·temporal(spatial), m a learned scalar (SVD's AlphaBlender,
    "learned_with_images" with every frame a video frame). Without `temporal` it is a plain ResBlock2D:
    that is what temporal-block pruning leaves behind. `gate` (a scalar set by the UNet's TemporalGates while
    pruning is finetuned) scales the temporal block's contribution: 1 = as trained, 0 = pruned.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, eps: float, temporal: bool = True, groups: int = 32):
        super().__init__()
        self.spatial = ResBlock2D(in_ch, out_ch, emb_dim, eps, groups)
        self.temporal = TemporalResBlock(out_ch, emb_dim, eps, groups) if temporal else None
        self.mix_factor = nn.Parameter(torch.tensor([0.5])) if temporal else None
        self.gate = None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.spatial(x, emb, num_frames)
        if self.temporal is None:
            return x
        video = as_time_image(x, num_frames)  # (b, c, f, h·w)
        mixed = torch.lerp(self.temporal(video, emb), video, torch.sigmoid(self.mix_factor).to(x.dtype))
        if self.gate is not None:
            mixed = video + self.gate * (mixed - video)
        return from_time_image(mixed, *x.shape[-2:])
