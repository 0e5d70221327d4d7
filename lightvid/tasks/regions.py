"""Training regions for the spatial tasks (inpaint, cinemagraph): where in each frame pixels are generated.

Every function returns a (f, 1, h, w) float mask in {0, 1}, 1 = pixel given (FrameSpec's convention), with a
nonempty region to generate in every frame, drawn from a torch.Generator so a training batch is a function of its
seed. The shapes are what users paint: boxes (a logo, a caption), blobs (an object's outline) and boxes that move
over the clip (an object to remove as it crosses the frame).
"""
import torch

MIN_SIDE, MAX_SIDE = 0.15, 0.5  # a box's side, as a fraction of the frame's
MAX_TRAVEL = 0.5  # a moving box travels at most this fraction of the frame over the clip, per axis


def _uniform(low: float, high: float, g: torch.Generator, n: int = 1) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _box(h: int, w: int, g: torch.Generator) -> tuple[float, float, float, float]:
    """(top, left, height, width) in pixels of a box inside the frame."""
    bh, bw = (_uniform(MIN_SIDE, MAX_SIDE, g, 2) * torch.tensor([h, w])).tolist()
    top, left = float(torch.rand((), generator=g)) * (h - bh), float(torch.rand((), generator=g)) * (w - bw)
    return top, left, bh, bw


def _fill_box(mask: torch.Tensor, top: float, left: float, bh: float, bw: float) -> None:
    """Zero the box in mask (..., h, w), at least one pixel."""
    y, x = int(top), int(left)
    mask[..., y:max(y + 1, round(top + bh)), x:max(x + 1, round(left + bw))] = 0.0


def box(f: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """The same box in every frame."""
    mask = torch.ones(f, 1, h, w)
    _fill_box(mask, *_box(h, w, g))
    return mask


def moving_box(f: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """A box of fixed size moving in a straight line at constant speed, inside the frame throughout."""
    top, left, bh, bw = _box(h, w, g)
    end_top = min(max(top + float(_uniform(-MAX_TRAVEL, MAX_TRAVEL, g)) * h, 0.0), h - bh)
    end_left = min(max(left + float(_uniform(-MAX_TRAVEL, MAX_TRAVEL, g)) * w, 0.0), w - bw)
    mask = torch.ones(f, 1, h, w)
    for i in range(f):
        t = i / max(f - 1, 1)
        _fill_box(mask[i], top + t * (end_top - top), left + t * (end_left - left), bh, bw)
    return mask


def blob(f: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """The same blob in every frame: the union of 2 to 4 overlapping ellipses around one centre."""
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")  # (h, w) pixel centres
    cy, cx = float(_uniform(0.25, 0.75, g)) * h, float(_uniform(0.25, 0.75, g)) * w
    inside = torch.zeros(h, w, dtype=torch.bool)
    for _ in range(int(torch.randint(2, 5, (), generator=g))):
        oy, ox = (_uniform(-0.12, 0.12, g, 2) * torch.tensor([h, w])).tolist()
        ry, rx = (_uniform(MIN_SIDE / 2, MAX_SIDE / 3, g, 2) * torch.tensor([h, w])).tolist()
        inside |= ((y - cy - oy) / ry) ** 2 + ((x - cx - ox) / rx) ** 2 <= 1
    inside[min(int(cy), h - 1), min(int(cx), w - 1)] = True  # never empty
    return (~inside).float().expand(f, 1, h, w).clone()


def inpaint_region(f: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """A box, a blob or a moving box (one in three each), to regenerate in every frame."""
    return (box, blob, moving_box)[int(torch.randint(3, (), generator=g))](f, h, w, g)


def cinemagraph_region(f: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Frame 0 given whole; in the other frames a static box or blob (one in two each) to animate."""
    mask = (box, blob)[int(torch.randint(2, (), generator=g))](f, h, w, g)
    mask[0] = 1.0
    return mask
