"""`UNetConfig`: everything that fixes a SpaceTimeUNet's architecture, as plain JSON-able fields.

Per-level tuples run from the finest level (0) to the coarsest. Up-path level i mirrors down level
L-1-i and has one ResBlock more (it also consumes the downsampler's skip), as in every SD/SVD UNet.
"""
from dataclasses import asdict, dataclass, fields

from lightvid.errors import LightvidError

# Keys of older lightvid config.json files that are not architecture: a native model's conditioning now lives in its
# pipeline.json (lightvid.pipelines.native reads them from an older folder's config.json).
PIPELINE_KEYS = ("conditioning", "flow")


@dataclass
class UNetConfig:
    in_channels: int = 8
    out_channels: int = 4
    channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_level: tuple[int, ...] = (2, 2, 2, 2)
    heads: tuple[int, ...] = (5, 10, 20, 20)
    transformer_depth: tuple[int, ...] = (1, 1, 1, 1)
    # Which levels have a spatial transformer, temporal transformer blocks inside it, temporal ResBlocks.
    attention: tuple[bool, ...] = (True, True, True, False)
    temporal_attention: tuple[bool, ...] = (True, True, True, False)
    temporal_conv: tuple[bool, ...] = (True, True, True, True)
    # Halve the frame count where level i hands over to level i+1 (Lumiere / MobileVD multiscaling).
    temporal_downsample: tuple[bool, ...] = (False, False, False, False)
    mid_attention: bool = True
    mid_temporal_attention: bool = True
    mid_temporal_conv: bool = True
    # None: no cross-attention at all (native models are conditioned through their input channels).
    cross_attention_dim: int | None = 1024
    # Extra scalars per clip (SVD: fps-1, motion bucket, noise augmentation), embedded like the timestep.
    num_added_time_ids: int = 3
    added_time_embed_dim: int = 256
    norm_groups: int = 32
    # GroupNorm eps of the ResBlocks. SVD mixes 1e-6 (down levels with attention, up path) and 1e-5.
    down_eps: tuple[float, ...] = (1e-6, 1e-6, 1e-6, 1e-5)
    mid_eps: float = 1e-5
    up_eps: float = 1e-6
    # -- compressed architectures (written by lightvid.compress; the defaults are the uncompressed network) --
    # Single-token cross-attention stored folded as one linear layer, W_out·W_v (MobileVD's optimised
    # cross-attention): exact while the context is one token, which is all such a model then accepts.
    cross_attention_folded: bool = False
    # Extra 2x spatial subsampling where level i hands over to level i+1 (MobileVD's spatial multiscaling);
    # () = none. The up path's nearest resize already follows the skip sizes, so only the down path changes.
    spatial_downsample: tuple[bool, ...] = ()
    # Temporal blocks removed by pruning, by module path: "down.0.res.1" (a ResBlock's temporal half) or
    # "mid.attn.0" (a transformer's temporal blocks).
    pruned_temporal: tuple[str, ...] = ()
    # Gates on every temporal block while pruning is finetuned: "topk" (keep exactly `gate_keep`, sampled from
    # learned importances) or "l1" (continuous gates under an L1 penalty, the baseline). None: no gates.
    temporal_gating: str | None = None
    gate_keep: int = 0
    # Width of q/k/v per attention head relative to channels/heads (< 1 after channel funnels are merged).
    attention_ratio: float = 1.0
    # Unmerged channel funnels of this ratio in every attention layer (only while they are finetuned).
    funnel_ratio: float | None = None

    def __post_init__(self):
        for f in fields(self):  # JSON gives lists; keep tuples so configs compare and hash
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.validate()

    @property
    def num_levels(self) -> int:
        return len(self.channels)

    @property
    def emb_dim(self) -> int:
        return 4 * self.channels[0]

    def validate(self):
        n = self.num_levels
        per_level = ("layers_per_level", "heads", "transformer_depth", "attention", "temporal_attention",
                     "temporal_conv", "temporal_downsample", "down_eps")
        for name in per_level:
            if len(getattr(self, name)) != n:
                raise LightvidError(f"UNet config: '{name}' has {len(getattr(self, name))} entries, "
                                    f"expected one per level ({n}, as in 'channels')")
        for c, h in zip(self.channels, self.heads):
            if c % h or c % self.norm_groups:
                raise LightvidError(f"UNet config: channels {c} must be divisible by heads ({h}) "
                                    f"and norm_groups ({self.norm_groups})")
        if self.temporal_downsample[-1]:
            raise LightvidError("UNet config: the coarsest level cannot downsample time (nothing below it)")
        if self.spatial_downsample and (len(self.spatial_downsample) != n or self.spatial_downsample[-1]):
            raise LightvidError(f"UNet config: 'spatial_downsample' needs one entry per level ({n}) and the "
                                "coarsest level cannot downsample")
        if self.temporal_gating not in (None, "topk", "l1"):
            raise LightvidError(f"UNet config: temporal_gating '{self.temporal_gating}' is not one of topk, l1")
        if not 0 < self.attention_ratio <= 1 or (self.funnel_ratio is not None and not 0 < self.funnel_ratio <= 1):
            raise LightvidError("UNet config: attention_ratio and funnel_ratio must lie in (0, 1]")

    def head_width(self, level_channels: int, heads: int, funnel: bool = False) -> int:
        """q/k/v channels per attention head at a level: its channels / heads times attention_ratio (times
        funnel_ratio for the funnels' inner width, which is what merging the funnels leaves)."""
        ratio = self.attention_ratio * (self.funnel_ratio if funnel else 1.0)
        return max(1, round(level_channels // heads * ratio))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        # num_frames: an SVD pipeline's clip length
        ignored = {"_class_name", "lightvid_version", "num_frames", *PIPELINE_KEYS}
        unknown = sorted(set(d) - known - ignored)
        if unknown:
            raise LightvidError(f"UNet config: unknown keys {unknown}; accepted: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})


def config_from_diffusers(d: dict) -> UNetConfig:
    """Translate a diffusers `UNetSpatioTemporalConditionModel` config.json into a UNetConfig."""
    levels = len(d.get("block_out_channels", (320, 640, 1280, 1280)))

    def per_level(value, default):
        value = d.get(value, default)
        return tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels

    down_types = d.get("down_block_types", ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",))
    if any(t not in ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal") for t in down_types):
        raise LightvidError(f"unsupported SVD UNet block types {down_types}")
    attention = tuple(t.startswith("CrossAttn") for t in down_types)
    up_types = d.get("up_block_types", ())
    if up_types and tuple(t.startswith("CrossAttn") for t in reversed(up_types)) != attention:
        raise LightvidError("SVD UNet config: up blocks do not mirror down blocks; not supported")
    cross = d.get("cross_attention_dim", 1024)
    if isinstance(cross, (list, tuple)):
        if len(set(cross)) != 1:
            raise LightvidError("SVD UNet config: per-level cross_attention_dim is not supported")
        cross = cross[0]
    depth = per_level("transformer_layers_per_block", 1)
    if any(isinstance(x, (list, tuple)) for x in depth):
        raise LightvidError("SVD UNet config: per-layer transformer depths are not supported")
    added_dim = d.get("addition_time_embed_dim", 256)
    return UNetConfig(
        in_channels=d.get("in_channels", 8), out_channels=d.get("out_channels", 4),
        channels=tuple(d.get("block_out_channels", (320, 640, 1280, 1280))),
        layers_per_level=per_level("layers_per_block", 2), heads=per_level("num_attention_heads", (5, 10, 20, 20)),
        transformer_depth=depth, attention=attention, temporal_attention=attention,
        temporal_conv=(True,) * levels, temporal_downsample=(False,) * levels,
        cross_attention_dim=cross, num_added_time_ids=d.get("projection_class_embeddings_input_dim", 768) // added_dim,
        added_time_embed_dim=added_dim,
        down_eps=tuple(1e-6 if a else 1e-5 for a in attention), mid_eps=1e-5, up_eps=1e-6)
