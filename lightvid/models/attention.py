"""Attention layers: spatial and temporal transformer blocks and the space-time transformer that mixes them.

Token layouts (c = channels of the level):
  spatial  tokens (b·f, h·w, c): every frame attends over its own pixels;
  temporal tokens (b·h·w, f, c): every pixel attends over its own history and future.
Cross-attention context is kept per clip, (b, n, d_ctx), and shared by every frame / pixel group of that
clip: keys and values are projected once per clip, not once per frame or per pixel.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .embeddings import MLPEmbedding, sinusoidal_embedding


class Attention(nn.Module):
    """Multi-head attention, q/k/v without bias, output projection with bias (SVD's layout)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        # Single-token context => softmax over one key is exactly 1 => out = to_out(to_v(ctx)) for every
        # query (MobileVD's "optimised cross-attention"). Exact up to float rounding; off = reference path.
        self.fold_single_token = False

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, n, dim). context: None (self-attention) or (b, m, d_ctx) with B = b·groups, where the
        # `groups` query rows of clip i (frames or pixels, batch-major) share context row i.
        if context is None:  # one (dim -> 3·dim) matmul instead of three: same sums, better GEMM efficiency
            qkv = F.linear(x, torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight]))
            return self.to_out(self._sdpa(*qkv.chunk(3, dim=-1)))
        groups = x.shape[0] // context.shape[0]
        if self.fold_single_token and context.shape[1] == 1:
            out = self.to_out(self.to_v(context))  # (b, 1, dim)
            return out.repeat_interleave(groups, dim=0).expand_as(x)
        k = self.to_k(context).repeat_interleave(groups, dim=0)
        v = self.to_v(context).repeat_interleave(groups, dim=0)
        return self.to_out(self._sdpa(self.to_q(x), k, v))

    def _sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        return rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")


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

    def __init__(self, dim: int, heads: int, context_dim: int | None):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim) if context_dim else None
        self.attn2 = Attention(dim, heads, context_dim) if context_dim else None
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        if self.attn2 is not None:
            x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class TemporalTransformerBlock(SpatialTransformerBlock):
    """The spatial block on temporal tokens, preceded by a residual feed-forward (SVD's `ff_in`)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None):
        super().__init__(dim, heads, context_dim)
        self.norm_in, self.ff_in = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = x + self.ff_in(self.norm_in(x))
        return super().forward(x, context)


class SpaceTimeTransformer(nn.Module):
    """GroupNorm -> proj_in -> [spatial block, then (optionally) a temporal block mixed in] × depth -> proj_out,
    added to the input.

    Temporal blocks see the spatial output plus a learned frame-position embedding; their result is blended
    with the spatial one by σ(m) (SVD's TransformerSpatioTemporalModel). Without `temporal` this is a plain
    image transformer — what temporal-block pruning leaves behind.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None, depth: int = 1, temporal: bool = True,
                 groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.spatial_blocks = nn.ModuleList(SpatialTransformerBlock(dim, heads, context_dim) for _ in range(depth))
        if temporal:
            self.temporal_blocks = nn.ModuleList(
                TemporalTransformerBlock(dim, heads, context_dim) for _ in range(depth))
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
            tokens = torch.lerp(temporal, tokens, alpha)
        out = rearrange(self.proj_out(tokens), "bf (h w) c -> bf c h w", h=height).contiguous()  # NCHW, see resblocks
        return out + x
