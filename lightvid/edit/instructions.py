"""The edits the embedded editor learns, as exact procedures, and the instructions that name them.

Each edit is a function of an image batch in [0, 1], (..., 3, h, w) -> (..., 3, h, w) in [0, 1]: the ground truth
the editor is trained on and measured against. Each has training phrasings and held-out phrasings (never seen in
training: they measure whether the text encoder reads paraphrases, not memorised strings).
"""
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from lightvid.errors import LightvidError

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
SEPIA = ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131))  # the common sepia matrix


def _channels(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(3, 1, 1)


def greyscale(x: torch.Tensor) -> torch.Tensor:
    luma = (x * _channels(LUMA, x)).sum(-3, keepdim=True)
    return luma.expand_as(x).contiguous()


def invert(x: torch.Tensor) -> torch.Tensor:
    return 1 - x


def brighter(x: torch.Tensor) -> torch.Tensor:
    return (x * 1.35 + 0.05).clamp(0, 1)


def darker(x: torch.Tensor) -> torch.Tensor:
    return x * 0.55


def sepia(x: torch.Tensor) -> torch.Tensor:
    matrix = torch.tensor(SEPIA, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,...chw->...ohw", matrix, x).clamp(0, 1)


def night(x: torch.Tensor) -> torch.Tensor:
    """Darker, less saturated, blue: moonlight."""
    grey = greyscale(x)
    return (0.35 * (0.4 * x + 0.6 * grey) ** 1.2 * _channels((0.75, 0.9, 1.35), x)).clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])  # separable: rows, then columns, edges reflected
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    return flat.reshape(shape)


def blur(x: torch.Tensor) -> torch.Tensor:
    return _gaussian_blur(x, 2.0)


def sharpen(x: torch.Tensor) -> torch.Tensor:
    """Unsharp mask: the image plus its difference from a blur (sigma 1 px)."""
    return (2 * x - _gaussian_blur(x, 1.0)).clamp(0, 1)


def posterize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 3) / 3  # 4 levels per channel


def tint_blue(x: torch.Tensor) -> torch.Tensor:
    return (x * _channels((0.8, 0.9, 1.0), x) + _channels((0.0, 0.0, 0.15), x)).clamp(0, 1)


@dataclass(frozen=True)
class Edit:
    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    phrasings: tuple[str, ...]  # for training; the first is the canonical instruction
    held_out: tuple[str, ...]  # paraphrases kept out of training, made of training words


EDITS = (
    Edit("greyscale", greyscale,
         ("make it black and white", "black and white", "make it grayscale", "convert to greyscale",
          "remove the colors", "make it monochrome", "turn it gray", "desaturate it completely"),
         ("turn it black and white", "make it greyscale")),
    Edit("invert", invert,
         ("invert the colors", "invert it", "make it a negative", "invert the colours", "negative image",
          "turn it into a negative"),
         ("invert the image colors", "invert the image colours")),
    Edit("brighter", brighter,
         ("make it brighter", "brighten it", "increase the brightness", "make it lighter", "more light",
          "brighten the image"),
         ("make the image brighter", "make the image lighter")),
    Edit("darker", darker,
         ("make it darker", "darken it", "decrease the brightness", "make it dimmer", "less light",
          "darken the image"),
         ("make the image darker", "reduce the brightness")),
    Edit("sepia", sepia,
         ("give it a warm sepia tone", "make it sepia", "sepia", "apply a sepia filter", "make it look old",
          "give it a sepia tone"),
         ("turn it sepia", "add a warm sepia tone")),
    Edit("night", night,
         ("make it look like night", "make it night", "turn day into night", "make it nighttime",
          "make it look like moonlight", "night time"),
         ("make the image look like night", "turn it into night")),
    Edit("blur", blur,
         ("blur it", "blur the image", "make it blurry", "soften it", "make it out of focus", "add blur"),
         ("make the image blurry", "make the image out of focus")),
    Edit("sharpen", sharpen,
         ("sharpen it", "sharpen the image", "make it sharper", "make it crisp", "increase the sharpness",
          "add sharpness"),
         ("make the image sharper", "make the image crisp")),
    Edit("posterize", posterize,
         ("posterize it", "posterize the image", "make it a poster", "reduce the colors to a few levels",
          "make it look like a poster", "apply posterization"),
         ("make the image look like a poster", "apply a poster filter")),
    Edit("tint_blue", tint_blue,
         ("tint it blue", "give it a blue tint", "make it bluer", "add a blue tint", "make it more blue",
          "blue tint"),
         ("tint the image blue", "make the image bluer")),
)  # fmt: skip
EDIT_BY_NAME = {e.name: e for e in EDITS}


def words(text: str) -> list[str]:
    """An instruction's words: lower case, letters only ("Make it B&W!" -> ["make", "it", "b", "w"])."""
    return re.findall(r"[a-z]+", text.lower())


def exact_edit(instruction: str) -> Edit | None:
    """The edit an instruction names (any phrasing, held-out included), or None."""
    key = " ".join(words(instruction))
    for edit in EDITS:
        if key in (" ".join(words(p)) for p in edit.phrasings + edit.held_out):
            return edit
    return None


def known_instructions() -> str:
    return "; ".join(f'"{e.phrasings[0]}"' for e in EDITS)


def check_instruction(instruction: str) -> None:
    if not words(instruction):
        raise LightvidError(f"the instruction is empty; this editor knows: {known_instructions()}")
