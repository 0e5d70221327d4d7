"""The command line: help texts, generate on a tiny SVD folder, flops, and one-line errors with exit code 2."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from cli_run import run
from PIL import Image

from lightvid.cli.commands import _flops_text
from lightvid.io import read_video


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("command,options", [
    ("generate", ["--model", "--image", "--output", "--frames", "--steps", "--seed", "--height", "--width", "--fps",
                  "--motion-bucket", "--noise-aug", "--min-guidance", "--max-guidance", "--decode-chunk", "--gif",
                  "--bf16", "--compile"]),
    ("flops", ["--model", "--frames", "--height", "--width", "--fold-cross-attention", "--json"]),
    ("train", ["--config", "--max-steps"]),
    *[(task, ["--output", "--model", "--frames", "--seed", "--steps", "--sampler", "--guidance", "--height", "--width",
              "--gif"]) for task in ("animate", "interpolate", "extend", "loop")],
    ("eval", ["--task", "--model", "--clips", "--seed", "--steps", "--sampler", "--dataset", "--encoder", "--no-fd",
              "--json"]),
])
def test_every_option_is_explained(capsys, command, options):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    for option in options:
        lines = [line for line in out.splitlines() if re.search(rf"{option}\b", line)]
        assert lines, f"{option} missing from `lightvid {command} --help`"
        # words after the option, ignoring typer's own "[required]" / "[default: ...]" annotations
        explained = [re.search(r"[a-z]{3,}", re.sub(r"\[[^\]]*\]", "", line.split(option, 1)[1])) for line in lines]
        assert any(explained), f"{option} has no explanation"


def test_top_level_help_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(command in out for command in ("generate", "flops", "train", "animate", "interpolate",
                                                       "extend", "loop", "eval"))


def test_generate_writes_mp4_and_png_frames(capsys, svd_folder, photo, tmp_path):
    folder, _ = svd_folder
    common = ["generate", "--model", str(folder), "--image", str(photo), "--frames", "3", "--steps", "2",
              "--height", "32", "--width", "48", "--fps", "6"]
    code, _, err = run(capsys, *common, "-o", str(tmp_path / "clip.mp4"), "--gif")
    assert code == 0, err
    frames, fps = read_video(tmp_path / "clip.mp4")
    assert frames.shape == (3, 3, 32, 48) and fps == pytest.approx(6)
    assert (tmp_path / "clip.gif").exists()
    code, _, err = run(capsys, *common, "-o", str(tmp_path / "frames") + "/")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_{i:05d}.png" for i in range(3)]
    # lossless PNGs agree with the (lossy) mp4 up to codec error
    png, _ = read_video(tmp_path / "frames")
    assert (png - frames).abs().mean() < 0.1  # the frames are noise-like (random model): hard for H.264


def _assert_clean_failure(code, err, tmp_path, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not any(p.name.startswith("out") or p.name.startswith(".out") for p in tmp_path.iterdir())


@pytest.mark.parametrize("change,fragment", [
    ({"--image": "missing.png"}, "missing.png"),
    ({"--model": "no-such-model"}, "not an SVD pipeline folder"),
    ({"-o": "out.avi"}, ".avi"),
    ({"--steps": "0"}, "--steps"),
    ({"--frames": "10000"}, "10000"),
    ({"--height": "33"}, "divisible by 2"),
])
def test_generate_bad_input_is_one_line_exit_2_no_output(capsys, svd_folder, photo, tmp_path, change, fragment):
    folder, _ = svd_folder
    args = {"--model": str(folder), "--image": str(photo), "-o": "out.mp4", "--frames": "3", "--steps": "1",
            "--height": "32", "--width": "48"}
    args.update(change)
    for key in ("--image", "-o", "--model"):
        if not args[key].startswith("/"):
            args[key] = str(tmp_path / args[key])
    code, _, err = run(capsys, "generate", *[x for kv in args.items() for x in kv])
    _assert_clean_failure(code, err, tmp_path, fragment)


def test_corrupt_image_is_a_clean_error(capsys, svd_folder, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    code, _, err = run(capsys, "generate", "--model", str(svd_folder[0]), "--image", str(bad), "-o",
                       str(tmp_path / "out.mp4"))
    _assert_clean_failure(code, err, tmp_path, "bad.png")


@pytest.mark.parametrize("height,width,paper", [(576, 1024, 45.43), (256, 512, 8.60)])
def test_flops_reproduces_mobilevd_table2(capsys, height, width, paper):
    code, out, _ = run(capsys, "flops", "--model", "svd", "--frames", "14", "--height", str(height),
                       "--width", str(width), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["params"] == 1_524_623_082
    assert abs(report["tflops"] - paper) / paper <= 0.03


def test_flops_text_and_folder(capsys, svd_folder):
    args = ["flops", "--model", str(svd_folder[0]), "--frames", "4", "--height", "32", "--width", "48"]
    code, out, _ = run(capsys, *args)
    flops = json.loads(run(capsys, *args, "--json")[1])["flops"]
    assert code == 0 and f"{flops / 1e9:.2f} GFLOPs per UNet evaluation" in out  # small models: GFLOPs
    assert _flops_text(44_690_000_000_000) == "44.69 TFLOPs" and _flops_text(14_880_000_000) == "14.88 GFLOPs"
    code, _, err = run(capsys, "flops", "--model", "nope")
    assert code == 2 and "not a model folder" in err


def test_usage_errors_exit_2(capsys):
    code, _, _ = run(capsys, "generate", "--steps", "many")
    assert code == 2


def test_installed_entry_point():
    result = subprocess.run([sys.executable, "-m", "lightvid.cli", "flops", "--model", "svd-tiny", "--frames", "2",
                             "--height", "64", "--width", "64"], capture_output=True, text=True)
    assert result.returncode == 0 and "svd-tiny" in result.stdout
