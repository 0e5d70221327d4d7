"""Temporal-block pruning (MobileVD): gate every temporal block, finetune, then remove the least important.

A temporal block is a ResBlock's temporal half or a transformer's temporal blocks (SVD has 38; MobileVD prunes
70%). `add_temporal_gates` attaches `TemporalGates` (lightvid/models/gates.py: Gumbel-top-k with an explicit
budget, or the L1 baseline) for finetuning; `prune_temporal_blocks` then deletes the modules of every block
outside the kept set, so parameters and FLOPs really drop. A block's contribution is
(1 − σ(m))·(temporal(x) − x) (SVD's learned mix m), so removing it leaves x and its gate multiplies that term.
"""
from dataclasses import replace

import torch
from torch.nn import functional as F

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.rebuild import rebuild

# State-dict parts that belong to a block's temporal half (ResBlock) or temporal blocks (transformer).
TEMPORAL_PARTS = (".temporal.", ".mix_factor", ".temporal_blocks.", ".time_pos_embed.")


def keep_count(unet: SpaceTimeUNet, keep: int | None = None, keep_fraction: float | None = None) -> int:
    """Blocks to keep, from an explicit count or a fraction of the temporal blocks there are (rounded)."""
    total = len(unet.temporal_blocks())
    if (keep is None) == (keep_fraction is None):
        raise LightvidError("pruning needs exactly one of keep (a block count) or keep_fraction")
    if (keep is not None and (not isinstance(keep, int) or isinstance(keep, bool))) or (
            keep_fraction is not None and not isinstance(keep_fraction, (int, float))):
        raise LightvidError(f"pruning: keep must be an integer and keep_fraction a number, got "
                            f"{keep if keep is not None else keep_fraction!r}")
    count = round(keep_fraction * total) if keep is None else keep
    if not 0 <= count <= total or (keep_fraction is not None and not 0 <= keep_fraction <= 1):
        raise LightvidError(f"pruning: cannot keep {keep if keep is not None else keep_fraction} of {total} "
                            "temporal blocks (keep: 0..blocks, keep_fraction: 0..1)")
    return count


def branch_weight_logits(unet: SpaceTimeUNet) -> torch.Tensor:
    """log(1 − σ(m)) per temporal block: how much of each block's output its temporal branch makes up. The
    data-free importance used to start top-k gates, and to prune without finetuning."""
    return torch.stack([-F.softplus(block.mix_factor.detach().float()).reshape(())
                        for block in unet.temporal_blocks().values()])


def add_temporal_gates(unet: SpaceTimeUNet, keep: int, method: str = "topk") -> SpaceTimeUNet:
    """The same network with gates on its temporal blocks (keeping `keep` of them during finetuning)."""
    if unet.config.temporal_gating is not None:
        raise LightvidError("this model already has temporal gates; prune it first")
    gated = rebuild(unet, replace(unet.config, temporal_gating=method, gate_keep=keep), unet.state_dict(),
                    fresh=("temporal_gates.",))
    if method == "topk" and gated.temporal_gates is not None:
        with torch.no_grad():
            gated.temporal_gates.scores.copy_(branch_weight_logits(unet))
    return gated


def prune_temporal_blocks(unet: SpaceTimeUNet, keep: int | None = None) -> SpaceTimeUNet:
    """Remove every temporal block but the `keep` most important. A gated model uses its learned ranking and
    its own budget (`keep` must be None or equal it); an ungated one ranks by `branch_weight_logits`.
    L1 gates (in [0, 1], see `TemporalGates.project`) of kept blocks are folded into their mix factors:
    1 − σ(m') = g·(1 − σ(m)), exact for g > 0 (a kept gate of exactly 0 becomes a branch weight of 1e-6)."""
    cfg, gates, blocks = unet.config, unet.temporal_gates, unet.temporal_blocks()
    names = list(blocks)
    if gates is not None:
        if keep is not None and keep != cfg.gate_keep:
            raise LightvidError(f"this model's gates were trained to keep {cfg.gate_keep} blocks, not {keep}")
        keep, order = cfg.gate_keep, gates.ranking()
    else:
        if not isinstance(keep, int) or not 0 <= keep <= len(names):
            raise LightvidError(f"pruning an ungated model needs the number of blocks to keep, 0..{len(names)}; "
                                f"got {keep!r}")
        order = torch.argsort(branch_weight_logits(unet), descending=True, stable=True)
    kept = {names[i] for i in order[:keep].tolist()}
    removed = [n for n in names if n not in kept]
    state = {k: v for k, v in unet.state_dict().items()
             if not k.startswith("temporal_gates.")
             and not any(k.startswith(n + part) for n in removed for part in TEMPORAL_PARTS)}
    if gates is not None and cfg.temporal_gating == "l1":
        for name, gate in zip(names, gates.scores.detach().clamp(0.0, 1.0)):
            if name in kept:
                key = f"{name}.mix_factor"
                branch = (gate * (1 - torch.sigmoid(state[key].double()))).clamp(min=1e-6)
                state[key] = torch.logit(1 - branch).to(state[key].dtype)
    pruned = replace(cfg, pruned_temporal=tuple(sorted({*cfg.pruned_temporal, *removed})), temporal_gating=None,
                     gate_keep=0)
    return rebuild(unet, pruned, state)
