"""SpaceTimeUNet: lightvid's spatio-temporal UNet.

One configurable network that expresses Stable Video Diffusion's UNet exactly (weights load from a
diffusers `unet/` folder and reproduce `UNetSpatioTemporalConditionModel`), and the small native models
lightvid trains itself: per-level widths, depths, heads, which levels carry spatial attention, temporal
attention and temporal convolution, and identity-initialised temporal down/up-sampling.

Activations: (b·f, c, h, w) with frames folded into the batch; f changes at temporal resamplers.
"""
import math

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from lightvid.errors import LightvidError

from .attention import AttentionLayout, SpaceTimeTransformer
from .config import UNetConfig
from .embeddings import MLPEmbedding, sinusoidal_embedding
from .gates import TemporalGates
from .resample import Downsample, SpatialSubsample, TemporalDownsample, TemporalUpsample, Upsample
from .resblocks import SpaceTimeResBlock


def _call(module: nn.Module, use_checkpoint: bool, *args):
    """Run a block, recomputing its activations in backward when gradient checkpointing is on."""
    if use_checkpoint and torch.is_grad_enabled():
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


def _layout(cfg: UNetConfig, i: int) -> AttentionLayout:
    """Attention shape at level i: q/k/v width per head, unmerged funnel width, folded cross-attention."""
    funnel = cfg.head_width(cfg.channels[i], cfg.heads[i], funnel=True) if cfg.funnel_ratio else None
    return AttentionLayout(cfg.head_width(cfg.channels[i], cfg.heads[i]), funnel, cfg.cross_attention_folded)


def _resblock(cfg: UNetConfig, name: str, in_ch: int, out_ch: int, eps: float, temporal: bool) -> SpaceTimeResBlock:
    temporal = temporal and name not in cfg.pruned_temporal
    return SpaceTimeResBlock(in_ch, out_ch, cfg.emb_dim, eps, temporal, cfg.norm_groups)


def _transformer(cfg: UNetConfig, name: str, i: int, temporal: bool) -> SpaceTimeTransformer:
    temporal = temporal and name not in cfg.pruned_temporal
    return SpaceTimeTransformer(cfg.channels[i], cfg.heads[i], cfg.cross_attention_dim, cfg.transformer_depth[i],
                                temporal, cfg.norm_groups, _layout(cfg, i))


class DownLevel(nn.Module):
    """ResBlocks (each followed by a transformer if `attention`), then optional spatial/temporal downsampling."""

    def __init__(self, cfg: UNetConfig, i: int, in_ch: int):
        super().__init__()
        ch, n = cfg.channels[i], cfg.layers_per_level[i]
        self.res = nn.ModuleList(
            _resblock(cfg, f"down.{i}.res.{j}", in_ch if j == 0 else ch, ch, cfg.down_eps[i], cfg.temporal_conv[i])
            for j in range(n))
        self.attn = nn.ModuleList(_transformer(cfg, f"down.{i}.attn.{j}", i, cfg.temporal_attention[i])
                                  for j in range(n)) if cfg.attention[i] else None
        last = i == cfg.num_levels - 1
        self.downsample = None if last else Downsample(ch)
        self.spatial_subsample = SpatialSubsample(ch) if cfg.spatial_downsample and cfg.spatial_downsample[i] else None
        self.temporal_downsample = TemporalDownsample(ch) if cfg.temporal_downsample[i] else None
        self.gradient_checkpointing = False

    def forward(self, x, emb, context, f, skips: list):
        for j, res in enumerate(self.res):
            x = _call(res, self.gradient_checkpointing, x, emb, f)
            if self.attn is not None:
                x = _call(self.attn[j], self.gradient_checkpointing, x, context, f)
            skips.append((x, f))
        if self.downsample is not None:
            x = self.downsample(x)
            if self.spatial_subsample is not None:
                x = self.spatial_subsample(x)
            if self.temporal_downsample is not None:
                x, f = self.temporal_downsample(x, f), math.ceil(f / 2)
            skips.append((x, f))
        return x, f


class MidLevel(nn.Module):
    """ResBlock, transformer, ResBlock at the coarsest resolution."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        ch = cfg.channels[-1]
        self.res = nn.ModuleList(
            _resblock(cfg, f"mid.res.{j}", ch, ch, cfg.mid_eps, cfg.mid_temporal_conv) for j in range(2))
        self.attn = nn.ModuleList([_transformer(cfg, "mid.attn.0", cfg.num_levels - 1, cfg.mid_temporal_attention)]
                                  ) if cfg.mid_attention else None
        self.gradient_checkpointing = False

    def forward(self, x, emb, context, f):
        x = _call(self.res[0], self.gradient_checkpointing, x, emb, f)
        if self.attn is not None:
            x = _call(self.attn[0], self.gradient_checkpointing, x, context, f)
        return _call(self.res[1], self.gradient_checkpointing, x, emb, f)


class UpLevel(nn.Module):
    """Mirror of down level `i`: ResBlocks over [x ‖ skip] (+ transformers), then upsampling to the next skip."""

    def __init__(self, cfg: UNetConfig, i: int, prev_ch: int):
        super().__init__()
        ch, n, k = cfg.channels[i], cfg.layers_per_level[i] + 1, cfg.num_levels - 1 - i  # k: index in `up`
        skip_from_below = cfg.channels[max(i - 1, 0)]  # the last skip comes from the level below's downsampler
        self.res = nn.ModuleList(
            _resblock(cfg, f"up.{k}.res.{j}", (prev_ch if j == 0 else ch) + (skip_from_below if j == n - 1 else ch),
                      ch, cfg.up_eps, cfg.temporal_conv[i]) for j in range(n))
        self.attn = nn.ModuleList(_transformer(cfg, f"up.{k}.attn.{j}", i, cfg.temporal_attention[i])
                                  for j in range(n)) if cfg.attention[i] else None
        self.upsample = Upsample(ch) if i > 0 else None
        self.temporal_upsample = TemporalUpsample(ch) if i > 0 and cfg.temporal_downsample[i - 1] else None
        self.gradient_checkpointing = False

    def forward(self, x, emb, context, f, skips: list):
        for j, res in enumerate(self.res):
            skip, _ = skips.pop()
            x = _call(res, self.gradient_checkpointing, torch.cat([x, skip], dim=1), emb, f)
            if self.attn is not None:
                x = _call(self.attn[j], self.gradient_checkpointing, x, context, f)
        if self.upsample is not None:
            target, target_f = skips[-1]
            if self.temporal_upsample is not None:
                x, f = self.temporal_upsample(x, f, target_f), target_f
            x = self.upsample(x, target.shape[-2:])
        return x, f


class SpaceTimeUNet(nn.Module):
    """`unet(sample, timestep, encoder_hidden_states, added_time_ids) -> (b, f, out_channels, h, w)`.

    Arguments mean what they mean for diffusers' `UNetSpatioTemporalConditionModel`: `sample` (b, f, c_in, h, w),
    `timestep` the noise conditioning c_noise (scalar or (b,)), `encoder_hidden_states` (b, n, d_ctx) or None,
    `added_time_ids` (b, num_added_time_ids) or None.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch0 = cfg.channels[0]
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)
        self.time_embedding = MLPEmbedding(ch0, cfg.emb_dim)
        self.add_embedding = (MLPEmbedding(cfg.num_added_time_ids * cfg.added_time_embed_dim, cfg.emb_dim)
                              if cfg.num_added_time_ids else None)
        self.down = nn.ModuleList()
        for i in range(cfg.num_levels):
            self.down.append(DownLevel(cfg, i, cfg.channels[max(i - 1, 0)]))
        self.mid = MidLevel(cfg)
        self.up = nn.ModuleList()
        for i in reversed(range(cfg.num_levels)):
            self.up.append(UpLevel(cfg, i, cfg.channels[min(i + 1, cfg.num_levels - 1)]))
        self.norm_out = nn.GroupNorm(cfg.norm_groups, ch0, eps=1e-5)
        self.conv_out = nn.Conv2d(ch0, cfg.out_channels, 3, padding=1)
        unknown = set(cfg.pruned_temporal) - set(self.temporal_blocks(include_pruned=True))
        if unknown:
            raise LightvidError(f"UNet config: pruned_temporal names blocks this network does not have: "
                                f"{sorted(unknown)[:3]}")
        blocks = list(self.temporal_blocks().values())
        # A plain list, not registered: the gated modules are already children of the levels.
        self._gated = blocks if cfg.temporal_gating else []
        self.temporal_gates = TemporalGates(len(blocks), cfg.temporal_gating, cfg.gate_keep) if blocks and \
            cfg.temporal_gating else None

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor | None = None,
                added_time_ids: torch.Tensor | None = None) -> torch.Tensor:
        b = sample.shape[0]
        x, f, emb, skips, _ = self.encode(sample, timestep, encoder_hidden_states, added_time_ids)
        for level in self.up:
            x, f = level(x, emb, encoder_hidden_states, f, skips)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return rearrange(x, "(b f) c h w -> b f c h w", b=b).contiguous()

    def encode(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor | None = None,
               added_time_ids: torch.Tensor | None = None):
        """The down path and mid level (what a UNet-encoder discriminator reuses).

        Returns (x, f, emb, skips, levels): the mid output (b·f, c, h, w) with its frame count f, the embedding
        (b, emb_dim), the skip connections the up path consumes, and [(output, frames)] of every down level
        and the mid level, coarsest last."""
        b, f = sample.shape[:2]
        if self.temporal_gates is not None:  # one draw per forward; with gradient checkpointing the backward
            for module, gate in zip(self._gated, self.temporal_gates()):  # recomputes with these same gates,
                module.gate = gate  # so a gated model takes one forward per backward (as the trainer does)
        emb = self.embed(timestep, added_time_ids, b, sample)  # (b, emb_dim)
        x = self.conv_in(rearrange(sample, "b f c h w -> (b f) c h w"))
        skips, levels = [(x, f)], []
        for level in self.down:
            x, f = level(x, emb, encoder_hidden_states, f, skips)
            levels.append((x, f))
        x = self.mid(x, emb, encoder_hidden_states, f)
        levels.append((x, f))
        return x, f, emb, skips, levels

    def embed(self, timestep, added_time_ids, batch: int, like: torch.Tensor) -> torch.Tensor:
        """Timestep (+ added time ids) embedding, one per clip: (b, emb_dim)."""
        t = torch.as_tensor(timestep, device=like.device).reshape(-1).expand(batch)
        emb = self.time_embedding(sinusoidal_embedding(t, self.config.channels[0]).to(like.dtype))
        if self.add_embedding is not None:
            if added_time_ids is None:
                raise ValueError(f"this UNet needs added_time_ids of shape ({batch}, {self.config.num_added_time_ids})")
            ids = sinusoidal_embedding(added_time_ids.reshape(-1), self.config.added_time_embed_dim)
            emb = emb + self.add_embedding(ids.reshape(batch, -1).to(like.dtype))
        return emb

    def temporal_blocks(self, include_pruned: bool = False) -> dict[str, nn.Module]:
        """Module path -> ResBlock or transformer that carries temporal layers (the units pruning removes).
        With `include_pruned`, also the names of those built without them (every block that could carry one)."""
        blocks = {}
        for name, module in self.named_modules():
            if isinstance(module, SpaceTimeResBlock) and (module.temporal is not None or include_pruned):
                blocks[name] = module
            elif isinstance(module, SpaceTimeTransformer) and (module.temporal_blocks is not None or include_pruned):
                blocks[name] = module
        return blocks

    # -- switches -------------------------------------------------------------------------------------

    def set_gradient_checkpointing(self, enabled: bool = True) -> "SpaceTimeUNet":
        for m in self.modules():
            if hasattr(m, "gradient_checkpointing"):
                m.gradient_checkpointing = enabled
        return self

    # -- checkpoints ----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path, dtype: torch.dtype | None = None, device="cpu") -> "SpaceTimeUNet":
        """Load lightvid's own checkpoint folder or a diffusers SVD `unet/` folder (or a pipeline folder)."""
        from .checkpoint import load_network
        network = load_network(path, dtype=dtype, device=device)
        if not isinstance(network, cls):
            raise LightvidError(f"{path}: holds a {type(network).__name__} network, not a SpaceTimeUNet")
        return network

    def save_pretrained(self, path) -> None:
        """Write config.json + model.safetensors into folder `path` (each file atomically)."""
        from .checkpoint import save_network
        save_network(self, path)
