"""`MarDiniConfig`: the architecture of a MarDini network (planner + generator), as plain JSON-able fields.

The network reads what a native SpaceTimeUNet reads (lightvid.models.native): the conditioning's input channels with
p×p pixel patches folded in, (b, f, in_channels, h/p, w/p). Where the parts of a frame lie in those channels follows
from `data_channels` (c) and `patch` (p), which the training config derives from the pipeline settings:
  noisy frame   channels [0, c·p²)
  conditioning  channels [c·p², in_channels): the given frame (or its hint) first, then its mask, ... (lightvid.
                conditioning.layout: the mask is unfolded channel 2c in every hint mode)
"""
from dataclasses import asdict, dataclass, fields

from lightvid.errors import LightvidError

from .config import MAX_DEPTH, MAX_WIDTH, check_fields, short_repr

FAMILY = "mardini"  # the `family` key of a training config's model section (and of MarDiniConfig.to_dict)
_WIDTH, _DEPTH = ("int", 1, MAX_WIDTH), ("int", 1, MAX_DEPTH)
FIELD_RULES = {
    "in_channels": _WIDTH, "out_channels": _WIDTH, "data_channels": ("int", 1, 3), "patch": ("int", 1, 64),
    "planner_dim": _WIDTH, "planner_depth": _DEPTH, "planner_heads": _WIDTH, "planner_patch": ("int", 1, 64),
    "dim": _WIDTH, "depth": _DEPTH, "heads": _WIDTH, "generator_patch": ("int", 1, 64),
    "mlp_ratio": ("number", 0, 16), "null_probability": ("number", float("-inf"), float("inf")),
    "identity_attention": ("bool",),
}


@dataclass
class MarDiniConfig:
    in_channels: int = 8
    out_channels: int = 3
    data_channels: int = 3
    patch: int = 1
    # The planner: Llama-style blocks over tokens of planner_patch² folded pixels (low resolution), full
    # spatio-temporal attention. Heavy: it runs once per generated clip, not once per sampling step.
    planner_dim: int = 192
    planner_depth: int = 4
    planner_heads: int = 4
    planner_patch: int = 4
    # The generator: DiT-style blocks over tokens of generator_patch² folded pixels (high resolution), spatial then
    # temporal attention, cross-attention to the frame's planning tokens. Light: it runs at every step.
    dim: int = 128
    depth: int = 4
    heads: int = 4
    generator_patch: int = 2
    mlp_ratio: float = 4.0
    # Training only: the probability that a clip's planning signal is swapped for the learned null signal
    # (classifier-free guidance over the plan, MarDini's 0.1).
    null_probability: float = 0.1
    # Reference tokens attend only to themselves (MarDini: without it, training does not converge).
    identity_attention: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        check_fields(asdict(self), FIELD_RULES, "MarDini config: ")
        if not 0 <= self.null_probability < 1:
            raise LightvidError(f"MarDini config: null_probability must be in [0, 1), got {self.null_probability}")
        for dim, heads, name in ((self.planner_dim, self.planner_heads, "planner"), (self.dim, self.heads, "")):
            width = dim // heads
            if dim % heads or width % 2:
                raise LightvidError(f"MarDini config: {name + '_' if name else ''}dim {dim} must be divisible by "
                                    f"{name + '_' if name else ''}heads {heads} into an even head width")
        if self.planner_dim // self.planner_heads < 6:
            raise LightvidError("MarDini config: the planner's head width (planner_dim / planner_heads) must be at "
                                "least 6 (its rotary embedding splits it over time, height and width)")
        folded = self.data_channels * self.patch ** 2
        if self.in_channels < 2 * folded + self.patch ** 2 or self.out_channels < folded:
            raise LightvidError(f"MarDini config: in/out channels {self.in_channels}/{self.out_channels} cannot hold "
                                f"a noisy frame, a given frame and a mask of {self.data_channels} channels in "
                                f"{self.patch}x{self.patch} patches")

    @property
    def noisy_channels(self) -> int:
        """Folded channels of the noisy frame, which come first."""
        return self.data_channels * self.patch ** 2

    @property
    def mask_channels(self) -> slice:
        """Folded channels of the mask (1 where a pixel is given)."""
        start = 2 * self.data_channels * self.patch ** 2
        return slice(start, start + self.patch ** 2)

    def to_dict(self) -> dict:
        return {"family": FAMILY, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "MarDiniConfig":
        if not isinstance(d, dict):
            raise LightvidError(f"MarDini config: must be a JSON object of its fields, got {short_repr(d)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"family", "_class_name", "lightvid_version"})
        if unknown:
            raise LightvidError(f"MarDini config: unknown keys {unknown}; accepted: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})
