"""The task registry: one name per task, shared by the CLI, training masks and `lightvid eval`.

A task is which frames of a window are given, never a branch in a model; `window` says which, for a window of f frames:
with a generator it draws the task's training pattern, without one it gives the fixed pattern eval reports on.

    animate        one frame given: the first (training: the first or, half the time, anywhere, as in MarDini)
    interpolate    first and last given, the frames between generated
    keyframes      every KEYFRAME_STRIDE-th frame and the last given (x4 slow motion)
    extend         a prefix given (training: 1 .. f/2 frames; eval: the first half, Moving MNIST's 10 -> 10)
    loop           the same image first and last; the last is dropped from the output (`loop`)
    random         each frame given with probability 1/2, at least one generated (training only)
    unconditional  nothing given: what classifier-free guidance's unconditional branch sees (training only)
    inpaint        every frame given but a region: a box, a blob or a moving box (training only; regions.py)
    cinemagraph    frame 0 given, the others outside a static region; the training clip is made still outside it
                   (every frame there is frame 0's), so only the region moves (training only)

The two spatial tasks draw per-pixel masks (`Task.region`); `sample_training_masks` gives a training batch's masks,
whole frames or regions, as (b, f, 1, h, w).

animate, interpolate, extend and loop are also FrameSpec constructors of the same name (framespec.py) and commands
(`lightvid animate`, ...).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lightvid.errors import LightvidError

from .framespec import FrameSpec, loop
from .regions import cinemagraph_region, inpaint_region

KEYFRAME_STRIDE = 4


def _animate(f: int, g: torch.Generator | None) -> torch.Tensor:
    given = torch.zeros(f, dtype=torch.bool)
    anywhere = g is not None and not bool(torch.rand((), generator=g) < 0.5)
    given[int(torch.randint(f, (), generator=g)) if anywhere else 0] = True
    return given


def _ends(f: int, g: torch.Generator | None) -> torch.Tensor:
    given = torch.zeros(f, dtype=torch.bool)
    given[0] = given[-1] = True
    return given


def _keyframes(f: int, g: torch.Generator | None) -> torch.Tensor:
    given = torch.zeros(f, dtype=torch.bool)
    given[::KEYFRAME_STRIDE] = given[-1] = True
    return given


def _extend(f: int, g: torch.Generator | None) -> torch.Tensor:
    given = torch.zeros(f, dtype=torch.bool)
    count = f // 2 if g is None else int(torch.randint(1, max(f // 2, 1) + 1, (), generator=g))
    given[:count] = True
    return given


def _random(f: int, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(f, generator=g) < 0.5


def _nothing(f: int, g: torch.Generator | None) -> torch.Tensor:
    return torch.zeros(f, dtype=torch.bool)


@dataclass(frozen=True)
class Task:
    name: str
    window: Callable[[int, torch.Generator | None], torch.Tensor]  # (f, generator or None) -> (f,) bool given
    trained: bool = True  # may appear in a training config's task mix
    evaluated: bool = True  # `lightvid eval --task NAME` reports on it
    # spatial tasks: (f, h, w, generator) -> (f, 1, h, w) float mask, 1 = given pixel; `window` is then unused
    region: Callable[[int, int, int, torch.Generator], torch.Tensor] | None = None
    still_outside: bool = False  # the training clip is made still where the region's last frame is given


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("animate", _animate),
    Task("interpolate", _ends),
    Task("keyframes", _keyframes),
    Task("extend", _extend),
    Task("loop", _ends, trained=False),  # made by two passes of the model: lightvid.pipelines.loops
    Task("random", _random, evaluated=False),
    Task("unconditional", _nothing, evaluated=False),
    Task("inpaint", _nothing, evaluated=False, region=inpaint_region),
    Task("cinemagraph", _nothing, evaluated=False, region=cinemagraph_region, still_outside=True),
)}
FRAME_TASKS = tuple(name for name, t in TASKS.items() if t.trained and t.region is None)
TRAINED_TASKS = tuple(name for name, t in TASKS.items() if t.trained)
EVALUATED_TASKS = tuple(name for name, t in TASKS.items() if t.evaluated)


def get_task(name: str, accepted: tuple[str, ...] = tuple(TASKS), what: str = "task") -> Task:
    """The task `name`, one of `accepted`; `what` names it in the error (e.g. "--task")."""
    if name not in accepted:
        raise LightvidError(f"unknown {what} {name!r}; accepted: {', '.join(accepted)}")
    return TASKS[name]


def given_frames(name: str, num_frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(num_frames,) bool, True where the task gives a frame; at least one frame is left to generate."""
    given = get_task(name).window(num_frames, generator)
    if given.all():  # keep one frame to generate (num_frames >= 2): a random one in training, the last in eval
        given[-1 if generator is None else int(torch.randint(num_frames, (), generator=generator))] = False
    return given


def task_spec(name: str, clip: torch.Tensor, fps: float) -> FrameSpec:
    """The task's eval FrameSpec on a ground-truth clip (F, 3, H, W): its given frames are the clip's. A loop gets
    the clip's first frame at both ends and F - 1 output frames."""
    if name == "loop":
        return loop(clip[0], clip.shape[0] - 1, fps)
    given = given_frames(get_task(name, EVALUATED_TASKS).name, clip.shape[0])
    return FrameSpec(clip.shape[0], fps, {int(i): clip[i] for i in torch.nonzero(given).flatten()})


def _pick_tasks(batch: int, weights: dict[str, float], accepted: tuple[str, ...], g: torch.Generator) -> list[Task]:
    for name in weights:
        get_task(name, accepted)
    if not weights or sum(weights.values()) <= 0:
        raise LightvidError(f"task weights {weights} need a positive sum")
    names = list(weights)
    probs = torch.tensor([float(weights[n]) for n in names])
    picks = torch.multinomial(probs, batch, replacement=True, generator=g)
    return [TASKS[names[int(i)]] for i in picks]


def sample_given_frames(batch: int, frames: int, weights: dict[str, float], g: torch.Generator) -> torch.Tensor:
    """A batch's whole-frame masks, (batch, frames) bool: each clip draws a task with probability ∝ `weights` (name ->
    weight; names from FRAME_TASKS), then that task's pattern."""
    return torch.stack([given_frames(t.name, frames, g) for t in _pick_tasks(batch, weights, FRAME_TASKS, g)])


def sample_training_masks(clips: torch.Tensor, weights: dict[str, float], g: torch.Generator
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's clips and masks: clips (b, f, c, h, w) -> (clips, mask (b, f, 1, h, w) float, 1 = given).

    Each clip draws a task with probability ∝ `weights` (names from TRAINED_TASKS), then its frames (as
    `sample_given_frames` draws them, from the same generator stream) or its region. A cinemagraph's clip is
    returned still outside its region: every frame there is its frame 0 (the ground truth of a cinemagraph)."""
    b, f, _, h, w = clips.shape
    masks, out = [], []
    for clip, task in zip(clips, _pick_tasks(b, weights, TRAINED_TASKS, g)):
        if task.region is None:
            mask = given_frames(task.name, f, g)[:, None, None, None].to(clips).expand(f, 1, h, w)
        else:
            mask = task.region(f, h, w, g).to(clips)
        if task.still_outside:
            clip = mask[-1] * clip[:1] + (1 - mask[-1]) * clip  # (f, c, h, w): frame 0 wherever the region is not
        masks.append(mask)
        out.append(clip)
    return torch.stack(out), torch.stack(masks)
