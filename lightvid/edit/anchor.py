"""Fairy's anchor-based cross-frame attention (arXiv 2312.13834), for diffusers `UNet2DConditionModel`s and
lightvid's own SpaceTimeUNet.

Every self-attention layer lets a frame attend to its own tokens AND to the anchor frames' tokens:
    softmax(Q_i · [K_i, K_anchors]ᵀ / √d) · [V_i, V_anchors]
The anchors are edited first, as one batch, under the same rule (their own K/V, then all anchors' K/V); that pass
*records* the anchors' K/V of every layer at every sampling step. Every frame is then edited against that cache
(*replay*): a frame depends on nothing but itself and the cache, so frames can be split across processes in any way
and give what a sequential run gives. A frame equal to an anchor (same pixels, same noise) attends to exactly what
that anchor attended to, and edits to the anchor's result.

Batch layout inside the network: `groups` blocks (classifier-free guidance branches) of `frames` frames each,
group-major, so batch row g·frames + j is frame j of branch g; the cache keeps one K/V set per branch.
"""
from functools import partial

import torch
from torch.nn import functional as F

from lightvid.errors import LightvidError

MODES = ("off", "record", "replay")


class AnchorCache:
    """The anchors' keys and values: (step, layer) -> (k, v), each (groups, anchors·tokens, channels)."""

    def __init__(self):
        self.kv: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.mode = "off"
        self.step = 0  # the sampling step being run; set by the sampler loop
        self.groups = 1  # guidance branches in the batch

    def set(self, mode: str, step: int = 0, groups: int = 1) -> None:
        if mode not in MODES:
            raise ValueError(f"anchor cache mode {mode!r}: one of {MODES}")
        self.mode, self.step, self.groups = mode, step, groups

    def extend(self, layer: str, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Own keys/values (B, n, c) -> (B, n + anchors·n, c): each frame's own, then every anchor's."""
        if self.mode == "off":
            return k, v
        frames = k.shape[0] // self.groups
        if self.mode == "record":  # the batch is the anchors: gather each branch's anchors into one sequence
            self.kv[(self.step, layer)] = (k.reshape(self.groups, -1, k.shape[-1]),
                                           v.reshape(self.groups, -1, v.shape[-1]))
        elif (self.step, layer) not in self.kv:
            raise LightvidError(f"the anchor cache has no keys for layer {layer} at step {self.step}: "
                                "run the anchor pass with the same steps and guidance first")
        anchor_k, anchor_v = self.kv[(self.step, layer)]
        if anchor_k.shape[0] != self.groups:
            raise LightvidError(f"the anchor cache holds {anchor_k.shape[0]} guidance branches, the batch has "
                                f"{self.groups}: run the anchor pass with the same guidance")
        return (torch.cat([k, anchor_k.repeat_interleave(frames, dim=0)], dim=1),
                torch.cat([v, anchor_v.repeat_interleave(frames, dim=0)], dim=1))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The cache as flat named tensors (to send to other processes): "step/layer/k" and ".../v"."""
        out = {}
        for (step, layer), (k, v) in sorted(self.kv.items()):
            out[f"{step}/{layer}/k"], out[f"{step}/{layer}/v"] = k, v
        return out

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.kv = {}
        for name, value in tensors.items():
            step, layer, which = name.split("/")
            k, v = self.kv.get((int(step), layer), (None, None))
            self.kv[(int(step), layer)] = (value, v) if which == "k" else (k, value)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pair in self.kv.values() for t in pair)


class AnchorAttnProcessor:
    """A diffusers attention processor for self-attention layers (`attn1`): AttnProcessor2_0's computation with
    the keys and values extended by the anchor cache."""

    def __init__(self, cache: AnchorCache, layer: str):
        self.cache, self.layer = cache, layer

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise LightvidError("anchor attention applies to self-attention over (batch, tokens, channels) only")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)  # (B, n, inner)
        key, value = self.cache.extend(self.layer, attn.to_k(hidden_states), attn.to_v(hidden_states))
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value)  # (B, heads, n, head_dim)
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def install_anchor_attention(network, cache: AnchorCache) -> int:
    """Route every spatial self-attention layer of `network` through `cache`; returns how many layers.

    `network`: a diffusers UNet2DConditionModel (its `attn1` layers) or a lightvid SpaceTimeUNet (the `attn1` of
    its spatial transformer blocks; temporal attention is left as it is)."""
    from lightvid.models import SpaceTimeUNet
    if isinstance(network, SpaceTimeUNet):
        from lightvid.models.attention import SpatialTransformerBlock, TemporalTransformerBlock
        layers = [(name, m) for name, m in network.named_modules()
                  if isinstance(m, SpatialTransformerBlock) and not isinstance(m, TemporalTransformerBlock)]
        for name, block in layers:
            block.attn1.extend_keys = partial(cache.extend, name)
        return len(layers)
    if not hasattr(network, "attn_processors"):
        raise LightvidError(f"anchor attention needs a diffusers UNet2DConditionModel or a lightvid SpaceTimeUNet, "
                            f"got {type(network).__name__}")
    from diffusers.models.attention_processor import AttnProcessor2_0
    processors = {name: AnchorAttnProcessor(cache, name) if name.endswith("attn1.processor") else AttnProcessor2_0()
                  for name in network.attn_processors}
    network.set_attn_processor(processors)
    return sum(isinstance(p, AnchorAttnProcessor) for p in processors.values())
