"""`UNetConfig`: everything that fixes a SpaceTimeUNet's architecture, as plain JSON-able fields.

Per-level tuples run from the finest level (0) to the coarsest. Up-path level i mirrors down level
L-1-i and has one ResBlock more (it also consumes the downsampler's skip), as in every SD/SVD UNet.
"""
import math
from dataclasses import asdict, dataclass, fields

from lightvid.errors import LightvidError
from lightvid.tasks.framespec import MAX_FRAMES

# Keys of older lightvid config.json files that are not architecture: a native model's conditioning now lives in its
# pipeline.json (lightvid.pipelines.native reads them from an older folder's config.json).
PIPELINE_KEYS = ("conditioning", "flow")

# Upper bounds of sizes and counts: far above any real network (SVD: 1280 channels, 4 levels), low enough that a
# fuzzed config cannot make building the network (even on the meta device) blow up.
MAX_WIDTH = 2 ** 16
MAX_DEPTH = 64
MAX_LEVELS = 16


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (JSON's NaN / Infinity and booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def short_repr(value) -> str:
    """A value as a short one-line repr, for error messages."""
    text = " ".join(repr(list(value) if isinstance(value, tuple) else value).split())  # as JSON gave it
    return text if len(text) <= 60 else text[:57] + "..."


_NOTHING = object()  # a value no rule accepts


def check_value(value, rule: tuple) -> str | None:
    """None if `value` follows `rule`, else what is accepted (for the message). Rules:
    ("int", low, high), ("number", low, high) (low excluded: every such field is a positive scale), ("bool",),
    ("str", choices or None), ("list", item rule, min length 0 or 1); ("optional", rule) also accepts None;
    ("either", rule, rule) accepts what either accepts."""
    kind = rule[0]
    if kind == "optional":
        accepted = check_value(value, rule[1]) if value is not None else None
        return None if accepted is None else f"{accepted} or null"
    if kind == "int":
        low, high = rule[1], rule[2]
        return None if is_int(value) and low <= value <= high else f"an integer in [{low}, {high}]"
    if kind == "number":
        low, high = rule[1], rule[2]
        if is_number(value) and low < value <= high:
            return None
        return "a finite number" if math.isinf(low) and math.isinf(high) else f"a finite number in ({low}, {high}]"
    if kind == "either":
        first, second = check_value(value, rule[1]), check_value(value, rule[2])
        return None if first is None or second is None else f"{first}, or {second}"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "str":
        choices = rule[1]
        if isinstance(value, str) and (choices is None or value in choices):
            return None
        return f"one of {', '.join(choices)}" if choices else "a string"
    if kind == "list":
        item, min_len = rule[1], rule[2]
        if isinstance(value, (list, tuple)) and len(value) >= min_len \
                and all(check_value(v, item) is None for v in value):
            return None
        each = check_value(_NOTHING, item)  # what one item may be
        return f"a {'non-empty ' if min_len else ''}list, each {each}"
    raise AssertionError(kind)


def check_fields(values: dict, rules: dict, where: str) -> None:
    """LightvidError naming the first field of `values` that breaks its rule in `rules` (absent fields pass)."""
    for name, rule in rules.items():
        if name in values:
            accepted = check_value(values[name], rule)
            if accepted is not None:
                raise LightvidError(f"{where}'{name}' must be {accepted}, got {short_repr(values[name])}")


_WIDTH, _DEPTH = ("int", 1, MAX_WIDTH), ("int", 1, MAX_DEPTH)
_EPS, _RATIO = ("number", 0, 1), ("number", 0, 1)
_FLAGS = ("list", ("bool",), 0)
# Every UNetConfig field: its type and range (UNetConfig.validate adds the checks across fields).
UNET_FIELD_RULES = {
    "in_channels": _WIDTH, "out_channels": _WIDTH, "channels": ("list", _WIDTH, 1),
    "layers_per_level": ("list", _DEPTH, 0), "heads": ("list", _WIDTH, 0), "transformer_depth": ("list", _DEPTH, 0),
    "attention": _FLAGS, "temporal_attention": _FLAGS, "temporal_conv": _FLAGS, "temporal_downsample": _FLAGS,
    "mid_attention": ("bool",), "mid_temporal_attention": ("bool",), "mid_temporal_conv": ("bool",),
    "cross_attention_dim": ("optional", _WIDTH), "num_added_time_ids": ("int", 0, MAX_DEPTH),
    "added_time_embed_dim": _WIDTH, "norm_groups": _WIDTH, "down_eps": ("list", _EPS, 0), "mid_eps": _EPS,
    "up_eps": _EPS, "cross_attention_folded": ("bool",), "spatial_downsample": _FLAGS,
    "pruned_temporal": ("list", ("str", None), 0), "temporal_gating": ("optional", ("str", ("topk", "l1"))),
    "gate_keep": ("int", 0, MAX_WIDTH), "attention_ratio": _RATIO, "funnel_ratio": ("optional", _RATIO),
}


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
        check_fields(asdict(self), UNET_FIELD_RULES, "UNet config: ")
        n = self.num_levels
        if n > MAX_LEVELS:
            raise LightvidError(f"UNet config: 'channels' has {n} levels, at most {MAX_LEVELS} are accepted")
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
        if not isinstance(d, dict):
            raise LightvidError(f"UNet config: must be a JSON object of its fields, got {short_repr(d)}")
        check_fields(d, {"num_frames": _FRAMES}, "UNet config: ")
        known = {f.name for f in fields(cls)}
        # num_frames: an SVD pipeline's clip length
        ignored = {"_class_name", "lightvid_version", "num_frames", *PIPELINE_KEYS}
        unknown = sorted(set(d) - known - ignored)
        if unknown:
            raise LightvidError(f"UNet config: unknown keys {unknown}; accepted: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})


DOWN_BLOCKS = ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal")
UP_BLOCKS = ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal")
_FRAMES = ("int", 1, MAX_FRAMES)
_PER_LEVEL = ("either", _WIDTH, ("list", _WIDTH, 1))
_PER_LEVEL_DEPTH = ("either", _DEPTH, ("list", _DEPTH, 1))
# The fields of a diffusers UNetSpatioTemporalConditionModel config.json that lightvid reads (the rest is ignored).
DIFFUSERS_FIELD_RULES = {
    "in_channels": _WIDTH, "out_channels": _WIDTH, "block_out_channels": ("list", _WIDTH, 1),
    "layers_per_block": _PER_LEVEL_DEPTH, "num_attention_heads": _PER_LEVEL,
    "transformer_layers_per_block": _PER_LEVEL_DEPTH,
    "down_block_types": ("list", ("str", DOWN_BLOCKS), 1), "up_block_types": ("list", ("str", UP_BLOCKS), 0),
    "cross_attention_dim": _PER_LEVEL, "addition_time_embed_dim": _WIDTH,
    "projection_class_embeddings_input_dim": ("int", 0, MAX_WIDTH * MAX_DEPTH), "num_frames": _FRAMES,
}


def config_from_diffusers(d: dict) -> UNetConfig:
    """Translate a diffusers `UNetSpatioTemporalConditionModel` config.json into a UNetConfig (every field lightvid
    reads is checked first, so a message names diffusers' own field)."""
    where = "SVD UNet config: "
    if not isinstance(d, dict):
        raise LightvidError(f"{where}must be a JSON object, got {short_repr(d)}")
    check_fields(d, DIFFUSERS_FIELD_RULES, where)
    channels = tuple(d.get("block_out_channels", (320, 640, 1280, 1280)))
    levels = len(channels)
    if levels > MAX_LEVELS:
        raise LightvidError(f"{where}'block_out_channels' has {levels} levels, at most {MAX_LEVELS} are accepted")

    def per_level(name, default):
        value = d.get(name, default)
        if isinstance(value, (list, tuple)) and len(value) != levels:
            raise LightvidError(f"{where}'{name}' has {len(value)} entries, expected one per level ({levels}, "
                                "as in 'block_out_channels')")
        return tuple(value) if isinstance(value, (list, tuple)) else (value,) * levels

    down_types = per_level("down_block_types", DOWN_BLOCKS[:1] * 3 + DOWN_BLOCKS[1:])  # diffusers' defaults
    attention = tuple(t.startswith("CrossAttn") for t in down_types)
    up_types = tuple(d.get("up_block_types", ()))
    if up_types and tuple(t.startswith("CrossAttn") for t in reversed(up_types)) != attention:
        raise LightvidError(f"{where}'up_block_types' {short_repr(up_types)} do not mirror 'down_block_types' "
                            f"{short_repr(down_types)}; only mirrored blocks are supported")
    cross = per_level("cross_attention_dim", 1024)
    if len(set(cross)) != 1:
        raise LightvidError(f"{where}'cross_attention_dim' differs per level {short_repr(cross)}; one value is "
                            "supported")
    added_dim = d.get("addition_time_embed_dim", 256)
    projection = d.get("projection_class_embeddings_input_dim", 768)
    if projection % added_dim:
        raise LightvidError(f"{where}'projection_class_embeddings_input_dim' ({projection}) must be a multiple of "
                            f"'addition_time_embed_dim' ({added_dim})")
    return UNetConfig(
        in_channels=d.get("in_channels", 8), out_channels=d.get("out_channels", 4), channels=channels,
        layers_per_level=per_level("layers_per_block", 2),
        heads=per_level("num_attention_heads", (5, 10, 20, 20)),
        transformer_depth=per_level("transformer_layers_per_block", 1), attention=attention,
        temporal_attention=attention, temporal_conv=(True,) * levels, temporal_downsample=(False,) * levels,
        cross_attention_dim=cross[0], num_added_time_ids=projection // added_dim, added_time_embed_dim=added_dim,
        down_eps=tuple(1e-6 if a else 1e-5 for a in attention), mid_eps=1e-5, up_eps=1e-6)
