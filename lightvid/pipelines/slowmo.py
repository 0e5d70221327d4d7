"""Hierarchical slow motion (MarDini, arXiv 2410.20280, §4 "hierarchical autoregressive slow motion"): a clip made F
times denser by recursive frame interpolation with one native model.

Every level multiplies the frame count by a power of two k that fits the model's window W (k + 1 <= W), filling
k - 1 frames into every gap between two known frames. A window holds as many consecutive known frames as fit (at
spacing k, the frames between them generated), so the model sees more context than one pair: with W = 16 and k = 2,
8 known frames at the even positions of a 15-frame window, 7 made between them. Consecutive windows share their
boundary known frame and cover every gap exactly once; each level's known frames are the frames of the level before,
so every input frame comes back unchanged (bit for bit) at output index i * F.

`slowmo_plan` is the plan (a pure function, unit-tested); `slow_motion` samples it.
"""
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from lightvid.errors import LightvidError
from lightvid.tasks import FrameSpec
from lightvid.tasks.framespec import MAX_FRAMES

from .native import NativePipeline

FACTORS = (2, 4, 8, 16, 32, 64)  # the slow-motion factors: powers of two


class SlowmoWindow(NamedTuple):
    """One window of a level: output frames start .. start + known[-1] of that level; `known` are the offsets in
    the window of its known frames (0, k, 2k, ...), every other frame of the window is generated."""
    start: int
    known: tuple[int, ...]

    @property
    def length(self) -> int:
        return self.known[-1] + 1


class SlowmoLevel(NamedTuple):
    """One level of the plan: `factor` k (frames per gap after it), `frames` after it ((n - 1) * k + 1 for n
    before), and the windows that make them."""
    factor: int
    frames: int
    windows: tuple[SlowmoWindow, ...]


def check_factor(factor, what: str = "factor") -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor not in FACTORS:
        raise LightvidError(f"{what} must be a power of 2 from {FACTORS[0]} to {FACTORS[-1]} "
                            f"({', '.join(map(str, FACTORS))}), got {factor!r}")
    return factor


def output_frames(num_frames: int, factor: int) -> int:
    """Frames of the slow-motion clip of `num_frames` frames: (num_frames - 1) * factor + 1."""
    return (num_frames - 1) * factor + 1


def slowmo_plan(num_frames: int, factor: int, window: int) -> list[SlowmoLevel]:
    """The levels that make `num_frames` frames `factor` (a power of 2) times denser with a model of `window` frames.

    Each level takes k = the largest power of 2 with k + 1 <= window and k <= the factor still to make (so the
    levels' factors multiply to `factor`, coarse first). A window holds up to p = (window - 1) // k gaps (p + 1
    known frames at spacing k, p * k + 1 frames); a level's n - 1 gaps are split into ceil((n - 1) / p) windows of
    as equal a number of gaps as possible (the longer ones first), consecutive windows sharing one known frame.
    E.g. 9 frames, factor 8, window 5: x4 in 8 windows of 1 gap (5 frames each), then x2 in 8 windows of 2 gaps.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2:
        raise LightvidError(f"slow motion needs at least 2 frames (it makes the frames between them), got "
                            f"{num_frames!r}")
    check_factor(factor)
    if isinstance(window, bool) or not isinstance(window, int) or window < 3:
        raise LightvidError(f"slow motion needs a model window of at least 3 frames (two known frames and one "
                            f"between), got {window!r}")
    levels, frames, remaining = [], num_frames, factor
    while remaining > 1:
        k = min(remaining, 1 << ((window - 1).bit_length() - 1))  # largest power of 2 <= window - 1
        gaps, most = frames - 1, (window - 1) // k
        count = -(-gaps // most)
        sizes = [gaps // count + (i < gaps % count) for i in range(count)]
        windows, first = [], 0  # first: the window's first known frame, in the level's input frames
        for size in sizes:
            windows.append(SlowmoWindow(first * k, tuple(range(0, size * k + 1, k))))
            first += size
        frames, remaining = output_frames(frames, k), remaining // k
        levels.append(SlowmoLevel(k, frames, tuple(windows)))
    return levels


@torch.no_grad()
def slow_motion(pipe: NativePipeline, frames: torch.Tensor, factor: int, fps: float,
                generator: torch.Generator | None = None, progress: bool | None = None, **sample_args) -> torch.Tensor:
    """`frames` (n, 3, H, W) in [-1, 1] made `factor` times denser: ((n - 1) * factor + 1, 3, H, W), input frame i
    unchanged at index i * factor. H and W must suit the model (multiples of its patch); fps is the output's.

    Follows `slowmo_plan`, one window spec at a time (the windows of a level in order, then the next level), all
    drawing their noise from `generator`. progress: a progress bar over the windows of every level (tqdm's rule:
    None shows it only on a terminal, False never); the per-window sampling bars stay hidden. sample_args go to
    the pipeline call (steps, sampler, guidance).
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise LightvidError(f"frames must be an (n, 3, H, W) tensor, got {got}")
    plan = slowmo_plan(frames.shape[0], factor, pipe.settings.num_frames)
    total = plan[-1].frames
    if total > MAX_FRAMES:
        raise LightvidError(f"slow motion by {factor} of {frames.shape[0]} frames makes {total} frames, more than "
                            f"{MAX_FRAMES}")
    video = frames
    with tqdm(total=sum(len(level.windows) for level in plan), desc=f"slow motion x{factor}", unit="window",
              disable=None if progress is None else not progress) as bar:
        for level in plan:
            k = level.factor
            made = video.new_zeros((level.frames, *video.shape[1:]))  # (frames, 3, H, W)
            made[::k] = video  # the known frames, copied exactly
            for w in level.windows:
                spec = FrameSpec(w.length, fps, {o: made[w.start + o] for o in w.known})
                out = pipe(spec, generator=generator, progress=False, **sample_args)  # (length, 3, H, W)
                between = [o for o in range(w.length) if o % k]
                made[[w.start + o for o in between]] = out[between]
                bar.update()
            video = made
    return video
