"""MarDini's planner: a masked-autoregressive-style transformer over the whole clip at low resolution.

Every frame is cut into tokens of planner_patch × planner_patch folded pixels. A reference token (all its pixels
given) embeds its conditioning channels; every other token is the learned [MASK] token. Llama-style blocks (RMSNorm,
QK-norm, SwiGLU) with space-time rotary positions attend over all tokens of all frames at once, reference tokens
only to themselves (identity attention). The output, one token grid per frame, is the planning signal the generator
renders from: what happens where, decided once per clip.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .mardini_config import MarDiniConfig
from .transformer import Attention, RMSNorm, SwiGLU, axis_widths, rope_angles


def grid_positions(frames: int, height: int, width: int, step: float, device=None) -> torch.Tensor:
    """(frames·height·width, 3) (t, y, x) of a token grid in frame order, y and x the token centres in folded
    pixels (a token spans `step` of them)."""
    t, y, x = torch.meshgrid(torch.arange(frames, device=device), torch.arange(height, device=device),
                             torch.arange(width, device=device), indexing="ij")
    return torch.stack([t.float(), (y.float() + 0.5) * step, (x.float() + 0.5) * step], dim=-1).reshape(-1, 3)


def reference_tokens(mask: torch.Tensor, size: int) -> torch.Tensor:
    """mask (b, f, h, w) in {0, 1} -> (b, f, h/size, w/size) bool: True where every pixel of the token is given."""
    b = mask.shape[0]
    pooled = -F.max_pool2d(-rearrange(mask.float(), "b f h w -> (b f) 1 h w"), size)  # min over each token
    return rearrange(pooled > 0.5, "(b f) 1 h w -> b f h w", b=b)


class PlannerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(dim), Attention(dim, heads)
        self.mlp_norm, self.mlp = RMSNorm(dim), SwiGLU(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, angles: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), q_angles=angles, k_angles=angles, reference=reference)
        return x + self.mlp(self.mlp_norm(x))


class Planner(nn.Module):
    """`planner(cond, reference) -> plan`: cond (b, f, c_cond, h, w) the folded conditioning channels, reference
    (b, f, h/k, w/k) bool (`reference_tokens`), k = planner_patch; plan (b, f, (h/k)·(w/k), planner_dim)."""

    def __init__(self, cfg: MarDiniConfig):
        super().__init__()
        self.cfg, dim, k = cfg, cfg.planner_dim, cfg.planner_patch
        self.embed = nn.Conv2d(cfg.in_channels - cfg.noisy_channels, dim, k, stride=k)
        self.mask_token = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(PlannerBlock(dim, cfg.planner_heads, cfg.mlp_ratio)
                                    for _ in range(cfg.planner_depth))
        self.norm = RMSNorm(dim)
        self.rope_widths = axis_widths(dim // cfg.planner_heads, 3)  # (t, y, x)
        self.gradient_checkpointing = False

    def forward(self, cond: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        b, f = cond.shape[:2]
        x = self.embed(rearrange(cond, "b f c h w -> (b f) c h w"))  # (b·f, dim, h/k, w/k)
        gh, gw = x.shape[-2:]
        x = rearrange(x, "(b f) d h w -> b (f h w) d", b=b)
        ref = rearrange(reference, "b f h w -> b (f h w)")
        x = torch.where(ref[..., None], x, self.mask_token.to(x.dtype))
        angles = rope_angles(grid_positions(f, gh, gw, self.cfg.planner_patch, x.device), self.rope_widths)
        identity = ref if self.cfg.identity_attention else None
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, angles, identity, use_reentrant=False)
            else:
                x = block(x, angles, identity)
        return rearrange(self.norm(x), "b (f n) d -> b f n d", f=f)
