"""Bad input over every command (a fast subset of tests/fuzz_cases.py; `python bench/fuzz.py` runs them all), the
limits stated in --help and checked up front, the slow-settings warning, and Ctrl-C."""
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_run import run
from fuzz_cases import cases, check_case, fast_subset, fresh_scratch, make_scratch

from lightvid.cli import options

FAST = fast_subset(cases(0), size=60, seed=0)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_scratch(tmp_path_factory.mktemp("fuzz") / "template")


@pytest.mark.parametrize("case", FAST, ids=[f"{c.kind}:{' '.join(c.argv)[:60]}" for c in FAST])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(capsys, template, tmp_path, case):
    scratch = fresh_scratch(template, tmp_path / "scratch")
    problem = check_case(case, scratch, lambda argv: run(capsys, *argv), timeout=60)
    assert problem is None, f"{case}: {problem}"


def test_the_fast_subset_covers_every_class_and_command():
    every = cases(0)
    assert len(every) >= 200 and cases(0) == every  # seeded: the same list every time
    assert {c.kind for c in FAST} == {c.kind for c in every}
    commands = {c.argv[0] for c in every}
    assert {"animate", "interpolate", "extend", "loop", "generate", "eval", "flops", "train", "compress",
            "distill"} <= commands


def test_limits_agree_with_the_library_and_are_in_the_help(capsys):
    from lightvid.tasks.framespec import MAX_FRAMES
    assert options.MAX_FRAMES == MAX_FRAMES
    for command, texts in {"animate": [str(options.MAX_FRAMES), str(options.MAX_STEPS), str(options.MAX_SIDE)],
                           "generate": [str(options.MAX_FPS), str(options.MAX_MOTION_BUCKET)],
                           "eval": [str(options.MAX_CLIPS)], "train": [f"{options.MAX_TRAIN_STEPS:,}"]}.items():
        code, out, _ = run(capsys, command, "--help")
        text = " ".join(out.replace("│", " ").split())
        assert code == 0 and all(t in text for t in texts), (command, texts)


@pytest.mark.parametrize("argv,message", [
    (["flops", "--height", str(2**40)], "--height must be in [1, 4096]"),
    (["flops", "--height", "100000", "--width", "64"], "--height must be in [1, 4096]"),
    (["flops", "--height", "4096", "--width", "4096"], "at most 4,194,304 pixels"),
    (["animate", "x.png", "-o", "o.mp4", "--steps", "1001"], "--steps must be in [1, 1000]"),
    (["animate", "x.png", "-o", "o.mp4", "--guidance", "nan"], "--guidance must be a finite number"),
    (["eval", "--task", "interpolate", "--clips", "1001"], "--clips must be in [1, 1000]"),
])
def test_limits_are_one_line_before_any_work(capsys, tmp_path, monkeypatch, argv, message):
    from PIL import Image
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save("x.png")
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_slow_settings_warn_in_one_line_and_go_on(capsys):
    from lightvid.cli.app import warn_slow
    warn_slow(steps=101, frames=300, clips=5)
    err = capsys.readouterr().err
    assert err == "lightvid: this will take long: --steps 101 (more than 100), --frames 300 (more than 256)\n"
    warn_slow(steps=100, frames=256, clips=100, new_frames=None)
    assert capsys.readouterr().err == ""


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import lightvid.eval.flops

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(lightvid.eval.flops, "flops_for", interrupted)
    code, out, err = run(capsys, "flops")
    assert (code, out, err) == (130, "", "lightvid: interrupted\n")
    code, out, _ = run(capsys, "flops", "--help")  # the help is whole (not a one-line usage error)
    assert code == 0 and "--fold-cross-attention" in out and "--table" in out


def test_sigint_in_a_process_is_exit_130_and_one_line(tmp_path):
    script = ("import sys, time\nimport lightvid.eval.flops as f\n"
              "def slow(*a, **k):\n    print('ready', flush=True)\n    time.sleep(60)\n"
              "f.flops_for = slow\nfrom lightvid.cli import console_main\nsys.argv = ['lightvid', 'flops']\n"
              "console_main()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err == "lightvid: interrupted\n", err
