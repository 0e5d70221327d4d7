"""Issue #23: a training run killed at any moment (SIGKILL, or Ctrl-C = SIGINT) reruns to exactly the weights of an
uninterrupted run, `model/` matches the last checkpoint, and no temporary output is left behind.

Each kill is injected deterministically: `python -m lightvid.train` runs with hooks (HOOKS below) that send the
process a signal at a named moment of a named step; the rerun is in-process (`main`, as `python -m lightvid.train`).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightvid.train import config_from_dict, train
from lightvid.train.__main__ import main

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"  # steps 6, checkpoint_every 3, log_every 1
INTERRUPTED = "lightvid: interrupted; run the same command again to resume from the last checkpoint"

# Moments (KILL_AT) at step KILL_STEP:
#   before_checkpoint   save_checkpoint called, nothing written yet (the log has the step's record)
#   during_checkpoint   the checkpoint's temporary folder holds unet + EMA, the optimizer not yet written
#   before_export       the checkpoint is complete, model/ not yet replaced
#   during_export       model/'s temporary folder is complete, not yet renamed into place
#   export_swap         the old model/ moved aside, the new one not yet renamed in (no model/ at all)
#   during_plot         loss.png's temporary file written, not yet renamed
#   during_log_rewrite  a resumed run's truncated log is in its temporary file, not yet renamed (step: resumed from)
HOOKS = r'''
import contextlib, os, runpy, signal, sys
from pathlib import Path

import lightvid.io.atomic as atomic
import lightvid.train.loop as loop
import lightvid.train.plots as plots
import lightvid.train.state as state

moment, at, sig = os.environ["KILL_AT"], int(os.environ["KILL_STEP"]), getattr(signal, os.environ["KILL_SIGNAL"])
now = {"step": None}


def hit(name):
    if name == moment and now["step"] == at:
        os.kill(os.getpid(), sig)  # SIGKILL: gone at once; SIGINT: KeyboardInterrupt at the next bytecode


def wrap(module, name, on_call):
    real = getattr(module, name)

    def hooked(*args, **kwargs):
        on_call(*args, **kwargs)
        return real(*args, **kwargs)
    setattr(module, name, hooked)


def after_body(module, name, moment):  # an atomic writer that is hit once its body has written the output
    real = getattr(module, name)

    @contextlib.contextmanager
    def hooked(*args, **kwargs):
        with real(*args, **kwargs) as tmp:
            yield tmp
            hit(moment)
    setattr(module, name, hooked)


def on_checkpoint(out, step, *args, **kwargs):
    now["step"] = step
    hit("before_checkpoint")


def on_export(unet, ema, config, step, *args):
    now["step"] = step
    hit("before_export")


def on_truncate(log_path, step):
    now["step"] = step


wrap(loop, "save_checkpoint", on_checkpoint)
wrap(state, "save_optimizer", lambda *args, **kwargs: hit("during_checkpoint"))
wrap(loop, "export_model", on_export)
wrap(loop, "truncate_log", on_truncate)
after_body(loop, "atomic_dir", "during_export")  # loop's atomic_dir: the model export only
after_body(plots, "atomic_write", "during_plot")
after_body(loop, "atomic_write", "during_log_rewrite")  # loop's atomic_write: the log rewrite only


class Os:  # os for lightvid.io.atomic, hit right after it moves an old model/ aside
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def rename(src, dst):
        os.rename(src, dst)
        if Path(src).name == "model":
            hit("export_swap")


atomic.os = Os()
sys.argv[0] = "python -m lightvid.train"
runpy.run_module("lightvid.train", run_name="__main__", alter_sys=True)
'''


def write_config(folder: Path) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw["output_dir"] = str(folder / "run")
    raw["train"].update(steps=6, checkpoint_every=3, log_every=1)
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


def killed_run(config: Path, moment: str, step: int, sig: str) -> None:
    env = {**os.environ, "KILL_AT": moment, "KILL_STEP": str(step), "KILL_SIGNAL": sig}
    result = subprocess.run([sys.executable, "-c", HOOKS, "--config", str(config)], env=env, capture_output=True,
                            timeout=300, check=False)
    stderr = result.stderr.decode(errors="replace")  # bytes: text mode would turn the progress bar's \r into \n
    if sig == "SIGKILL":
        assert result.returncode == -signal.SIGKILL, (result.returncode, stderr[-2000:])
    else:  # Ctrl-C: exit 130 and one line, as a terminal shows it (what follows the progress bar's last \r)
        assert result.returncode == 130, (result.returncode, stderr[-2000:])
        shown = [line.rsplit("\r", 1)[-1] for line in stderr.split("\n")]
        assert [line for line in shown if line.strip()] == [INTERRUPTED], stderr[-2000:]
        assert "Traceback" not in stderr


def temps(run: Path) -> list[str]:
    """Temporary outputs under the run folder, without their random part: `.step_00000006.x1y2.tmp` ->
    `step_00000006.tmp`, `.log.x1y2.tmp.jsonl` -> `log.tmp.jsonl`."""
    found = [p.name for p in run.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]
    return sorted(".".join([name.split(".")[1], *name.split(".")[3:]]) for name in found)


def logged_steps(run: Path) -> list:
    if not (run / "log.jsonl").exists():
        return []
    steps = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            steps.append("cut")
    return steps


def state_of(run: Path) -> dict:
    """What a kill left: complete checkpoints, temporary outputs, model/'s trained_steps, the log's steps."""
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("step_*") if (p / "state.json").exists())
    model = run / "model" / "pipeline.json"
    return {"checkpoints": checkpoints, "temps": temps(run), "log": logged_steps(run),
            "model": json.loads(model.read_text())["trained_steps"] if model.exists() else None}


C3, C6 = "step_00000003", "step_00000006"
ALL = [1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(config_from_dict(yaml.safe_load(write_config(folder).read_text())), progress=False)
    return folder / "run"


def assert_same_as_uninterrupted(run: Path, reference: Path) -> None:
    assert state_of(run) == {"checkpoints": [C3, C6], "temps": [], "log": ALL, "model": 6}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [C3, C6]
    for name in ("unet/model.safetensors", "ema.safetensors", "optimizer.safetensors"):  # bit for bit
        mine, theirs = run / "checkpoints" / C6 / name, reference / "checkpoints" / C6 / name
        assert mine.read_bytes() == theirs.read_bytes(), name
    files = sorted(p.name for p in (reference / "model").iterdir())
    assert sorted(p.name for p in (run / "model").iterdir()) == files
    for name in files:  # model.safetensors (the EMA weights), config.json, pipeline.json (trained_steps 6)
        assert (run / "model" / name).read_bytes() == (reference / "model" / name).read_bytes(), name
    assert (run / "loss.png").stat().st_size > 0


def kill(config: Path, sig: str, moment: str, step: int, left: dict) -> None:
    """Run until `sig` strikes at `moment` of `step`, then check what it left (proof that it struck there)."""
    killed_run(config, moment, step, sig)
    assert state_of(config.parent / "run") == left, (sig, moment, step)


# Each run after a kill is itself a rerun of the killed one (it must clean up and continue) until a kill at the next
# moment; the last rerun finishes, and everything must then be as after one uninterrupted run.

def test_sigkill_at_every_moment(tmp_path, uninterrupted):
    config, run = write_config(tmp_path), tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("")  # an empty log (a kill before the first record) and a stale temporary log
    (run / ".log.x1y2.tmp.jsonl").write_text('{"step": 1')
    kill(config, "SIGKILL", "before_checkpoint", 3, {"checkpoints": [], "temps": [], "log": [1, 2, 3], "model": None})
    kill(config, "SIGKILL", "during_checkpoint", 3,  # the rerun started afresh: no checkpoint to resume from
         {"checkpoints": [], "temps": [f"{C3}.tmp"], "log": [1, 2, 3], "model": None})
    kill(config, "SIGKILL", "during_checkpoint", 6,
         {"checkpoints": [C3], "temps": [f"{C6}.tmp"], "log": ALL, "model": 3})
    with (run / "log.jsonl").open("a") as log:
        log.write('{"step": 7, "lo')  # and a record cut short
    kill(config, "SIGKILL", "during_log_rewrite", 3,  # resuming from step 3
         {"checkpoints": [C3], "temps": ["log.tmp.jsonl"], "log": [*ALL, "cut"], "model": 3})
    kill(config, "SIGKILL", "before_export", 6, {"checkpoints": [C3, C6], "temps": [], "log": ALL, "model": 3})
    # the reruns from here on are at the last step: they re-export model/ first
    kill(config, "SIGKILL", "during_export", 6,
         {"checkpoints": [C3, C6], "temps": ["model.tmp"], "log": ALL, "model": 3})
    kill(config, "SIGKILL", "export_swap", 6,
         {"checkpoints": [C3, C6], "temps": ["model.old", "model.tmp"], "log": ALL, "model": None})
    kill(config, "SIGKILL", "during_plot", 6,
         {"checkpoints": [C3, C6], "temps": ["loss.tmp.png"], "log": ALL, "model": 6})
    assert main(["--config", str(config)]) == 0  # model/ is up to date: only tidies up
    assert_same_as_uninterrupted(run, uninterrupted)


def test_ctrl_c_at_every_moment(tmp_path, uninterrupted):  # each exits 130 with one line, leaving no temporaries
    config, run = write_config(tmp_path), tmp_path / "run"
    kill(config, "SIGINT", "before_checkpoint", 3, {"checkpoints": [], "temps": [], "log": [1, 2, 3], "model": None})
    kill(config, "SIGINT", "during_checkpoint", 6, {"checkpoints": [C3], "temps": [], "log": ALL, "model": 3})
    kill(config, "SIGINT", "before_export", 6, {"checkpoints": [C3, C6], "temps": [], "log": ALL, "model": 3})
    kill(config, "SIGINT", "during_export", 6, {"checkpoints": [C3, C6], "temps": [], "log": ALL, "model": 3})
    assert main(["--config", str(config)]) == 0  # re-exports model/ at step 6
    assert_same_as_uninterrupted(run, uninterrupted)
