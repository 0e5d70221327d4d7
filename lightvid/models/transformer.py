"""Transformer parts shared by MarDini's planner and generator: RMSNorm, rotary position embeddings over any axes
(time, height, width), attention with QK-norm, identity attention, SwiGLU.

Positions are in folded-pixel units (a token's centre on the grid of p×p-patch pixels), so planner tokens (coarse)
and generator tokens (fine) of the same place get the same rotary phase: cross-attention between the two grids
sees their true relative offset.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

ROPE_BASE = 100.0  # positions span tens of units (frames, folded pixels): LLM's 10,000 would leave most pairs static


def rope_angles(positions: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
    """positions (n, a): each token's coordinate on a axes; widths: the head channels given to each axis (even,
    summing to the head width). Returns (n, head_width / 2) angles: axis i rotates widths[i] / 2 channel pairs at
    frequencies ROPE_BASE^(-2j / widths[i])."""
    parts = []
    for axis, width in enumerate(widths):
        freqs = ROPE_BASE ** (-torch.arange(0, width, 2, dtype=torch.float32, device=positions.device) / width)
        parts.append(positions[:, axis:axis + 1].float() * freqs)
    return torch.cat(parts, dim=-1)


def axis_widths(head_width: int, axes: int) -> tuple[int, ...]:
    """head_width (even) split over `axes` axes in even parts, the first axes taking any remainder."""
    pairs = head_width // 2
    return tuple(2 * (pairs // axes + (i < pairs % axes)) for i in range(axes))


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x (..., n, d), angles (n, d/2): each channel pair (j, j + d/2) rotated by its angle (the "rotate half"
    layout), in float32."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


def identity_attention_mask(reference: torch.Tensor) -> torch.Tensor:
    """reference (B, N) bool -> allowed (B, 1, N, N) bool, query by key: a reference token attends only to itself,
    every other token to all tokens (MarDini's identity attention: clean reference tokens stay what they are, the
    masked ones gather from everything). `Attention` computes the same without building it: attention to one key
    is that key's value, so a reference token's output is its own value, and the other tokens' rows are unmasked
    attention (tests compare the two)."""
    n = reference.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=reference.device)
    return (~reference)[:, None, :, None] | eye


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (Llama), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with QK-norm (RMSNorm of each head's queries and keys) and rotary positions.

    x (B, N, dim) attends to `context` (B, M, context_dim) or to itself; q_angles (N, w/2) and k_angles (M, w/2)
    rotate queries and keys (None: no rotation); reference (B, N) bool or None: identity attention in
    self-attention, reference tokens attend only to themselves (`identity_attention_mask`)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads, self.head_width = heads, dim // heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_width), RMSNorm(self.head_width)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, q_angles: torch.Tensor | None = None,
                k_angles: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> torch.Tensor:
        if reference is not None and context is not None:
            raise ValueError("identity attention applies to self-attention only")
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b m (two h d) -> two b h m d", two=2, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if q_angles is not None:
            q, k = apply_rope(q, q_angles), apply_rope(k, k_angles)
        v = v.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, h, n, d)
        if reference is not None:  # a reference token's only key is itself: its output is its value
            out = torch.where(reference[:, None, :, None], v, out)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class SwiGLU(nn.Module):
    """Llama's feed-forward: W2 (SiLU(W1 x) ⊙ W3 x), hidden width 2/3 of mlp_ratio × dim (same parameters as a
    plain MLP of that ratio)."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = max(8, int(2 * mlp_ratio * dim / 3) // 8 * 8)
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * value)
