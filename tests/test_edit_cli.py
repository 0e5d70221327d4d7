"""`lightvid edit` end to end on tiny random editors (the embedded editor: tests/test_editor_model.py)."""
import numpy as np
import pytest
import torch
from cli_run import run
from edit_fixtures import make_ip2p_folder, tiny_editor
from PIL import Image

from lightvid.io import read_video


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit")
    tiny_editor().save_pretrained(folder / "editor")
    make_ip2p_folder(folder / "ip2p")
    rng = np.random.default_rng(0)
    (folder / "clip").mkdir()
    for i in range(5):  # 5 frames of 30x45: edited at 20x32 (the longer side 32; 21.3 rounds to a multiple of 4)
        Image.fromarray((rng.random((30, 45, 3)) * 255).astype(np.uint8)).save(folder / "clip" / f"{i:03d}.png")
    return folder


def _edit(capsys, scratch, out, *args):
    code, stdout, err = run(capsys, "edit", scratch / "clip", "make it darker", "-o", f"{out}/", "--workers", "1",
                            *args)
    assert code == 0, err
    assert "wrote" in stdout
    return read_video(out)[0]


def test_edit_writes_every_frame_at_the_editing_size(capsys, scratch, tmp_path):
    video = _edit(capsys, scratch, tmp_path / "a", "--model", scratch / "editor")
    assert video.shape == (5, 3, 20, 32)
    again = _edit(capsys, scratch, tmp_path / "b", "--model", scratch / "editor")
    assert torch.equal(video, again)  # the same seed: the same video
    other = _edit(capsys, scratch, tmp_path / "c", "--model", scratch / "editor", "--seed", "1")
    alone = _edit(capsys, scratch, tmp_path / "d", "--model", scratch / "editor", "--anchors", "0")
    assert not torch.equal(video, other) and not torch.equal(video, alone)
    bigger = _edit(capsys, scratch, tmp_path / "e", "--model", scratch / "editor", "--size", "48", "--steps", "2")
    assert bigger.shape == (5, 3, 32, 48)


def test_edit_reads_an_instructpix2pix_folder(capsys, scratch, tmp_path):
    code, _, err = run(capsys, "edit", scratch / "clip", "make it dark", "-o", f"{tmp_path / 'out'}/", "--model",
                       scratch / "ip2p", "--size", "32", "--steps", "2", "--workers", "1")
    assert code == 0, err
    assert read_video(tmp_path / "out")[0].shape == (5, 3, 20, 32)  # VAE x2, UNet x2: multiples of 4


def test_an_instruction_the_editor_cannot_read_is_one_line(capsys, scratch, tmp_path):
    code, _, err = run(capsys, "edit", scratch / "clip", "make it purple", "-o", tmp_path / "out.mp4", "--model",
                       scratch / "editor")
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown word: purple" in err and '"make it black and white"' in err and '"tint it blue"' in err
    assert not (tmp_path / "out.mp4").exists()
