"""The embedded editor (lightvid/weights/editor): its size, its instructions, and a held-out clip made black and
white."""
import pytest

from lightvid.edit.editor import Editor
from lightvid.edit.instructions import EDITS, greyscale
from lightvid.edit.pipeline import EditPlan
from lightvid.edit.workers import edit_video
from lightvid.eval.flicker import edit_flicker
from lightvid.eval.metrics import psnr
from lightvid.weights import WEIGHTS_DIR, editor_folder

FOLDER = editor_folder("editor")
# Measured on the shipped editor, the first 4 camera-motion test clips (8 frames at 128x128, AMD EPYC, AVX-512): the
# colour channels differ by 8.0-14.8 levels where the source's differ by 38-45 (ratio 0.20-0.33; exact greyscale 0),
# PSNR 30.1-30.7 dB against exact greyscale, flicker -0.12 to 0.35 levels (the exact edit: -0.36 to -0.08). The
# bounds leave room for another CPU's float rounding through 10 sampling steps, while failing an editor that keeps
# the colours (ratio ~1), misses the edit (PSNR well under 27 dB) or flickers (a frame-to-frame brightness error of
# a few levels adds 2 or more: tests/test_eval_metrics.py).
THRESHOLDS = {"spread_ratio": 0.5, "psnr": 27.0, "flicker": 1.5}


@pytest.fixture(scope="module")
def editor():
    return Editor.from_pretrained(FOLDER)


def test_the_embedded_editor_is_small_and_reads_every_phrasing(editor):
    size = sum(p.stat().st_size for p in (WEIGHTS_DIR / "editor").rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    for edit in EDITS:
        editor.check_instruction(edit.phrasings[0])
        for phrase in edit.held_out:
            editor.check_instruction(phrase)


def test_a_held_out_clip_made_black_and_white_is_grey_close_to_exact_and_steady(editor):
    """A camera move over one of the camera-motion test photos (motorcycle_left.png, rocket.jpg), which
    lightvid.edit.data also holds out of the editor's training."""
    from lightvid.data import CameraMotion
    clip = CameraMotion(split="test", num_frames=8, size=128)[0][0]  # (8, 3, 128, 128) in [-1, 1]
    edited = edit_video(FOLDER, clip, EditPlan("make it black and white"), workers=1, progress=False, editor=editor)
    spread = 127.5 * (edited.max(dim=1).values - edited.min(dim=1).values).mean()  # max - min channel, 0-255
    source_spread = 127.5 * (clip.max(dim=1).values - clip.min(dim=1).values).mean()
    accuracy = psnr((edited + 1) / 2, greyscale((clip + 1) / 2)).mean()
    flicker = edit_flicker(edited, clip)
    print(f"channel spread {spread:.2f} (source {source_spread:.2f}) levels, PSNR {accuracy:.2f} dB, "
          f"flicker {flicker:.2f} levels")
    assert spread < THRESHOLDS["spread_ratio"] * source_spread
    assert accuracy > THRESHOLDS["psnr"]
    assert flicker < THRESHOLDS["flicker"]
