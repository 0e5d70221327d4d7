"""Which frames are given during training: a random task per clip (MarDini-style any-frames masking).

Each clip draws one pattern; all patterns are FrameSpecs the pipeline can produce at inference:
  image_to_video   one frame given (the first, or anywhere: MarDini puts it mid-clip too)
  interpolate      first and last given
  extend           a prefix of 1..f/2 frames given
  random           each frame given with probability 1/2 (at least one generated)
  unconditional    nothing given (lets classifier-free guidance drop the conditioning)
"""
import torch

from lightvid.errors import LightvidError

TASKS = ("image_to_video", "interpolate", "extend", "random", "unconditional")


def _one(task: str, f: int, g: torch.Generator) -> torch.Tensor:
    given = torch.zeros(f, dtype=torch.bool)
    if task == "image_to_video":
        first = torch.rand((), generator=g) < 0.5
        given[0 if first else int(torch.randint(f, (), generator=g))] = True
    elif task == "interpolate":
        given[0] = given[-1] = True
    elif task == "extend":
        given[: int(torch.randint(1, max(f // 2, 1) + 1, (), generator=g))] = True
    elif task == "random":
        given = torch.rand(f, generator=g) < 0.5
    if given.all():  # keep at least one frame to generate (f >= 2)
        given[int(torch.randint(f, (), generator=g))] = False
    return given


def sample_given_frames(batch: int, frames: int, weights: dict[str, float], g: torch.Generator) -> torch.Tensor:
    """(batch, frames) bool: True where a frame is given. `weights`: task name -> relative probability."""
    unknown = sorted(set(weights) - set(TASKS))
    if unknown or not weights or sum(weights.values()) <= 0:
        raise LightvidError(f"task weights {unknown or weights} invalid; accepted tasks: {', '.join(TASKS)}")
    names = list(weights)
    probs = torch.tensor([float(weights[n]) for n in names])
    picks = torch.multinomial(probs, batch, replacement=True, generator=g)
    return torch.stack([_one(names[int(i)], frames, g) for i in picks])
