"""Hierarchical slow motion: the plan (every gap once, windows within the model's window, levels multiplying to the
factor), the input frames kept bit for bit at i * factor, the CLI on tiny random models and the embedded photo, and
bad input (one line, exit code 2, no output)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import run
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.io import read_video, read_video_uint8, write_video
from lightvid.pipelines import slow_motion, slowmo_plan
from lightvid.pipelines.slowmo import FACTORS
from native_fixtures import save_tiny_native, tiny_native


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_native(tmp_path_factory.mktemp("model") / "tiny")  # 3 channels, patch 2, 16x16, window 5


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def random_clip(frames, height=16, width=16, seed=0):
    return torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def check_plan(n, factor, window):
    plan = slowmo_plan(n, factor, window)
    assert math.prod(level.factor for level in plan) == factor
    frames, remaining = n, factor
    for level in plan:
        k = level.factor
        assert k + 1 <= window and k <= remaining and (2 * k + 1 > window or 2 * k > remaining)  # the largest
        assert level.frames == (frames - 1) * k + 1
        gaps = []
        for before, w in zip((None, *level.windows), level.windows):
            assert w.known == tuple(range(0, w.length, k)) and 2 <= len(w.known) and w.length <= window
            assert w.start % k == 0  # starts on a known frame: the level's known frames are at multiples of k
            gaps += [(w.start + a, w.start + b) for a, b in zip(w.known, w.known[1:])]
            if before is not None:
                assert w.start == before.start + before.length - 1  # consecutive windows share a known frame
        assert gaps == [(i * k, (i + 1) * k) for i in range(frames - 1)]  # every gap once, in order
        sizes = [len(w.known) - 1 for w in level.windows]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= (window - 1) // k  # balanced, as full as fits
        frames, remaining = level.frames, remaining // k
    assert frames == (n - 1) * factor + 1
    return plan


@pytest.mark.parametrize("window", [3, 4, 5, 6, 9, 16, 17, 33])
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("n", [2, 3, 7, 16])
def test_plan_covers_every_gap_once_within_the_window(n, factor, window):
    check_plan(n, factor, window)


def test_plan_examples():
    # window 5, factor 8: x4 over pairs (5 frames), then x2 with 3 known frames at 0, 2, 4 per window
    plan = check_plan(3, 8, 5)
    assert [level.factor for level in plan] == [4, 2]
    pairs, triples = ((0, (0, 4)), (4, (0, 4))), tuple((start, (0, 2, 4)) for start in (0, 4, 8, 12))
    assert [level.windows for level in plan] == [pairs, triples]
    # photo's 16-frame window, factor 2: 8 known frames at even positions, 7 made between, in one 15-frame window
    (level,) = check_plan(8, 2, 16)
    assert level.windows == ((0, (0, 2, 4, 6, 8, 10, 12, 14)),)
    assert [level.factor for level in check_plan(2, 64, 16)] == [8, 8]
    assert [level.factor for level in check_plan(2, 32, 16)] == [8, 4]
    # 15 gaps at most 7 a window: three windows of 5 gaps rather than 7, 7, 1
    assert [len(w.known) - 1 for w in check_plan(16, 2, 16)[0].windows] == [5, 5, 5]


@pytest.mark.parametrize("args,message", [
    ((1, 2, 5), "at least 2 frames"), ((3, 3, 5), "power of 2"), ((3, 128, 5), "power of 2"), ((3, 1, 5), "power"),
    ((3, 2, 2), "window of at least 3"), ((3, True, 5), "power of 2"),
])
def test_plan_refuses(args, message):
    with pytest.raises(LightvidError, match=message):
        slowmo_plan(*args)


def test_slow_motion_keeps_every_input_frame_bit_for_bit_and_follows_the_plan(monkeypatch):
    pipe = tiny_native(3, 2)  # window 5
    clip = random_clip(3)  # floats, not 8-bit levels: any rounding would show
    calls = []
    sample = type(pipe).__call__

    def recording(self, spec, **kwargs):
        calls.append((spec.num_frames, spec.given_indices))
        return sample(self, spec, **kwargs)
    monkeypatch.setattr(type(pipe), "__call__", recording)
    video = slow_motion(pipe, clip, 8, 16.0, generator=torch.Generator().manual_seed(0), progress=False)
    assert video.shape == (17, 3, 16, 16)
    assert torch.equal(video[::8], clip)  # bit for bit at i * factor
    assert calls == [(5, (0, 4))] * 2 + [(5, (0, 2, 4))] * 4  # x4 over pairs, then x2 over 3 known frames
    made = video[[i for i in range(17) if i % 8]]
    assert made.abs().amax(dim=(1, 2, 3)).min() > 0 and made.abs().max() <= 1  # every frame made, in range
    again = slow_motion(pipe, clip, 8, 16.0, generator=torch.Generator().manual_seed(0), progress=False)
    other = slow_motion(pipe, clip, 8, 16.0, generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(video, again) and not torch.equal(video, other)  # seeded


def test_slow_motion_with_a_hinted_grayscale_model_and_its_progress_bar(capsys):
    pipe = tiny_native(1, 2, conditioning="nearest")  # Moving-MNIST-like: luminance in, RGB out
    clip = random_clip(4)
    video = slow_motion(pipe, clip, 2, 8.0, generator=torch.Generator().manual_seed(0), progress=True)
    assert video.shape == (7, 3, 16, 16) and torch.equal(video[::2], clip)
    err = capsys.readouterr().err
    assert "slow motion x2" in err and "2/2" in err and "sampling" not in err  # one bar over the windows only


def test_cli_keeps_the_frames_and_multiplies_the_frame_rate(capsys, tmp_path, model):
    clip = random_clip(3)
    write_video(clip, f"{tmp_path}/clip/", fps=8)  # PNG frames at the model's size: read back exactly
    code, _, err = run(capsys, "slowmo", tmp_path / "clip", "-o", f"{tmp_path}/out/", "--model", model,
                       "--factor", 4)
    assert code == 0, err
    assert "slow motion x4: 3 -> 9 frames at 32 fps; x4 in 2 windows" in err
    frames = png_frames(tmp_path / "out")
    assert frames.shape == (9, 16, 16, 3) and np.array_equal(frames[::4], png_frames(tmp_path / "clip"))

    # another size, a GIF at 10 fps: resized to the model's 16x16 like every command's input, kept exactly so
    pictures = [Image.fromarray(a) for a in (np.random.default_rng(1).random((3, 24, 40, 3)) * 255).astype(np.uint8)]
    pictures[0].save(tmp_path / "clip.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    code, _, err = run(capsys, "slowmo", tmp_path / "clip.gif", "-o", f"{tmp_path}/gif/", "--model", model,
                       "--factor", 8, "--seed", 3)
    assert code == 0, err
    frames = png_frames(tmp_path / "gif")
    assert frames.shape == (17, 16, 16, 3)
    assert np.array_equal(frames[::8], read_video_uint8(tmp_path / "clip.gif", size=(16, 16))[0])

    code, _, err = run(capsys, "slowmo", tmp_path / "clip", "-o", tmp_path / "x2.mp4", "--model", model, "--gif")
    assert code == 0, err
    video, fps = read_video(tmp_path / "x2.mp4")
    assert video.shape[0] == 5 and fps == 16 and (tmp_path / "x2.gif").exists()  # the default factor 2, 8 fps x 2
    code, _, err = run(capsys, "slowmo", tmp_path / "clip", "-o", tmp_path / "slow.mp4", "--model", model,
                       "--fps", 8)
    assert code == 0, err
    assert read_video(tmp_path / "slow.mp4")[1] == 8  # --fps: played at the input's rate, twice as long


def test_cli_with_the_embedded_photo_model(capsys, tmp_path):
    from lightvid.io import resize_and_crop
    rocket = Image.open(Path(__file__).parent.parent / "examples" / "rocket.jpg").convert("RGB")
    first = resize_and_crop(rocket, 128, 128)
    second = resize_and_crop(rocket.crop((8, 4, rocket.width, rocket.height)), 128, 128)  # a small camera move
    (tmp_path / "clip").mkdir()
    first.save(tmp_path / "clip" / "a.png")
    second.save(tmp_path / "clip" / "b.png")
    code, _, err = run(capsys, "slowmo", tmp_path / "clip", "-o", f"{tmp_path}/out/", "--factor", 4)  # photo
    assert code == 0, err
    frames = png_frames(tmp_path / "out")
    assert frames.shape == (5, 128, 128, 3)
    assert np.array_equal(frames[0], np.asarray(first)) and np.array_equal(frames[4], np.asarray(second))
    # the frames between move from the first to the second: closer to the first at 1 than at 3
    gap = [np.abs(frames[i].astype(float) - frames[0]).mean() for i in (1, 2, 3, 4)]
    assert 0 < gap[0] < gap[2] and gap[1] < gap[3]


@pytest.mark.parametrize("args,message", [
    (["{clip}", "--factor", "3"], "--factor must be a power of 2 from 2 to 64 (2, 4, 8, 16, 32, 64), got 3"),
    (["{clip}", "--factor", "128"], "--factor must be a power of 2"),
    (["{clip}", "--factor", "1"], "--factor must be a power of 2"),
    (["{clip}", "--factor", "0"], "--factor must be a power of 2"),
    (["{clip}", "--factor", "abc"], "--factor"),
    (["{clip}", "--fps", "0"], "--fps must be in (0, 1000], got 0"),
    (["{clip}", "--fps", "nan"], "--fps must be a finite number"),
    (["{clip}", "--fps", "2000"], "--fps must be in (0, 1000]"),
    (["{one}"], "has 1 frame: slow motion needs at least 2"),
    (["{long}", "--factor", "64"], "more than 16 frames: slow motion by 64 would make at least 1025 frames"),
    (["{fast}", "--factor", "64"], "1920 fps (30 x 64), above 1000; choose its rate with --fps"),
    (["{tmp}/empty.mp4"], "file is empty"),
    (["{tmp}/corrupt.mp4"], "not a readable video"),
    (["{tmp}/missing.mp4"], "no such file"),
    (["{tmp}/emptydir"], "no frames"),
    (["{clip}", "--steps", "0"], "--steps"),
    (["{clip}", "--height", "15"], "multiples of 2"),
    (["{clip}", "--model", "{broken}"], "not a valid pipeline file"),
    (["{clip}", "--model", "nonexistent"], "not an embedded model"),
])
def test_bad_input_one_line_exit_2_no_output(capsys, tmp_path, model, args, message):
    import shutil
    write_video(random_clip(3), f"{tmp_path}/clip/", fps=8)
    write_video(random_clip(1), f"{tmp_path}/one/", fps=8)
    write_video(random_clip(17), f"{tmp_path}/long/", fps=8)  # (17 - 1) x 64 + 1 = 1025 frames
    write_video(random_clip(3), tmp_path / "fast.mp4", fps=30)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (tmp_path / "emptydir").mkdir()
    shutil.copytree(model, tmp_path / "broken")
    (tmp_path / "broken" / "pipeline.json").write_text("{not json")
    before = sorted(p.name for p in tmp_path.iterdir())
    paths = {"clip": tmp_path / "clip", "one": tmp_path / "one", "long": tmp_path / "long",
             "fast": tmp_path / "fast.mp4", "tmp": tmp_path, "broken": tmp_path / "broken"}
    args = [a.format(**paths) for a in args]
    if "--model" not in args:
        args += ["--model", str(model)]
    code, _, err = run(capsys, "slowmo", *args, "-o", tmp_path / "out.mp4", "--gif")
    assert code == 2 and err.count("\n") == 1 and err.startswith("lightvid: error:"), err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no preview, no temporary file


def test_help_states_every_option_and_the_factors(capsys):
    from lightvid.cli import slowmo as command
    from lightvid.io.video import MAX_FPS
    assert command.FACTORS == FACTORS and command.MAX_OUTPUT_FPS == MAX_FPS
    code, out, _ = run(capsys, "slowmo", "--help")
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "MarDini" in text and "a power of 2 from 2 to 64" in text and "(N - 1) x factor + 1" in text
    for option in ("--output", "--model", "--factor", "--fps", "--seed", "--steps", "--sampler", "--guidance",
                   "--height", "--width", "--gif", "--bf16", "--runtime"):
        assert option in text, option
