"""Channel funnels (MobileVD): narrow every attention head's q/k and v/out pairs, finetune, merge.

An attention head couples two pairs of affine maps through a product: scores use W_qᵀW_k (per head, q·k), the
output uses W_out·W_v (the attention weights act on tokens, so they commute with the per-head channel maps).
A funnel inserts adaptors of inner width k = r·w (w = channels per head) into each product:
    W_qᵀ F_qᵀ F_k W_k    and    W_out G F_v W_v,
F: (k, w), G: (w, k). Merging afterwards (W_q ← F_q W_q, W_k ← F_k W_k, W_v ← F_v W_v, W_out ← W_out G) leaves
heads of width k: q/k/v/out projections and the attention itself cost r times as much.

Coupled singular initialisation ("coupled"), derived here because MobileVD does not publish it: for a product
L·R (L: (m, w), R: (w, n)) we want L·G·F·R to be the best rank-k approximation of L·R, which by Eckart-Young is
its truncated SVD. Write L = Q_L R_L and Rᵀ = Q_R R_R (QR; Q orthonormal, R_L, R_R (w, w)); then
L·R = Q_L (R_L R_Rᵀ) Q_Rᵀ, and with R_L R_Rᵀ = U S Vᵀ the truncated SVD of L·R is Q_L U_k S_k V_kᵀ Q_Rᵀ. Hence
    G = R_L⁺ U_k S_k^½,    F = S_k^½ V_kᵀ (R_Rᵀ)⁺,
which gives L·G·F·R = Q_L U_k S_k V_kᵀ Q_Rᵀ exactly when R_L, R_R are invertible. q/k: L = W_qᵀ, R = W_k,
F_q = Gᵀ, F_k = F; v/out: L = W_out, R = W_v, G, F_v = F. Only w×w matrices are decomposed (cheap even for SVD).
q/k funnels also multiply the scores by (k/w)^½ so that attention's 1/√(head width) temperature is kept.

Baselines (MobileVD compares CSI with He initialisation): "svd" projects each pair's inner space onto the top-k
left singular vectors of its first layer alone (W_q or W_v: the plain truncated SVD of one layer), "he" draws
F and G at random with He scaling.
"""
import math
from dataclasses import replace

import torch

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.attention import Attention
from lightvid.models.rebuild import rebuild

FUNNEL_INITS = ("coupled", "svd", "he")


def coupled_factors(left: torch.Tensor, right: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """left (m, w), right (w, n) -> G (w, k), F (k, w) with left·G·F·right = best rank-k approximation of left·right."""
    _, r_left = torch.linalg.qr(left)  # (w, w) when m >= w
    _, r_right = torch.linalg.qr(right.T)
    u, s, vh = torch.linalg.svd(r_left @ r_right.T)
    root = s[:k].sqrt()
    return torch.linalg.pinv(r_left) @ (u[:, :k] * root), (root[:, None] * vh[:k]) @ torch.linalg.pinv(r_right.T)


def _init_funnel(attn: Attention, init: str, generator: torch.Generator) -> None:
    funnel = attn.funnel
    h, w, k = funnel.heads, funnel.head_width, funnel.width
    wq, wk, wv, wo = (p.detach().double() for p in (attn.to_q.weight, attn.to_k.weight, attn.to_v.weight,
                                                    attn.to_out.weight))
    wq, wk, wv = (x.reshape(h, w, -1) for x in (wq, wk, wv))  # (heads, w, d_in)
    wo = wo.reshape(wo.shape[0], h, w).permute(1, 0, 2)  # (heads, dim, w)
    fq, fk, fv = (torch.empty(h, k, w, dtype=torch.float64) for _ in range(3))
    g = torch.empty(h, w, k, dtype=torch.float64)
    for i in range(h):
        if init == "coupled":
            gq, fk[i] = coupled_factors(wq[i].T, wk[i], k)
            fq[i] = gq.T
            g[i], fv[i] = coupled_factors(wo[i], wv[i], k)
        elif init == "svd":
            fq[i] = fk[i] = torch.linalg.svd(wq[i], full_matrices=False)[0][:, :k].T
            u_v = torch.linalg.svd(wv[i], full_matrices=False)[0][:, :k]
            fv[i], g[i] = u_v.T, u_v
        else:  # He: N(0, 2 / fan_in)
            for target, fan_in in ((fq, w), (fk, w), (fv, w), (g, k)):
                target[i] = torch.randn(target.shape[1:], generator=generator, dtype=torch.float64) \
                    * math.sqrt(2 / fan_in)
    temperature = (k / w) ** 0.25  # q·k gains (k/w)^½ to undo the narrower heads' 1/√k softmax scaling
    with torch.no_grad():
        for param, value in ((funnel.q, fq * temperature), (funnel.k, fk * temperature), (funnel.v, fv),
                             (funnel.out, g)):
            param.copy_(value.to(param.dtype))


def add_funnels(unet: SpaceTimeUNet, ratio: float = 0.5, init: str = "coupled", seed: int = 0) -> SpaceTimeUNet:
    """The network with funnels of inner width ratio·w in every attention layer, initialised by `init`."""
    if init not in FUNNEL_INITS:
        raise LightvidError(f"funnel init '{init}' is not one of {', '.join(FUNNEL_INITS)}")
    if unet.config.funnel_ratio is not None:
        raise LightvidError("this model already has unmerged funnels; merge them first")
    if not 0 < ratio <= 1:
        raise LightvidError(f"funnel ratio must lie in (0, 1], got {ratio}")
    funneled = rebuild(unet, replace(unet.config, funnel_ratio=ratio), unet.state_dict(), fresh=(".funnel.",))
    generator = torch.Generator().manual_seed(seed)
    for module in funneled.modules():
        if isinstance(module, Attention):
            _init_funnel(module, init, generator)
    return funneled


def merge_funnels(unet: SpaceTimeUNet) -> SpaceTimeUNet:
    """Multiply every funnel into its neighbouring weights: the same function with narrower attention heads."""
    cfg = unet.config
    if cfg.funnel_ratio is None:
        return unet
    state = {k: v for k, v in unet.state_dict().items() if ".funnel." not in k}
    with torch.no_grad():
        for name, module in unet.named_modules():
            if isinstance(module, Attention):
                for layer, weight in zip(("to_q", "to_k", "to_v", "to_out"), module.projections()):
                    state[f"{name}.{layer}.weight"] = weight.detach().clone()
    merged = replace(cfg, attention_ratio=cfg.attention_ratio * cfg.funnel_ratio, funnel_ratio=None)
    return rebuild(unet, merged, state)
