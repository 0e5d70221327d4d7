"""Golden outputs of the shipped models: every task command, default settings, fixed seeds, lossless PNG output.

The references in tests/golden/ are strips (frames stacked top to bottom, uint8 RGB) recorded by this test with
LIGHTVID_RECORD_GOLDEN=1. A refactoring that changes what a shipped model makes fails here.

Tolerance: a frame value may differ by one 8-bit level from the reference. The commands quantise float32 frames
to uint8, so a last-bit difference in float arithmetic (another CPU's SIMD path: AVX2 vs AVX-512 sum in another
order) flips a value that lies on a rounding boundary by exactly one level; a real change to the model, its
conditioning or its sampler moves values by many levels. Beyond that, at most 0.1% of values may differ by more
than one level: a last-bit difference in a Farneback flow or a network's input can move one sample across a
pixel boundary of a bilinear warp (measured: no such value on the recording machine).
"""
import os
from pathlib import Path

import numpy as np
import pytest
from cli_run import run
from PIL import Image

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parent.parent / "examples"
RECORD = os.environ.get("LIGHTVID_RECORD_GOLDEN") == "1"
MODELS = ("photo", "mnist", "mnist-mobilevd")
TASKS = ("animate", "interpolate", "extend", "loop")


def _input_clip(tmp: Path, model: str) -> Path:
    """A folder of 4 PNG frames to extend: a slow pan over a bundled photo (photo) or a held-out Moving MNIST clip."""
    folder = tmp / "clip"
    folder.mkdir()
    if model == "photo":
        image = Image.open(EXAMPLES / "rocket.jpg").convert("RGB").resize((160, 160), Image.BICUBIC)
        frames = [image.crop((4 * i, 2 * i, 4 * i + 128, 2 * i + 128)) for i in range(4)]
    else:
        from lightvid.data import MovingMNIST
        clip, _ = MovingMNIST(split="test")[0]  # (20, 1, 64, 64) in [-1, 1]
        gray = ((clip[:4, 0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        frames = [Image.fromarray(g).convert("RGB") for g in gray]
    for i, frame in enumerate(frames):
        frame.save(folder / f"{i:03d}.png")
    return folder


def _arguments(task: str, model: str, tmp: Path) -> list:
    mnist_frame = tmp / "clip" / "000.png"
    first = EXAMPLES / "rocket.jpg" if model == "photo" else mnist_frame
    last = EXAMPLES / "motorcycle.jpg" if model == "photo" else tmp / "clip" / "003.png"
    return {"animate": [first], "interpolate": [first, last], "extend": [tmp / "clip"], "loop": [first]}[task]


def _strip(folder: Path) -> np.ndarray:
    """The PNG frames of an output folder stacked top to bottom: (F * H, W, 3) uint8."""
    frames = sorted(folder.glob("*.png"))
    return np.concatenate([np.asarray(Image.open(f).convert("RGB")) for f in frames])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", TASKS)
def test_shipped_models_make_their_recorded_frames(task, model, tmp_path, capsys):
    _input_clip(tmp_path, model)
    out = tmp_path / "out"
    code, _, err = run(capsys, task, *_arguments(task, model, tmp_path), "-o", f"{out}/", "--model", model,
                       "--seed", 7)
    assert code == 0, err
    frames = _strip(out)
    reference = GOLDEN / f"{model}_{task}.png"
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        Image.fromarray(frames).save(reference, optimize=True)
    expected = np.asarray(Image.open(reference).convert("RGB"))
    assert frames.shape == expected.shape
    difference = np.abs(frames.astype(np.int16) - expected.astype(np.int16))
    assert (difference > 1).mean() <= 1e-3, f"max {difference.max()} levels, mean {difference.mean():.4f}"
