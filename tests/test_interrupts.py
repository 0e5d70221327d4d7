"""Ctrl-C in real processes: `lightvid animate --frames 256` and `lightvid train` stop with one line and exit code 130,
and leave no output and no temporary file behind."""
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent


def _interrupt_after(args: list[str], marker: str, cwd: Path) -> tuple[int, list[str]]:
    """Run `lightvid ARGS`, send SIGINT once `marker` appears on stderr: (exit code, stderr lines)."""
    proc = subprocess.Popen([sys.executable, "-m", "lightvid.cli", *args], stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    watchdog = threading.Timer(300, proc.kill)  # a run that never shows `marker` or never stops fails, not hangs
    watchdog.start()
    lines = []
    for line in iter(proc.stderr.readline, ""):
        lines.append(line)
        if marker in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate()[1]
    watchdog.cancel()
    return proc.returncode, lines + rest.splitlines(keepends=True)


def test_ctrl_c_during_a_long_animation_leaves_nothing(tmp_path):
    shutil.copy(ROOT / "examples" / "rocket.jpg", tmp_path / "rocket.jpg")
    code, lines = _interrupt_after(["animate", "rocket.jpg", "-o", "long.mp4", "--frames", "256", "--model", "mnist",
                                    "--gif"], "window 3:", tmp_path)
    assert code == 130, "".join(lines)
    assert lines[-1] == "lightvid: interrupted\n" and not any("Traceback" in line for line in lines), "".join(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rocket.jpg"]  # no video, preview or temporary file


def test_ctrl_c_during_training_leaves_no_temporary_and_resumes(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    config.update(output_dir=str(tmp_path / "run"))
    config["train"].update(steps=40, checkpoint_every=2, log_every=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    code, lines = _interrupt_after(["train", "--config", "tiny.yaml"], "training:", tmp_path)
    assert code == 130 and lines[-1].startswith("lightvid: interrupted"), "".join(lines)
    assert not any("Traceback" in line for line in lines), "".join(lines)
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name.endswith((".tmp", ".old")) or ".tmp." in p.name]
