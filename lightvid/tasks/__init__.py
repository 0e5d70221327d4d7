"""Tasks as FrameSpecs: which frames/pixels of a clip are given (framespec.py), and the registry of task names shared
by the CLI, training and eval (registry.py)."""

from lightvid.tasks.framespec import MAX_FRAMES, FrameSpec, animate, cinemagraph, extend, inpaint, interpolate, loop
from lightvid.tasks.registry import (
    EVALUATED_TASKS,
    TASKS,
    TRAINED_TASKS,
    Task,
    get_task,
    given_frames,
    sample_given_frames,
    sample_training_masks,
    task_spec,
)

__all__ = [
    "EVALUATED_TASKS",
    "MAX_FRAMES",
    "TASKS",
    "TRAINED_TASKS",
    "FrameSpec",
    "Task",
    "animate",
    "cinemagraph",
    "extend",
    "get_task",
    "given_frames",
    "inpaint",
    "interpolate",
    "loop",
    "sample_given_frames",
    "sample_training_masks",
    "task_spec",
]
