"""FrameSpec: the one description of a generation task.

A task is only *which frames and pixels are given*. Image-to-video gives frame 0, interpolation the
first and last frames, extension a prefix, a loop the same image at both ends; inpainting and
cinemagraphs add per-pixel masks. The pipeline builds the native model's input
concat(noisy video, given video, mask) from `spec.conditioning()` and never looks at a task name.

Pixels are float (3, H, W) in [-1, 1]. Masks are (1, H, W) in [0, 1] with 1 = pixel given,
0 = pixel to generate; a given frame without a mask is given entirely.

Seamless loops (MarDini's first = last): `loop(image, n)` describes an internal clip of n + 1 frames
with the image at index 0 *and* index n, so the model generates a clip that returns to its start;
`drop_last=True` tells `compose` to drop that duplicate, and the n output frames then play in a loop
without a repeated or a jumping frame.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.io.image import pil_to_tensor, resize_and_crop

MAX_FRAMES = 1024  # internal clip length cap: longer clips are generated in windows, not one spec
_RANGE_TOL = 1e-3  # given pixels may exceed [-1, 1] by this much (float noise), no more


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_frame(index: int, frame, what: str, channels: int) -> torch.Tensor:
    if not isinstance(frame, torch.Tensor) or not frame.is_floating_point():
        raise LightvidError(f"{what} {index} must be a float tensor, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[0] != channels:
        raise LightvidError(f"{what} {index} must have shape ({channels}, H, W), got {tuple(frame.shape)}")
    if not torch.isfinite(frame).all():
        raise LightvidError(f"{what} {index} contains NaN or infinite values")
    lo, hi = (-1.0, 1.0) if channels == 3 else (0.0, 1.0)
    if frame.numel() and (frame.min() < lo - _RANGE_TOL or frame.max() > hi + _RANGE_TOL):
        found = f"[{frame.min().item():.3g}, {frame.max().item():.3g}]"
        raise LightvidError(f"{what} {index} has values in {found}; expected [{lo:g}, {hi:g}]")
    return frame.detach() if frame.requires_grad else frame


@dataclass(frozen=True, eq=False)
class FrameSpec:
    """Which frames (and pixels) of a clip are given; the rest are generated.

    num_frames: length of the internal clip the model generates (1 .. MAX_FRAMES).
    fps: playback rate of the output.
    given: frame index -> (3, H, W) float in [-1, 1] (a dict or (index, frame) pairs; stored
      read-only, tensors not copied: do not modify them afterwards).
    masks: optional frame index -> (1, H, W) in [0, 1], 1 = given pixel; keys must be given frames.
    height, width: taken from the given frames; required when nothing is given.
    drop_last: the last internal frame is a loop's duplicate of frame 0 and is not output.
    """

    num_frames: int
    fps: float
    given: Mapping[int, torch.Tensor] = field(default_factory=dict)
    masks: Mapping[int, torch.Tensor] | None = None
    height: int | None = None
    width: int | None = None
    drop_last: bool = False

    def __post_init__(self) -> None:
        n = self.num_frames
        if not _is_int(n) or not 1 <= n <= MAX_FRAMES:
            raise LightvidError(f"num_frames must be an integer in [1, {MAX_FRAMES}], got {n!r}")
        fps = self.fps
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps > 0):
            raise LightvidError(f"fps must be a positive number, got {fps!r}")
        if self.drop_last and n < 2:
            raise LightvidError("drop_last needs an internal clip of at least 2 frames")
        given = self._checked(self.given, "given frame", channels=3)
        sizes = sorted({tuple(f.shape[-2:]) for f in given.values()})
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for h, w in sizes)
            raise LightvidError(f"given frames differ in size ({listed}); resize them to one size first")
        height, width = sizes[0] if sizes else (self.height, self.width)
        for name, explicit, derived in (("height", self.height, height), ("width", self.width, width)):
            if explicit is not None and explicit != derived:
                raise LightvidError(f"{name}={explicit} disagrees with the given frames' {name} {derived}")
            if not _is_int(derived) or derived < 1:
                raise LightvidError(f"{name} must be a positive integer (needed when nothing is given)")
        masks = None
        if self.masks is not None:
            masks = self._checked(self.masks, "mask of frame", channels=1)
            for i, m in masks.items():
                if i not in given:
                    raise LightvidError(
                        f"mask for frame {i}, which is not given; masks apply to given frames"
                    )
                if tuple(m.shape[-2:]) != (height, width):
                    h, w = m.shape[-2:]
                    raise LightvidError(f"mask of frame {i} is {w}x{h}; the frames are {width}x{height}")
            masks = MappingProxyType(masks)
        object.__setattr__(self, "num_frames", int(n))
        object.__setattr__(self, "fps", float(fps))
        object.__setattr__(self, "given", MappingProxyType(given))
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "height", int(height))
        object.__setattr__(self, "width", int(width))
        object.__setattr__(self, "drop_last", bool(self.drop_last))

    def _checked(self, frames, what: str, channels: int) -> dict[int, torch.Tensor]:
        items = frames.items() if isinstance(frames, Mapping) else frames
        out: dict[int, torch.Tensor] = {}
        for index, frame in items:
            if not _is_int(index) or not 0 <= index < self.num_frames:
                raise LightvidError(f"{what} index {index!r} is outside the clip [0, {self.num_frames - 1}]")
            if int(index) in out:
                raise LightvidError(f"{what} {index} is listed twice")
            out[int(index)] = _check_frame(index, frame, what, channels)
        return dict(sorted(out.items()))

    # -------------------------------------------------------------------------------------- queries

    @property
    def given_indices(self) -> tuple[int, ...]:
        """Indices of frames with given pixels (all of them, or those under a mask), sorted."""
        return tuple(self.given)

    @property
    def generated_indices(self) -> tuple[int, ...]:
        """Indices of frames with no given pixel, sorted (complement of `given_indices`)."""
        return tuple(i for i in range(self.num_frames) if i not in self.given)

    @property
    def output_frames(self) -> int:
        """Frames `compose` returns: num_frames, less a loop's dropped duplicate."""
        return self.num_frames - int(self.drop_last)

    def frame_mask(self) -> torch.Tensor:
        """(F,) bool, True where a frame has given pixels."""
        mask = torch.zeros(self.num_frames, dtype=torch.bool)
        for i in self.given:
            mask[i] = True
        return mask

    def conditioning(self, height: int | None = None, width: int | None = None):
        """The masked video and its mask, the conditioning half of the model input.

        Returns (video (F, 3, H, W) float32, zero wherever a pixel is not given, and mask
        (F, 1, H, W) float32, 1 = given). With height/width, the spec is `resized` first (e.g. for a
        low-resolution planner).
        """
        if height is not None or width is not None:
            return self.resized(height or self.height, width or self.width).conditioning()
        device = next(iter(self.given.values())).device if self.given else None
        f, h, w = self.num_frames, self.height, self.width
        video = torch.zeros(f, 3, h, w, device=device)  # (f, 3, h, w)
        mask = torch.zeros(f, 1, h, w, device=device)  # (f, 1, h, w)
        for i, frame in self.given.items():
            m = self.masks.get(i) if self.masks else None
            mask[i] = 1.0 if m is None else m.to(mask)
            video[i] = frame.to(video) * mask[i]
        return video, mask

    # ------------------------------------------------------------------------------------ transforms

    def resized(self, height: int, width: int) -> FrameSpec:
        """A spec at (height, width): given frames resized to cover it and center-cropped (bicubic,
        antialiased), masks the same way with nearest-exact sampling so they stay binary."""
        given = {i: resize_and_crop(f, height, width) for i, f in self.given.items()}
        masks = None
        if self.masks is not None:
            masks = {
                i: resize_and_crop(m, height, width, mode="nearest-exact") for i, m in self.masks.items()
            }
        return dataclasses.replace(self, given=given, masks=masks, height=height, width=width)

    def compose(self, generated: torch.Tensor) -> torch.Tensor:
        """Final frames: `generated` (..., F, 3, H, W) with the given pixels pasted back exactly.

        Given frames without a mask are copied bit for bit; masked ones are blended
        mask * given + (1 - mask) * generated (exact where the mask is 0 or 1). A loop's duplicate
        last frame is dropped, so the result has `output_frames` frames.
        """
        expected = (self.num_frames, 3, self.height, self.width)
        is_tensor = isinstance(generated, torch.Tensor)
        if not is_tensor or generated.ndim < 4 or tuple(generated.shape[-4:]) != expected:
            got = tuple(generated.shape) if is_tensor else type(generated).__name__
            need = ", ".join(map(str, expected))
            raise LightvidError(f"generated frames have shape {got}; this spec needs (..., {need})")
        out = generated.clone()
        for i, frame in self.given.items():
            frame = frame.to(out)
            m = self.masks.get(i) if self.masks else None
            if m is None:
                out[..., i, :, :, :] = frame
            else:
                m = m.to(out)
                out[..., i, :, :, :] = m * frame + (1 - m) * out[..., i, :, :, :]
        return out[..., : self.output_frames, :, :, :]

    def describe(self) -> str:
        """One line for logs, e.g. '16 frames @ 8 fps, 64x48; given [0, 16]; 15 generated; loop'."""
        given = _ranges(self.given_indices) if self.given else "none"
        parts = [
            f"{self.output_frames} frames @ {self.fps:g} fps, {self.width}x{self.height}",
            f"given [{given}]",
            f"{len(self.generated_indices)} generated",
        ]
        if self.masks:
            parts.append(f"masked [{_ranges(tuple(self.masks))}]")
        if self.drop_last:
            parts.append(f"loop (internal {self.num_frames}, last dropped)")
        return "; ".join(parts)


def _ranges(indices: Sequence[int]) -> str:
    """(0, 1, 2, 5) -> '0-2, 5'."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


# ------------------------------------------------------------------------------------------ tasks


def _as_frame(image, what: str) -> torch.Tensor:
    """PIL image or (3, H, W) tensor in [-1, 1] -> (3, H, W) float tensor."""
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    if isinstance(image, torch.Tensor):
        return image
    raise LightvidError(f"{what} must be a PIL image or a (3, H, W) tensor, got {type(image).__name__}")


def animate(image, num_frames: int, fps: float, index: int = 0) -> FrameSpec:
    """Animate one image: it is frame `index` (negative counts from the end) of `num_frames`."""
    if _is_int(index) and _is_int(num_frames) and -num_frames <= index < 0:
        index += num_frames
    return FrameSpec(num_frames, fps, {index: _as_frame(image, "image")})


def interpolate(first, last, num_frames: int, fps: float) -> FrameSpec:
    """In-between frames: `first` at 0, `last` at num_frames - 1 (num_frames counts both ends)."""
    if not _is_int(num_frames) or num_frames < 3:
        raise LightvidError(f"interpolation needs num_frames >= 3 (both ends included), got {num_frames!r}")
    return FrameSpec(num_frames, fps, {0: _as_frame(first, "first"), num_frames - 1: _as_frame(last, "last")})


def extend(frames, num_new: int, fps: float) -> FrameSpec:
    """Continue a clip: `frames` ((F, 3, H, W) tensor or a list of images) come first, then
    `num_new` generated frames; the clip has len(frames) + num_new frames."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4:
            raise LightvidError(f"frames to extend must be (F, 3, H, W), got shape {tuple(frames.shape)}")
        frames = list(frames)
    frames = [_as_frame(f, "frame to extend") for f in frames]
    if not frames:
        raise LightvidError("extension needs at least one given frame")
    if not _is_int(num_new) or num_new < 1:
        raise LightvidError(f"num_new must be an integer >= 1, got {num_new!r}")
    return FrameSpec(len(frames) + num_new, fps, dict(enumerate(frames)))


def loop(image, num_frames: int, fps: float) -> FrameSpec:
    """A seamless loop of `num_frames` output frames starting at `image`.

    Internally num_frames + 1 frames with the image at 0 and at num_frames (first = last); the
    duplicate is dropped by `compose` (drop_last=True), so frame num_frames - 1 leads back to frame 0.
    """
    if not _is_int(num_frames) or not 2 <= num_frames < MAX_FRAMES:
        raise LightvidError(f"a loop needs num_frames in [2, {MAX_FRAMES - 1}], got {num_frames!r}")
    frame = _as_frame(image, "image")
    return FrameSpec(num_frames + 1, fps, {0: frame, num_frames: frame}, drop_last=True)


def _region(region, what: str) -> torch.Tensor:
    if not isinstance(region, torch.Tensor) or not region.is_floating_point() or region.ndim != 3:
        got = tuple(region.shape) if isinstance(region, torch.Tensor) else type(region).__name__
        raise LightvidError(f"{what} must be a float (1, H, W) tensor, 1 = regenerate, got {got}")
    return region


def inpaint(frames: torch.Tensor, regions: torch.Tensor, fps: float) -> FrameSpec:
    """Regenerate a region of every frame: frames (F, 3, H, W) in [-1, 1]; regions (F, 1, H, W) or one (1, H, W) for
    every frame, in [0, 1], 1 = regenerate (a user's white). Every pixel outside the region is given."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        raise LightvidError(f"frames to inpaint must be an (F, 3, H, W) tensor, got "
                            f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
    if isinstance(regions, torch.Tensor) and regions.ndim == 3:
        regions = regions.expand(frames.shape[0], *regions.shape)
    if not isinstance(regions, torch.Tensor) or regions.ndim != 4 or regions.shape[0] != frames.shape[0]:
        got = tuple(regions.shape) if isinstance(regions, torch.Tensor) else type(regions).__name__
        raise LightvidError(f"regions must be (1, H, W) or one per frame ({frames.shape[0]}, 1, H, W), got {got}")
    masks = {i: 1 - _region(r, f"region {i}") for i, r in enumerate(regions)}
    return FrameSpec(frames.shape[0], fps, dict(enumerate(frames)), masks)


def cinemagraph(image, region: torch.Tensor, num_frames: int, fps: float) -> FrameSpec:
    """Animate only a region of one image: frame 0 is the image; frames 1 .. num_frames - 1 give the image outside
    `region` (1, H, W) in [0, 1] (1 = animate), so every pixel outside it stays the image's in every frame."""
    if not _is_int(num_frames) or num_frames < 2:
        raise LightvidError(f"a cinemagraph needs num_frames >= 2, got {num_frames!r}")
    frame = _as_frame(image, "image")
    keep = 1 - _region(region, "region")
    return FrameSpec(num_frames, fps, dict.fromkeys(range(num_frames), frame),
                     {i: keep for i in range(1, num_frames)})
