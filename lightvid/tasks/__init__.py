"""Tasks as FrameSpecs: which frames/pixels of a clip are given (see framespec.py)."""

from lightvid.tasks.framespec import MAX_FRAMES, FrameSpec, extend, image_to_video, interpolate, loop

__all__ = ["MAX_FRAMES", "FrameSpec", "extend", "image_to_video", "interpolate", "loop"]
