"""`Conditioning`: what a native network reads besides its noisy frames, and how its output is read back.

Four independent choices, stored in a model folder's pipeline.json:
  hint          "none", "nearest" or "flow": where a frame's estimate from the given frames comes from (hints.py)
  flow          the flow behind a "flow" hint: a name of lightvid.conditioning.flows.FLOWS
  warp_weights  how a flow hint blends its two warps: "linear" ((1 - t, t)) or "visible" (a warp that samples
                outside its frame gets weight 0 and the other warp is used alone)
  warp_inputs   the network also reads the warps' parts and outputs one more channel, a logit that reweighs
                the two warps per pixel (as Super SloMo's visibility maps do)

The network's input, per frame, in this channel order (c = data channels; before p×p patches are folded in):
  noisy frame (c) ‖ given frame, zeros where not given (c) ‖ mask (1)                     hint "none"
  noisy frame (c) ‖ hint (c) ‖ mask (1) ‖ hinted (1) ‖ offset / OFFSET_FRAMES (1)         hint "nearest" / "flow"
  ... ‖ from_b - from_a (c) ‖ inside_a (1) ‖ inside_b (1) ‖ w (1)                          + warp_inputs
"none" is Lumiere's (noisy video, masked video, mask) conditioning; the mask is 1 where pixels are given, so
tasks differ only in the mask (MarDini's any-frames masking). `hinted` says whether any frame gives the pixel,
`offset` how many frames away that one is (signed).

The network's output (`PREDICTIONS`): "edm" (EDM's F), "x0" (the clean clip) or "hint_residual": x0 - hint, so a
generated frame starts as its hint and the network adds the change. With warp_inputs the output has one more
channel, a logit ℓ, and x0 = hint + residual + (sigmoid(logit(w) + ℓ) - sigmoid(logit(w)))·(from_b - from_a):
a zero logit gives the hint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch

from lightvid.errors import LightvidError

from .flows import FLOWS
from .hints import flow_hint, nearest_given

HINTS = ("none", "nearest", "flow")
WARP_WEIGHTS = ("linear", "visible")
OFFSET_FRAMES = 8.0  # frame offsets are fed divided by this: about unit range for 16-frame clips
# what a network outputs -> the Denoiser's parameterisation (hint_residual is x0 relative to the hint)
PREDICTIONS = {"edm": "edm", "x0": "x0", "hint_residual": "x0"}
# the conditioning key of older model folders' config.json -> today's choices
LEGACY_MODES = {"native": {}, "native_nearest": {"hint": "nearest"}, "native_flow": {"hint": "flow"},
                "native_flow_blend": {"hint": "flow", "warp_weights": "visible", "warp_inputs": True}}


class Hints(NamedTuple):
    """What the conditioning derives from (given, mask): hint (b, f, c, h, w); hinted, offset (b, f, 1, h, w);
    warps (b, f, c + 3, h, w) for a flow hint, else None (see hints.flow_hint)."""

    hint: torch.Tensor
    hinted: torch.Tensor
    offset: torch.Tensor
    warps: torch.Tensor | None


@dataclass(frozen=True)
class Conditioning:
    hint: str = "none"
    flow: str = "farneback"
    warp_weights: str = "linear"
    warp_inputs: bool = False

    def __post_init__(self):
        if self.hint not in HINTS:
            raise LightvidError(f"conditioning: hint {self.hint!r} is not one of {', '.join(HINTS)}")
        if self.flow not in FLOWS:
            raise LightvidError(f"conditioning: flow {self.flow!r} is not one of {', '.join(FLOWS)}")
        if self.warp_weights not in WARP_WEIGHTS:
            raise LightvidError(f"conditioning: warp_weights {self.warp_weights!r} is not one of "
                                f"{', '.join(WARP_WEIGHTS)}")
        if not isinstance(self.warp_inputs, bool):
            raise LightvidError(f"conditioning: warp_inputs must be true or false, got {self.warp_inputs!r}")
        if self.hint != "flow" and (self.flow, self.warp_weights, self.warp_inputs) != ("farneback", "linear", False):
            raise LightvidError("conditioning: flow, warp_weights and warp_inputs apply to hint 'flow' only")

    @classmethod
    def from_dict(cls, d) -> Conditioning:
        if not isinstance(d, dict):
            raise LightvidError(f"conditioning must be a mapping of {', '.join(f.name for f in fields(cls))}, "
                                f"got {d!r}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise LightvidError(f"conditioning: unknown key(s) {unknown}; accepted: "
                                f"{', '.join(f.name for f in fields(cls))}")
        return cls(**d)

    @classmethod
    def from_legacy(cls, mode: str, flow: str = "farneback") -> Conditioning:
        """The choices behind an older model folder's config.json `conditioning` mode and `flow`."""
        if mode not in LEGACY_MODES:
            raise LightvidError(f"config.json: conditioning {mode!r} is not a native model's (accepted: "
                                f"{', '.join(LEGACY_MODES)})")
        choices = LEGACY_MODES[mode]
        return cls(**choices, **({"flow": flow} if choices.get("hint") == "flow" else {}))

    def to_dict(self) -> dict:
        return asdict(self)

    def check_prediction(self, prediction: str) -> None:
        """The one place that says which network outputs go with which inputs."""
        if prediction not in PREDICTIONS:
            raise LightvidError(f"prediction {prediction!r} is not one of {', '.join(PREDICTIONS)}")
        if prediction == "hint_residual" and self.hint == "none":
            raise LightvidError("prediction 'hint_residual' needs a hint (conditioning hint 'nearest' or 'flow')")
        if self.warp_inputs and prediction != "hint_residual":
            raise LightvidError("conditioning warp_inputs needs prediction 'hint_residual' (its extra output "
                                "channel reweighs the flow hint)")

    def channels(self, data_channels: int, patch: int = 1) -> tuple[int, int]:
        """(in_channels, out_channels) of the network for `data_channels`-channel frames in p×p patches."""
        c = data_channels
        extra = 3 if self.hint != "none" else 1
        warp_parts = c + 3 if self.warp_inputs else 0
        return (2 * c + extra + warp_parts) * patch ** 2, (c + int(self.warp_inputs)) * patch ** 2

    def hints(self, given: torch.Tensor, mask: torch.Tensor) -> Hints:
        """given: (b, f, c, h, w), zeros where not given; mask: (b, f, 1, h, w) in {0, 1}."""
        if self.hint == "none":  # the network reads the given frames themselves
            return Hints(given, mask, torch.zeros_like(mask), None)
        hint, hinted, offset = nearest_given(given, mask)
        warps = None
        if self.hint == "flow":
            hint, offset, warps = flow_hint(given, mask, hint, offset, self.flow, self.warp_weights == "visible")
        return Hints(hint, hinted, offset, warps)

    def network_input(self, x_in: torch.Tensor, given: torch.Tensor, mask: torch.Tensor, hints: Hints) -> torch.Tensor:
        """(b, f, c_in, h, w) in the order of the module docstring. Given pixels come in clean through `given` or the
        hint; their noisy copy is zeroed so training and sampling see the same input whatever the sampler state
        holds there (it is never trained and is replaced by the given pixels at the end)."""
        if self.hint == "none":
            return torch.cat([x_in * (1 - mask), given, mask], dim=2)
        parts = [x_in * (1 - mask), hints.hint, mask, hints.hinted, hints.offset / OFFSET_FRAMES]
        if self.warp_inputs:
            parts.append(hints.warps)
        return torch.cat(parts, dim=2)

    def read_output(self, out: torch.Tensor, hints: Hints, prediction: str) -> torch.Tensor:
        """The network's output (b, f, c_out, h, w) -> what the Denoiser's parameterisation expects (b, f, c, h, w)."""
        if prediction != "hint_residual":
            return out
        if not self.warp_inputs:
            return hints.hint + out
        spread, w = hints.warps[:, :, :-3], hints.warps[:, :, -1:]  # spread is 0 on frames without a flow hint
        logit_w = torch.logit(w, eps=1e-6)  # w in {0, 1} stays finite
        change = torch.sigmoid(logit_w + out[:, :, -1:]) - torch.sigmoid(logit_w)  # exactly 0 at a zero logit
        return hints.hint + out[:, :, :-1] + change * spread

    def start(self, hints: Hints, prediction: str) -> torch.Tensor:
        """Where sampling starts before noise is added: the hint for a hint_residual network (it diffuses the change
        from the hint, so its prior mean is the hint), else zeros."""
        return hints.hint if prediction == "hint_residual" else torch.zeros_like(hints.hint)
