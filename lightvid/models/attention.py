"""Attention layers: spatial and temporal transformer blocks and the space-time transformer that mixes them.

Token layouts (c = channels of the level):
  spatial  tokens (b·f, h·w, c): every frame attends over its own pixels;
  temporal tokens (b·h·w, f, c): every pixel attends over its own history and future.
Cross-attention context is kept per clip, (b, n, d_ctx), and shared by every frame / pixel group of that
clip: keys and values are projected once per clip, not once per frame or per pixel.
"""
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from lightvid.errors import LightvidError

from .embeddings import MLPEmbedding, sinusoidal_embedding


@dataclass(frozen=True)
class AttentionLayout:
    """How a level's attention layers are shaped: q/k/v channels per head (dim/heads unless channel funnels were
    merged), unmerged funnel width per head (while funnels are finetuned), folded single-token cross-attention."""
    head_width: int | None = None
    funnel_width: int | None = None
    folded_context: bool = False


class Attention(nn.Module):
    """Multi-head attention, q/k/v without bias, output projection with bias (SVD's layout).

    With a `Funnel` (lightvid.compress.funnels) each head's q, k and v get a (funnel_width × head_width) adaptor
    and the output projection a (head_width × funnel_width) one. They are applied as weight products, W' = F·W,
    so merging them into the weights afterwards gives the same function.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None,
                 layout: AttentionLayout = AttentionLayout()):
        super().__init__()
        self.heads = heads
        width = layout.head_width or dim // heads
        self.to_q = nn.Linear(dim, heads * width, bias=False)
        self.to_k = nn.Linear(context_dim or dim, heads * width, bias=False)
        self.to_v = nn.Linear(context_dim or dim, heads * width, bias=False)
        self.to_out = nn.Linear(heads * width, dim)
        self.funnel = Funnel(heads, width, layout.funnel_width) if layout.funnel_width else None
        # Self-attention only: (k, v) (B, n, inner) -> (B, m, inner), the keys and values the queries see (Fairy's
        # anchor attention, lightvid.edit.anchor, extends them with anchor frames'); None = the tokens' own.
        self.extend_keys = None

    def projections(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weights in use, (W_q, W_k, W_v, W_out), funnels multiplied in."""
        weights = (self.to_q.weight, self.to_k.weight, self.to_v.weight, self.to_out.weight)
        return weights if self.funnel is None else self.funnel.narrow(*weights)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, n, dim). context: None (self-attention) or (b, m, d_ctx) with B = b·groups, where the
        # `groups` query rows of clip i (frames or pixels, batch-major) share context row i.
        wq, wk, wv, wo = self.projections()
        if context is None:  # one (dim -> 3·inner) matmul instead of three: same sums, better GEMM efficiency
            q, k, v = F.linear(x, torch.cat([wq, wk, wv])).split([wq.shape[0], wk.shape[0], wv.shape[0]], dim=-1)
            out = self._sdpa(q, *(self.extend_keys(k, v) if self.extend_keys else (k, v)))
            return F.linear(out, wo, self.to_out.bias)
        groups = x.shape[0] // context.shape[0]
        k = F.linear(context, wk).repeat_interleave(groups, dim=0)
        v = F.linear(context, wv).repeat_interleave(groups, dim=0)
        return F.linear(self._sdpa(F.linear(x, wq), k, v), wo, self.to_out.bias)

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        return rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")


class Funnel(nn.Module):
    """Channel funnel adaptors of one attention layer (MobileVD): per head h,
    q_h = F^q_h W^q_h x, k_h = F^k_h W^k_h c, v_h = F^v_h W^v_h c and out = Σ_h W^out_h G_h o_h, with
    F: (width, head_width) and G: (head_width, width). Initialised by lightvid.compress.funnels."""

    def __init__(self, heads: int, head_width: int, width: int):
        super().__init__()
        self.heads, self.head_width, self.width = heads, head_width, width
        self.q, self.k, self.v = (nn.Parameter(torch.empty(heads, width, head_width)) for _ in range(3))
        self.out = nn.Parameter(torch.empty(heads, head_width, width))
        with torch.no_grad():  # "keep each head's first `width` channels"; lightvid.compress.funnels sets real inits
            keep = torch.eye(head_width)[:width]
            for p in (self.q, self.k, self.v):
                p.copy_(keep.expand(heads, -1, -1))
            self.out.copy_(keep.T.expand(heads, -1, -1))

    def narrow(self, wq, wk, wv, wo):
        """Funnelled weights: q/k/v (heads·head_width, d_in) -> (heads·width, d_in),
        out (dim, heads·head_width) -> (dim, heads·width)."""
        def rows(f, w):
            return torch.einsum("hkw,hwd->hkd", f, w.reshape(self.heads, self.head_width, -1)).flatten(0, 1)
        out = torch.einsum("ohw,hwk->ohk", wo.reshape(wo.shape[0], self.heads, self.head_width), self.out)
        return rows(self.q, wq), rows(self.k, wk), rows(self.v, wv), out.flatten(1)


class FoldedCrossAttention(nn.Module):
    """Cross-attention to ONE context token, folded (MobileVD's optimised cross-attention): a softmax over a single
    key is exactly 1, so every query receives W_out·W_v·ctx + b_out, one (context_dim -> dim) linear layer
    evaluated once per clip instead of q/k/v projections and attention over every frame and pixel."""

    def __init__(self, dim: int, context_dim: int):
        super().__init__()
        self.proj = nn.Linear(context_dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if context.shape[1] != 1:
            raise LightvidError(f"this model's cross-attention is folded for one context token, got {context.shape[1]}")
        return self.proj(context).repeat_interleave(x.shape[0] // context.shape[0], dim=0).expand_as(x)


class FeedForward(nn.Module):
    """GEGLU feed-forward: dim -> 2·4·dim (value, gate) -> value·gelu(gate) -> out_dim."""

    def __init__(self, dim: int, out_dim: int | None = None, mult: int = 4):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        hidden = F.gelu(gate)
        # In inference, multiply in place: saves allocating and touching one (n, 4·dim) tensor.
        hidden = hidden * value if torch.is_grad_enabled() else hidden.mul_(value)
        return self.proj_out(hidden)


class SpatialTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention (if a context dim is given), feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int | None, layout: AttentionLayout = AttentionLayout()):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads, None, layout)
        self.norm2 = nn.LayerNorm(dim) if context_dim and not layout.folded_context else None  # folded: unused
        if not context_dim:
            self.attn2 = None
        elif layout.folded_context:
            self.attn2 = FoldedCrossAttention(dim, context_dim)
        else:
            self.attn2 = Attention(dim, heads, context_dim, layout)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        if self.attn2 is not None:
            x = x + self.attn2(x if self.norm2 is None else self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class TemporalTransformerBlock(SpatialTransformerBlock):
    """The spatial block on temporal tokens, preceded by a residual feed-forward (SVD's `ff_in`)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None, layout: AttentionLayout = AttentionLayout()):
        super().__init__(dim, heads, context_dim, layout)
        self.norm_in, self.ff_in = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = x + self.ff_in(self.norm_in(x))
        return super().forward(x, context)


class SpaceTimeTransformer(nn.Module):
    """GroupNorm -> proj_in -> [spatial block, then (optionally) a temporal block mixed in] × depth -> proj_out,
    added to the input.

    Temporal blocks see the spatial output plus a learned frame-position embedding; their result is blended
    with the spatial one by σ(m) (SVD's TransformerSpatioTemporalModel). Without `temporal` this is a plain
    image transformer — what temporal-block pruning leaves behind. `gate` (a scalar set by the UNet's
    TemporalGates while pruning is finetuned) scales the temporal blocks' contribution: 1 = as trained, 0 = pruned.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None, depth: int = 1, temporal: bool = True,
                 groups: int = 32, layout: AttentionLayout = AttentionLayout()):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.spatial_blocks = nn.ModuleList(
            SpatialTransformerBlock(dim, heads, context_dim, layout) for _ in range(depth))
        self.gate = None
        if temporal:
            self.temporal_blocks = nn.ModuleList(
                TemporalTransformerBlock(dim, heads, context_dim, layout) for _ in range(depth))
            self.time_pos_embed = MLPEmbedding(dim, 4 * dim, dim)
            self.mix_factor = nn.Parameter(torch.tensor([0.5]))
        else:
            self.temporal_blocks, self.time_pos_embed, self.mix_factor = None, None, None
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, num_frames: int) -> torch.Tensor:
        # x: (b·f, c, h, w); context: (b, n, d_ctx) or None
        bf, c, height, width = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bf, height * width, c))
        if self.temporal_blocks is not None:
            frame_pos = self.time_pos_embed(sinusoidal_embedding(
                torch.arange(num_frames, device=x.device), tokens.shape[-1]).to(tokens.dtype))  # (f, c)
            alpha = torch.sigmoid(self.mix_factor).to(tokens.dtype)
        for i, block in enumerate(self.spatial_blocks):
            tokens = block(tokens, context)  # (b·f, h·w, c)
            if self.temporal_blocks is None:
                continue
            seq = rearrange(tokens, "(b f) n c -> (b n) f c", f=num_frames) + frame_pos
            seq = self.temporal_blocks[i](seq, context)  # (b·h·w, f, c)
            temporal = rearrange(seq, "(b n) f c -> (b f) n c", n=height * width)
            mixed = torch.lerp(temporal, tokens, alpha)
            tokens = mixed if self.gate is None else tokens + self.gate * (mixed - tokens)
        out = rearrange(self.proj_out(tokens), "bf (h w) c -> bf c h w", h=height).contiguous()  # NCHW, see resblocks
        return out + x
