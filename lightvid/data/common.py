"""Argument checks and seeded RNGs shared by the datasets.

Every clip is drawn from its own generator, keyed by the dataset seed and the clip's index (never
from a global or per-worker stream), so a clip does not depend on worker count, access order or on
which clips were read before: a resumed run sees exactly the clips it would have seen.
"""

from __future__ import annotations

import numpy as np

from lightvid.errors import LightvidError
from lightvid.io.image import MIN_IMAGE_SIDE

SPLITS = ("train", "test")
TRAIN_STREAM, TEST_STREAM = 0, 1  # keep the train and test generators apart for the same index


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise LightvidError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_split(split) -> str:
    if split not in SPLITS:
        raise LightvidError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def check_size(size) -> tuple[int, int]:
    """`size` as (height, width): an int means a square."""
    pair = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
    ok = isinstance(pair, (tuple, list)) and len(pair) == 2
    ok = ok and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in pair)
    if not ok or min(pair) < MIN_IMAGE_SIDE:
        raise LightvidError(f"size must be an integer or (height, width), each >= {MIN_IMAGE_SIDE}; got {size!r}")
    return int(pair[0]), int(pair[1])


def check_index(index, length: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -length <= index < length:
        raise IndexError(f"index {index!r} out of range for a dataset of {length} clips")
    return int(index) % length


def split_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip `index`. The test split ignores `seed`: it is one fixed set for all runs."""
    if split == "test":
        return np.random.default_rng((0, TEST_STREAM, index))
    return np.random.default_rng((seed, TRAIN_STREAM, index))
