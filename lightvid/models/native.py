"""Native conditioning: one network for every task, told through its input channels which frames are given.

Four input layouts, per frame (`UNetConfig.conditioning`):
- "native": [noisy frame (c) ‖ given frame, zeros where not given (c) ‖ mask (1)], `in_channels = 2c + 1`
  (Lumiere's (noisy, masked video, mask) conditioning). A generated frame sees given content only through
  the temporal layers.
- "native_nearest": [noisy frame (c) ‖ nearest given frame (c) ‖ mask (1) ‖ hinted (1) ‖ offset (1)],
  `in_channels = 2c + 3`. Every pixel also sees the value of the temporally nearest frame that gives that pixel
  (SVD concatenates its conditioning image to every frame the same way), `hinted` says whether any frame gives
  it and `offset` how many frames away that one is (signed, / OFFSET_FRAMES). A generated frame then only
  has to move nearby content rather than fetch it through temporal attention at coarse resolution; this is
  what lets a CPU-sized photo model keep a photo's detail across 16 frames.
- "native_flow": the same channels, but a frame between two given frames (whole frames) gets their optical-flow
  interpolation as its hint (OpenCV Farneback, the `farneback` baseline of lightvid.eval) instead of the nearer
  of the two, with offset 0 (the hint is already at the frame's time). Interpolation then starts from what flow
  alone achieves and the network corrects it (flow-guided refinement, as learned frame interpolators do); frames
  with a given frame on one side only, and per-pixel masks, keep the nearest given frame.
- "native_flow_blend": native_flow plus [from_b - from_a (c) ‖ inside_a ‖ inside_b ‖ w] (`in_channels = 3c + 6`),
  the parts of each flow hint: the two given frames warped to the frame's time, where each warp samples inside
  its frame, and w, the weight of from_b. The fixed (1 - t, t) blend of the Farneback baseline does no occlusion
  reasoning (a warp that samples outside its frame repeats a border pixel); here the hint is the
  `farneback_visible` baseline instead (w = t where both warps stay inside their frames, 0 or 1 where one
  leaves, FlowWarp.visible_weight), and the network outputs one more channel, a logit that reweighs the two
  warps per pixel beyond that, as Super SloMo's visibility maps do:
  x0 = hint + residual + (sigmoid(logit(w) + logit) - sigmoid(logit(w)))·(from_b - from_a).
  A zero logit gives the hint; `widen_for_blend` adds the new channels with zero weights. hint_residual only.
The flow behind native_flow and native_flow_blend hints is `UNetConfig.flow`: plain Farneback, or
"farneback_global", Farneback after the camera's affine motion (fitted to keypoint matches) is compensated, which
follows camera moves of tens of pixels that plain Farneback loses (lightvid.eval.baselines.global_motion_flow).
The mask is 1 where pixels are given (whole frames, or parts of frames for inpainting). Tasks differ only in
the mask: image-to-video, interpolation, extension, loops (MarDini's any-frames masking).

Pixel-space models may fold p×p pixel patches into channels first (space-to-depth, exact and invertible): the
UNet then runs at 1/p the resolution with p² times the channels — a free "autoencoder" that cuts the cost of the
full-resolution levels by p².
"""
from dataclasses import replace

import numpy as np
import torch
from einops import rearrange
from torch import nn

from lightvid.errors import LightvidError

from .unet import SpaceTimeUNet

OFFSET_FRAMES = 8.0  # frame offsets are fed divided by this: about unit range for 16-frame clips
NATIVE_MODES = ("native", "native_nearest", "native_flow", "native_flow_blend")
HINTED_MODES = ("native_nearest", "native_flow", "native_flow_blend")  # a nearest-given or flow hint
SWITCHABLE_MODES = ("native_nearest", "native_flow")  # the same input channels: a model may switch between them


def flow_hint(given: torch.Tensor, mask: torch.Tensor, hint: torch.Tensor, offset: torch.Tensor,
              visible: bool = False, flow: str = "farneback") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hint, offset, blend) with every frame that lies between two given frames hinted by their Farneback
    interpolation (the `farneback` baseline; with visible=True, `farneback_visible`; with visible=True and
    flow="farneback_global", `farneback_global`). flow: one of lightvid.eval.baselines.FLOWS.

    given, hint: (b, f, c, h, w); mask, offset: (b, f, 1, h, w), as nearest_given returns them. Only clips whose
    mask gives whole frames, at least two, are changed (flow needs whole frames on both sides); the rest keep
    their nearest-given hint. A flow-hinted frame's offset becomes 0: its hint is estimated at the frame's own
    time, so nothing is left to move by the distance to a given frame (with that distance in the offset, the
    network moved the flow interpolation again, as it must move a copied frame).
    blend: (b, f, c + 3, h, w), what a "native_flow_blend" network reads to reweigh the two warps that make a
    flow hint: [from_b - from_a (c) ‖ inside_a ‖ inside_b ‖ w], w the weight the hint gives from_b (t, or
    FlowWarp.visible_weight with visible=True), zeros on frames without a flow hint (see
    lightvid.eval.baselines.FlowWarp). The flow is not differentiable and needs no gradient: it reads given
    frames only.
    """
    from lightvid.eval.baselines import farneback_warps  # eval imports nothing from models: no import cycle

    hint, offset = hint.clone(), offset.clone()
    c = hint.shape[2]
    blend = hint.new_zeros((*hint.shape[:2], c + 3, *hint.shape[3:]))
    for b in range(given.shape[0]):
        per_frame = mask[b].flatten(1)  # (f, 1·h·w)
        whole = bool((per_frame.amax(1) == per_frame.amin(1)).all())
        flags = per_frame[:, 0] > 0.5  # (f,) bool
        if not whole or int(flags.sum()) < 2:
            continue
        for i, warp in farneback_warps(given[b].detach().float(), flags, flow).items():
            weight = warp.visible_weight() if visible else np.full_like(warp.inside_a, warp.t)  # (h, w)
            frame = warp.visible_blend() if visible else warp.blend()  # (h, w, c): the baseline's frame exactly
            hint[b, i] = torch.from_numpy(frame).permute(2, 0, 1).to(hint)
            spread = warp.from_b - warp.from_a  # (h, w, c)
            parts = np.concatenate([spread, np.stack([warp.inside_a, warp.inside_b, weight], -1)], -1)
            blend[b, i] = torch.from_numpy(parts).permute(2, 0, 1).to(blend)  # (c + 3, h, w)
            offset[b, i] = 0
    return hint, offset, blend


def nearest_given(given: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every frame and pixel, the given value of the nearest frame that gives that pixel.

    given: (b, f, c, h, w), zeros where not given; mask: (b, f, 1, h, w) in {0, 1}. Returns (hint like given,
    hinted (b, f, 1, h, w) in {0, 1}, offset (b, f, 1, h, w) = source frame - frame, in frames). At equal
    distance the earlier frame wins. O(f) passes, no (f × f) tensor: masks may differ per pixel.
    """
    hint, hinted, offset = torch.zeros_like(given), torch.zeros_like(mask), torch.zeros_like(mask)
    f = given.shape[1]
    for distance in range(f):
        for shift in (-distance, distance) if distance else (0,):
            # frames t whose source t + shift exists: t in [lo, hi)
            lo, hi = max(0, -shift), min(f, f - shift)
            if lo >= hi:
                continue
            take = mask[:, lo + shift:hi + shift] * (1 - hinted[:, lo:hi])  # given there, not yet hinted here
            hint[:, lo:hi] += take * given[:, lo + shift:hi + shift]
            offset[:, lo:hi] += take * shift
            hinted[:, lo:hi] += take
    return hint, hinted, offset


# What a native model's network outputs (pipeline.json / DiffusionConfig "prediction") -> the Denoiser's
# parameterisation. "hint_residual" is x0-prediction relative to the hint: the network outputs x0 - hint, so a
# generated frame starts as an exact copy of its nearest given frame (or flow interpolation, "native_flow") and
# the network adds the change. Only for models with a hint (HINTED_MODES); lightvid/train/objective.py says why.
PREDICTIONS = {"edm": "edm", "x0": "x0", "hint_residual": "x0"}


class NativeNet(nn.Module):
    """Adapts a native SpaceTimeUNet to the Denoiser signature `net(x_in, c_noise, given, mask)`.

    hint_skip: add the hint to the output ("hint_residual" prediction; needs a mode of HINTED_MODES; a
    native_flow_blend network also reweighs its flow warps, see the module docstring)."""

    def __init__(self, unet: SpaceTimeUNet, patch: int = 1, hint_skip: bool = False):
        super().__init__()
        if hint_skip and unet.config.conditioning not in HINTED_MODES:
            raise LightvidError("hint_residual prediction needs a 'native_nearest', 'native_flow' or "
                                "'native_flow_blend' model (the hint is its input)")
        self.unet, self.patch, self.hint_skip = unet, patch, hint_skip
        self._last_hint = None  # (given, mask, _hint's tuple) of the last call, see _hint

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, given: torch.Tensor, mask: torch.Tensor):
        # x_in, given: (b, f, c, h, w); mask: (b, f, 1, h, w) in {0, 1}. Given pixels come in clean through
        # `given`; their noisy copy is zeroed so training and sampling see the same input whatever the sampler
        # state holds there (it is never trained and is replaced by the given pixels at the end).
        blending = self.unet.config.conditioning == "native_flow_blend"
        if blending and not self.hint_skip:  # (a discriminator may still read its unet_input and encoder)
            raise LightvidError("a 'native_flow_blend' model needs hint_residual prediction (its extra output "
                                "channel reweighs the flow hint)")
        sample, hint = self._inputs(x_in, given, mask)
        out = self.unet(sample, c_noise).float()
        p = self.patch
        out = rearrange(out, "b f (c p q) h w -> b f c (h p) (w q)", p=p, q=p)
        if not blending:
            return out + hint if self.hint_skip else out
        blend = self._hint(given, mask)[3]  # (b, f, c + 3, h, w), cached: [spread ‖ inside_a ‖ inside_b ‖ w]
        spread, logit_w = blend[:, :, :-3], torch.logit(blend[:, :, -1:], eps=1e-6)  # w in {0, 1} stays finite
        change = torch.sigmoid(logit_w + out[:, :, -1:]) - torch.sigmoid(logit_w)  # exactly 0 at a zero logit
        # spread is 0 on frames without a flow hint: their output is hint + residual
        return hint + out[:, :, :-1] + change * spread

    def unet_input(self, x_in: torch.Tensor, given: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The conditioning layout of the model's config, p×p patches folded into channels: (b, f, c_in, h/p, w/p)."""
        return self._inputs(x_in, given, mask)[0]

    def start(self, given: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Where sampling starts before noise is added, (b, f, c, h, w): the hint for a hint_residual network
        (it diffuses the change from the hint, so its prior mean is the hint), else zeros."""
        return self._hint(given, mask)[0] if self.hint_skip else torch.zeros_like(given)

    def _hint(self, given, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # A sampler calls the net 4-49 times with the same `given` and `mask` objects, and the flow warps alone cost
        # ~15 ms (plain Farneback) to ~40 ms (farneback_global) per 16-frame clip with two given frames: the last
        # result is kept, keyed by tensor identity (a new batch is new tensors).
        cached = self._last_hint
        if cached is not None and cached[0] is given and cached[1] is mask:
            return cached[2]
        hint, hinted, offset = nearest_given(given, mask)
        blend = None
        if self.unet.config.conditioning in ("native_flow", "native_flow_blend"):
            hint, offset, blend = flow_hint(given, mask, hint, offset, flow=self.unet.config.flow,
                                            visible=self.unet.config.conditioning == "native_flow_blend")
        self._last_hint = (given, mask, (hint, hinted, offset, blend))
        return hint, hinted, offset, blend

    def _inputs(self, x_in, given, mask) -> tuple[torch.Tensor, torch.Tensor | None]:
        hint = None
        if self.unet.config.conditioning in HINTED_MODES:
            hint, hinted, offset, blend = self._hint(given, mask)
            parts = [x_in * (1 - mask), hint, mask, hinted, offset / OFFSET_FRAMES]
            if self.unet.config.conditioning == "native_flow_blend":
                parts.append(blend)
            sample = torch.cat(parts, dim=2)
        else:
            sample = torch.cat([x_in * (1 - mask), given, mask], dim=2)
        p = self.patch
        sample = rearrange(sample, "b f c (h p) (w q) -> b f (c p q) h w", p=p, q=p)
        return sample.to(next(self.unet.parameters()).dtype), hint


def native_channels(data_channels: int, patch: int = 1, conditioning: str = "native") -> tuple[int, int]:
    """(in_channels, out_channels) of a native UNet for `data_channels`-channel frames and p×p patches."""
    if conditioning == "native_flow_blend":  # + [spread (c) ‖ inside_a ‖ inside_b ‖ w] in, + a blend logit out
        return (3 * data_channels + 6) * patch ** 2, (data_channels + 1) * patch ** 2
    extra = 3 if conditioning in HINTED_MODES else 1
    return (2 * data_channels + extra) * patch ** 2, data_channels * patch ** 2


def widen_for_blend(unet: SpaceTimeUNet, data_channels: int, patch: int) -> SpaceTimeUNet:
    """A native_flow_blend copy of a native_nearest / native_flow network: the same residual, a zero logit.

    The new input channels (appended after the old ones, in the same (c p q) channel order) get zero weights, and
    the blend logit's output rows zero weights and bias: fed the same hint, it outputs the old network's x0. Its
    own hint differs from a native_flow hint only where a warp leaves its frame (farneback_visible drops it).
    """
    if unet.config.conditioning not in SWITCHABLE_MODES:
        raise LightvidError(f"only a native_nearest or native_flow model can be widened for flow blending, "
                            f"not '{unet.config.conditioning}'")
    in_channels, out_channels = native_channels(data_channels, patch, "native_flow_blend")
    config = replace(unet.config, conditioning="native_flow_blend", in_channels=in_channels,
                     out_channels=out_channels)
    wide = SpaceTimeUNet(config)
    state = unet.state_dict()
    for name in ("conv_in.weight", "conv_out.weight", "conv_out.bias"):
        old = state[name]
        grown = torch.zeros_like(wide.state_dict()[name])
        grown[tuple(slice(0, n) for n in old.shape)] = old
        state[name] = grown
    wide.load_state_dict(state)
    return wide.to(next(unet.parameters()).dtype)
