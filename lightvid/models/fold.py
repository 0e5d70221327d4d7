"""Fold single-token cross-attention (MobileVD's optimised cross-attention), an exact transform.

With one context token (SVD: the CLIP image embedding) the softmax over keys is identically 1, so every query
receives W_out·(W_v·ctx) + b_out: q and k projections and the attention itself are dead weight. The folded
layer is one linear map with weight W_out·W_v (dim × context_dim) and bias b_out.
"""
import re
from dataclasses import replace

from lightvid.errors import LightvidError

from .rebuild import rebuild
from .unet import SpaceTimeUNet


def fold_cross_attention(unet: SpaceTimeUNet) -> SpaceTimeUNet:
    """The same network with every cross-attention folded; unchanged if it has none or is already folded."""
    cfg = unet.config
    if cfg.cross_attention_dim is None or cfg.cross_attention_folded:
        return unet
    if cfg.funnel_ratio is not None:
        raise LightvidError("merge the channel funnels before folding cross-attention")
    old, state = unet.state_dict(), {}
    for key, value in old.items():
        if re.search(r"_blocks\.\d+\.norm2\.", key):  # the folded layer ignores its input: its LayerNorm goes too
            continue
        if ".attn2." not in key:
            state[key] = value
            continue
        prefix, name = key.split(".attn2.")
        if name == "to_out.weight":  # (dim, inner) @ (inner, d_ctx), computed in float64 then cast back
            w_v = old[f"{prefix}.attn2.to_v.weight"]
            state[f"{prefix}.attn2.proj.weight"] = (value.double() @ w_v.double()).to(value.dtype)
        elif name == "to_out.bias":
            state[f"{prefix}.attn2.proj.bias"] = value
    return rebuild(unet, replace(cfg, cross_attention_folded=True), state)
