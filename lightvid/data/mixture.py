"""A weighted mixture of registered datasets, e.g. camera motion plus moving layers.

Index i draws, from the generator of (seed, split, i), a part with probability proportional to its
weight and then a uniform index into that part: the mixture is deterministic by seed and index like
every dataset here. Each part is `{"name": <registered dataset>, "weight": w, **its options}` (weight
defaults to 1); a part that takes `split` or `seed` and does not set them gets the mixture's. Every
part must give clips of one frame shape (item 0 of each is read on construction to check it); the
reported fps is the chosen part's.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from lightvid.data.common import check_index, check_int, check_split, split_rng
from lightvid.errors import LightvidError


def part_weights(parts) -> np.ndarray:
    """The checked weights of `parts`, normalized to sum 1."""
    if not isinstance(parts, (list, tuple)) or not parts:
        raise LightvidError(f"mixture: parts must be a non-empty list of {{name, weight, ...}} mappings; got {parts!r}")
    weights = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise LightvidError(f"mixture: part {i} must be a mapping {{name, weight, ...}}; got {part!r}")
        if "name" not in part:
            raise LightvidError(f"mixture: part {i} has no 'name' (a registered dataset)")
        if part["name"] == "mixture":
            raise LightvidError(f"mixture: part {i} is a mixture; list its parts directly instead")
        weight = part.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise LightvidError(f"mixture: part {i} weight must be a finite number >= 0; got {weight!r}")
        weights.append(float(weight))
    total = sum(weights)
    if total <= 0:
        raise LightvidError("mixture: the part weights sum to 0; give at least one part a positive weight")
    return np.array(weights) / total


class Mixture(Dataset):
    """Clips drawn from `parts` in proportion to their weights: `(frames, fps)` as the parts give them.

    parts: a list of `{"name": ..., "weight": ..., **options}`, each built with `build_dataset`.
    length: default the sum of the parts' lengths. split: passed to the parts that take one; the test split leaves
    out the parts that take none (a video folder: it has no held-out clips of its own). num_frames, size: when given,
    set on every part (what `lightvid eval` asks of a model's dataset), else each part's own.
    """

    def __init__(self, parts: list[dict], length: int | None = None, seed: int = 0, split: str = "train",
                 num_frames: int | None = None, size=None):
        from lightvid.data import build_dataset  # here: lightvid.data imports this module

        part_weights(parts)  # every part checked
        self.split = check_split(split)
        self.seed = check_int("seed", seed, 0)
        self.parts, kept = [], []
        for part in parts:
            options = {k: v for k, v in part.items() if k not in ("name", "weight")}
            cls = build_dataset_class(part["name"])
            if issubclass(cls, IterableDataset):
                raise LightvidError(f"mixture: {part['name']} streams clips; a part must be indexable")
            accepted = inspect.signature(cls).parameters
            if self.split == "test" and "split" not in accepted:
                continue
            kept.append(part)
            for key, value in (("split", self.split), ("seed", self.seed)):
                if key in accepted:
                    options.setdefault(key, value)
            options.update({k: v for k, v in (("num_frames", num_frames), ("size", size)) if v is not None})
            self.parts.append(build_dataset(part["name"], **options))
        if not kept:
            raise LightvidError("mixture: no part has a test split (datasets without a 'split' option are left out)")
        self.probs = part_weights(kept)
        parts = kept
        default = sum(len(p) for p in self.parts)
        self.length = check_int("length", default if length is None else length, 1)
        self.frame_shape = self.check_shapes(parts)

    def check_shapes(self, parts) -> tuple[int, ...]:
        """The one frame shape of every part (item 0 of each), else a LightvidError naming two."""
        shapes = [tuple(p[0][0].shape) for p in self.parts]
        for part, shape in zip(parts[1:], shapes[1:]):
            if shape != shapes[0]:
                raise LightvidError(
                    f"mixture: parts give clips of different shapes: {parts[0]['name']} {shapes[0]}, "
                    f"{part['name']} {shape}; set the same num_frames and size on every part"
                )
        return shapes[0]

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        rng = split_rng(self.seed, self.split, check_index(index, self.length))
        part = self.parts[rng.choice(len(self.parts), p=self.probs)]
        return part[int(rng.integers(len(part)))]


def build_dataset_class(name: str) -> type:
    from lightvid.data import DATASETS

    if name not in DATASETS:
        raise LightvidError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return DATASETS[name]
