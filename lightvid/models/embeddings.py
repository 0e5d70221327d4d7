"""Timestep and frame-position embeddings (sinusoidal features + a two-layer MLP)."""
import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(n,) scalars -> (n, dim) features [cos(t·w_k), sin(t·w_k)], w_k = max_period^(-k/(dim/2)).

    Cosine first, as in SVD (diffusers `Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)`).
    Computed in float32 whatever the model dtype: timesteps of ~1e3 lose their phase in bf16.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class MLPEmbedding(nn.Module):
    """Linear -> SiLU -> Linear, applied to sinusoidal features."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_dim)
        self.linear_2 = nn.Linear(hidden_dim, out_dim or hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(nn.functional.silu(self.linear_1(x)))
