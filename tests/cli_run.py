"""Run the `lightvid` CLI in-process for tests: (exit code, stdout, stderr)."""
from lightvid.cli import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_frames(capsys, tmp_path, name, *args):
    """Run a command writing PNG frames to tmp_path/name/; returns them (F, 3, H, W) in [-1, 1]."""
    from lightvid.io import read_video

    code, _, err = run(capsys, *args, "-o", f"{tmp_path / name}/")
    assert code == 0, err
    return read_video(tmp_path / name)[0]


def assert_runtime_matches_torch(capsys, tmp_path, model, runtime: str, *args):
    """The command `args` with --model `model` writes the same PNG frames with --runtime `runtime` as with torch."""
    torch_frames = run_frames(capsys, tmp_path, "torch", *args, "--model", model)
    frames = run_frames(capsys, tmp_path, runtime, *args, "--model", model, "--runtime", runtime)
    assert frames.shape == torch_frames.shape
    # PNG frames are 8-bit: float32 kernel differences flip a rounding now and then, by one level (2/255)
    assert (frames - torch_frames).abs().max() <= 2 / 255 + 1e-6
