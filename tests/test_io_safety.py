"""Issue #23 through the CLI: no input is ever lost, outputs land together or not at all, bad files are one line.

Every refusal: exit code 2, exactly one stderr line (`lightvid: error: ...`), no traceback, no output or temporary
file left (the folder is listed), every input byte-identical afterwards. Commands that must run use the embedded
`mnist` model with 2 frames and 1 step.
"""
import errno
import os
import signal
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_run import run
from PIL import Image

import lightvid.io.atomic as atomic_mod
import lightvid.io.image as image_mod
import lightvid.io.video as video_mod
from lightvid.errors import LightvidError
from lightvid.io import write_video

FAST = {"animate": ("--frames", "2"), "interpolate": ("--frames", "3"), "loop": ("--frames", "3"),
        "extend": ("--new-frames", "1")}


def lightvid(capsys, *args):
    """`run` with the fast settings of the command (the mnist model, 1 step, the fewest frames) appended."""
    return run(capsys, *args, "--model", "mnist", "--steps", "1", *FAST[args[0]])


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Each test runs in its own empty folder, and fails instead of hanging (a FIFO read waits forever)."""
    monkeypatch.chdir(tmp_path)

    def hung(*_):
        raise TimeoutError("the command hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def picture(path, size=32, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return Path(path)


def clip(path, frames=3, size=32):
    rng = np.random.default_rng(1)
    write_video(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8), path, fps=8)
    return Path(path)


def snapshot(folder=Path(".")):
    """Every file under `folder` (hidden temporaries included) with its bytes; FIFOs etc. by name only."""
    files = {}
    for p in sorted(Path(folder).rglob("*")):
        files[str(p)] = p.read_bytes() if p.is_file() and not p.is_symlink() and p.stat().st_size < 10**7 else None
    return files


def refused(capsys, *args, match=None):
    """Run a command that must be refused; assert nothing changed in the folder and the error is one line."""
    before = snapshot()
    code, _, err = lightvid(capsys, *args)
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("lightvid: error: "), err
    assert "Traceback" not in err
    assert snapshot() == before  # no output, no temporary file, every input byte-identical
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


def failed_late(capsys, *args, match=None):
    """A command that fails after sampling (progress lines on stderr): the last line is the one error line."""
    before = snapshot()
    code, _, err = lightvid(capsys, *args)
    errors = [line for line in err.splitlines() if line.startswith("lightvid: error: ")]
    assert code == 2, (code, err)
    assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0]), err
    assert "Traceback" not in err
    assert snapshot() == before
    if match is not None:
        assert match in errors[0], errors[0]


def interrupted(capsys, *args):
    """A command stopped by Ctrl-C: exit code 130 and nothing changed."""
    before = snapshot()
    code, _, err = lightvid(capsys, *args)
    assert code == 130, (code, err)
    assert "Traceback" not in err
    assert snapshot() == before


# --------------------------------------------------------------------------------------- inputs never lost


def test_output_equal_to_an_input_is_refused(capsys, tmp_path):
    picture("a.gif")
    picture("b.png", seed=1)
    clip("clip.webm")
    Path("sub").mkdir()
    os.symlink("a.gif", "link.gif")
    os.link("a.gif", "hard.gif")
    cases = [
        ("animate", "a.gif", "-o", "a.gif"),
        ("animate", "a.gif", "-o", "./a.gif"),
        ("animate", "./a.gif", "-o", f"{tmp_path}/sub/../a.gif"),
        ("animate", "a.gif", "-o", "link.gif"),  # a symlink to the input
        ("animate", "link.gif", "-o", "a.gif"),
        ("animate", "a.gif", "-o", "hard.gif"),  # a hard link to the input
        ("interpolate", "a.gif", "b.png", "-o", "a.gif"),
        ("loop", "a.gif", "-o", "a.gif"),
        ("extend", "clip.webm", "-o", "clip.webm"),
        ("extend", "clip.webm", "-o", "./clip.webm"),
        ("animate", "a.gif", "-o", "a.mp4", "--gif"),  # the GIF preview path is the input
        ("interpolate", "b.png", "a.gif", "-o", "a.webm", "--gif"),
    ]
    for args in cases:
        line = refused(capsys, *args)
        assert "input" in line and ("the output is" in line or "the GIF preview is" in line), line


def test_frames_folder_holding_an_input_is_refused(capsys, tmp_path):
    Path("frames").mkdir()
    picture("frames/f0.png")
    picture("frames/f1.png", seed=1)
    refused(capsys, "animate", "frames/f0.png", "-o", "frames/", match="holds the input")
    refused(capsys, "extend", "frames", "-o", "frames/", match="the input")
    refused(capsys, "extend", "frames/", "-o", f"{tmp_path}/frames/", match="the input")
    # the library's overwrite=True would replace a non-empty folder: an input inside it is still refused
    before = snapshot()
    with pytest.raises(LightvidError, match="holds the input"):
        write_video(np.zeros((2, 16, 16, 3), np.uint8), "frames/", fps=8, overwrite=True, inputs=["frames/f1.png"])
    assert snapshot() == before


# ---------------------------------------------------------------------------------- special files, no hangs


def test_fifo_device_and_socket_inputs_are_refused_unopened(capsys, tmp_path):
    os.mkfifo("pipe.png")
    os.mkfifo("pipe.mp4")
    Path("frames").mkdir()
    picture("frames/f0.png")
    os.mkfifo("frames/f1.png")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("sock.png")
    try:
        refused(capsys, "animate", "pipe.png", "-o", "out.mp4", match="FIFO")
        refused(capsys, "interpolate", "frames/f0.png", "pipe.png", "-o", "out.mp4", match="FIFO")
        refused(capsys, "extend", "pipe.mp4", "-o", "out.mp4", match="FIFO")
        refused(capsys, "animate", "/dev/null", "-o", "out.mp4", match="character device")
        refused(capsys, "animate", "sock.png", "-o", "out.mp4", match="socket")
        failed_late(capsys, "extend", "frames", "-o", "out.mp4", match="FIFO")  # a FIFO among the frames
    finally:
        sock.close()


# ----------------------------------------------------------------------------------------- resource limits


def test_output_names_over_the_filesystem_limits(capsys):
    picture("a.png")
    name_max = os.pathconf(".", "PC_NAME_MAX")
    refused(capsys, "animate", "a.png", "-o", "x" * (name_max + 1) + ".mp4", match="bytes long")
    refused(capsys, "animate", "a.png", "-o", "d" * (name_max + 1) + "/out.mp4", match="bytes long")
    refused(capsys, "animate", "a.png", "-o", "x" * (name_max - 1) + "/", "--gif",  # the preview's name
            match="bytes long")
    deep = "d/" * (os.pathconf(".", "PC_PATH_MAX") // 2) + "out.mp4"
    refused(capsys, "animate", "a.png", "-o", deep, match="bytes long")
    # the longest name that fits is written (its temporary name is shortened)
    longest = "y" * (name_max - 4) + ".gif"
    code, _, err = lightvid(capsys, "animate", "a.png", "-o", longest)
    assert code == 0, err
    assert sorted(os.listdir(".")) == sorted(["a.png", longest])


def test_unwritable_output_folder(capsys, monkeypatch):
    picture("a.png")
    refused(capsys, "animate", "a.png", "-o", "a.png/out.mp4", match="cannot write into")
    if Path("/proc/self").is_dir():  # permissions allow a new file, the filesystem does not: probed up front
        refused(capsys, "animate", "a.png", "-o", "/proc/lightvid-test.mp4", match="cannot write into")
    Path("locked").mkdir()
    os.chmod("locked", 0o500)
    if os.access("locked", os.W_OK):  # root writes anywhere: make the check see what a user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).name == "locked" else real(p, mode))
    try:
        refused(capsys, "animate", "a.png", "-o", "locked/out.mp4", match="cannot write into")
        refused(capsys, "animate", "a.png", "-o", "locked/new/out.mp4", match="cannot write into")
    finally:
        os.chmod("locked", 0o700)


def full_disk_after(monkeypatch, target, attribute, calls):
    real = getattr(target, attribute)
    count = {"n": 0}

    def fail(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, attribute, fail)


@pytest.mark.parametrize("output, target, attribute, calls", [
    ("out.mp4", video_mod, "_av_frame", 1),  # while encoding the video
    ("out.mp4", video_mod, "_write_gif", 0),  # while writing the GIF preview, the video already written
    ("frames/", Image.Image, "save", 1),  # the second PNG frame
])
def test_full_disk_while_writing_is_one_line_and_leaves_nothing(capsys, monkeypatch, output, target, attribute,
                                                                calls):
    picture("a.png")
    full_disk_after(monkeypatch, target, attribute, calls)
    failed_late(capsys, "animate", "a.png", "-o", output, "--gif", match="No space left on device")


# ------------------------------------------------------------------------------------------ corrupt inputs


def png_header_only(path, width, height):
    """A PNG whose header claims width x height, with one tiny IDAT: decoding it would fail, reading the header
    does not."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
                           + chunk(b"IEND", b""))


def test_truncated_and_oversized_images_are_refused(capsys, monkeypatch):
    picture("ok.png", size=64)
    picture("ok.jpg", size=64)
    data = Path("ok.png").read_bytes()
    Path("cut_end.png").write_bytes(data[:-20])  # pixels complete, the IDAT CRC and IEND gone: Pillow decodes it
    Path("cut_half.png").write_bytes(data[: len(data) // 2])
    data = Path("ok.jpg").read_bytes()
    Path("cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    png_header_only("huge.png", 10000, 10000)  # 100 MP: Pillow only warns
    png_header_only("over.png", 7072, 7072)  # 50.01 MP: just over lightvid's limit, far under Pillow's
    for name in ("cut_end.png", "cut_half.png"):  # found before the model loads: PNG chunks are checked
        refused(capsys, "animate", name, "-o", "out.mp4", match="truncated")
    refused(capsys, "interpolate", "ok.png", "cut_end.png", "-o", "out.mp4", match="cut_end.png")
    for name in ("huge.png", "over.png"):  # the size is read from the header: before the model loads
        refused(capsys, "animate", name, "-o", "out.mp4", match="megapixels")
    failed_late(capsys, "animate", "cut.jpg", "-o", "out.mp4", match="truncated")  # found when decoded
    failed_late(capsys, "interpolate", "ok.jpg", "cut.jpg", "-o", "out.mp4", match="cut.jpg")
    # a GIF cut short decodes as a shorter clip: its missing trailer byte refuses it
    clip("clip.gif", frames=4)
    Path("cut.gif").write_bytes(Path("clip.gif").read_bytes()[:-1])
    failed_late(capsys, "extend", "cut.gif", "-o", "out.mp4", match="truncated")
    # a video whose frame size is over the limit is refused from its stream header, before decoding
    clip("clip.mp4", size=64)
    monkeypatch.setattr(image_mod, "MAX_IMAGE_PIXELS", 64 * 64 - 1)
    monkeypatch.setattr(video_mod, "frame_to_rgb", lambda frame: pytest.fail("decoded a frame over the limit"))
    failed_late(capsys, "extend", "clip.mp4", "-o", "out.mp4", match="megapixels")


# ---------------------------------------------------------------------------------------- one-line messages


def test_unusable_output_paths_are_one_line(capsys, tmp_path):
    picture("a.png")
    for output in ("", " ", ".", "./", "..", "/", str(tmp_path), f"{tmp_path}/"):
        refused(capsys, "animate", "a.png", "-o", output)
    line = refused(capsys, "animate", "a.png", "-o", "bad\nname.avi", match="unknown output format")
    assert "bad\\nname.avi" in line
    line = refused(capsys, "animate", "missing\nfile.png", "-o", "out.mp4", match="no such file")
    assert "missing\\nfile.png" in line
    Path("out.gif").mkdir()
    refused(capsys, "animate", "a.png", "-o", "out.mp4", "--gif", match="GIF preview")  # a folder there


# ------------------------------------------------------------------------ outputs together, or not at all


def raise_in(monkeypatch, target, attribute, error, calls=0):
    real = getattr(target, attribute)
    count = {"n": 0}

    def fail(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(target, attribute, fail)


@pytest.mark.parametrize("output", ["out.mp4", "frames/"])
def test_ctrl_c_during_the_gif_preview_leaves_nothing(capsys, monkeypatch, output):
    picture("a.png")
    raise_in(monkeypatch, video_mod, "_write_gif", KeyboardInterrupt)
    interrupted(capsys, "animate", "a.png", "-o", output, "--gif")


def test_ctrl_c_during_encoding_leaves_no_temporary(capsys, monkeypatch):
    picture("a.png")
    raise_in(monkeypatch, video_mod, "_av_frame", KeyboardInterrupt, calls=1)
    interrupted(capsys, "animate", "a.png", "-o", "out.webm", "--gif")


def test_previous_outputs_come_back_when_landing_fails(capsys, monkeypatch):
    """The video has replaced the old one when moving the preview into place fails: the old pair comes back."""
    picture("a.png")
    Path("out.mp4").write_bytes(b"old video")
    Path("out.gif").write_bytes(b"old preview")
    raise_in(monkeypatch, atomic_mod.os, "replace", OSError(errno.EIO, os.strerror(errno.EIO)), calls=1)
    failed_late(capsys, "animate", "a.png", "-o", "out.mp4", "--gif", match="Input/output error")


def test_ctrl_c_while_outputs_land_puts_the_previous_ones_back(capsys, monkeypatch):
    """A real SIGINT between the two renames is held back until both have landed, then both are rolled back."""
    picture("a.png")
    Path("out.mp4").write_bytes(b"old video")
    real = os.replace
    count = {"n": 0}

    def replace(*args, **kwargs):
        real(*args, **kwargs)
        count["n"] += 1
        if count["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(atomic_mod.os, "replace", replace)
    interrupted(capsys, "animate", "a.png", "-o", "out.mp4", "--gif")
    assert count["n"] == 2  # the interrupt did not cut the landing short


def test_outputs_land_together(capsys):
    picture("a.png")
    code, out, err = lightvid(capsys, "animate", "a.png", "-o", "out.mp4", "--gif")
    assert code == 0, err
    assert sorted(os.listdir(".")) == ["a.png", "out.gif", "out.mp4"]
    assert out.splitlines()[-2:] == ["wrote out.mp4", "wrote out.gif"]


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_a_failed_command_removes_the_output_folders_it_made(tmp_path, interrupt):
    from lightvid.io import atomic_outputs

    (tmp_path / "kept").mkdir()
    with pytest.raises(interrupt), atomic_outputs() as outputs:
        outputs.file(tmp_path / "new" / "sub" / "clip.mp4").write_bytes(b"video")
        outputs.folder(tmp_path / "kept" / "frames")
        raise interrupt
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]  # new/ and new/sub/ gone; kept/ was there before
