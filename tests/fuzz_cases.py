"""Bad-input cases over every command, and the checks each one must pass (tests/test_fuzz.py, bench/fuzz.py).

A case is a command line run in a scratch folder (its cwd) that holds good inputs beside bad ones (`make_scratch`):
photos, a clip, a tiny native model, broken model folders, training YAML files. Every case is bad input, and the
command must refuse it the same way (`check_case`):

- exit code 2, exactly one line on stderr, starting with "lightvid: error:" (naming the option, where the case
  says which), no traceback;
- nothing left behind: the scratch folder lists the same paths before and after, every file byte-identical.

`cases(seed)` draws the same list for the same seed: every bad value of every option of every command, unknown
options, missing and extra arguments, bad input files, bad outputs, bad model folders and bad YAML files.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

TASK_COMMANDS = ("animate", "interpolate", "extend", "loop")
COMMANDS = (*TASK_COMMANDS, "restyle", "inpaint", "cinemagraph", "slowmo", "edit", "generate", "eval", "flops",
            "train", "compress", "distill")

# the good command line of each command, its option under test replaced or added by a case (the tiny model in
# scratch/model samples in well under a second, so a case that slips past a check does not run for long)
BASE = {
    "animate": ["animate", "photo.png", "-o", "out.mp4", "--model", "model"],
    "interpolate": ["interpolate", "photo.png", "photo2.png", "-o", "out.mp4", "--model", "model"],
    "extend": ["extend", "clip.gif", "-o", "out.mp4", "--model", "model"],
    "loop": ["loop", "photo.png", "-o", "out.gif", "--model", "model"],
    "restyle": ["restyle", "clip.gif", "-o", "out.mp4", "--model", "model"],
    "inpaint": ["inpaint", "clip.gif", "mask.png", "-o", "out.mp4", "--model", "model"],
    "cinemagraph": ["cinemagraph", "photo.png", "mask.png", "-o", "out.mp4", "--model", "model"],
    "slowmo": ["slowmo", "clip.gif", "-o", "out.mp4", "--model", "model"],
    "edit": ["edit", "clip.gif", "make it darker", "-o", "out.mp4", "--model", "editor", "--workers", "1"],
    # no SVD folder in scratch: every option is checked before the model folder is read (the cases say which
    # option the message must name, so a later "no such folder" cannot pass for the option's check)
    "generate": ["generate", "photo.png", "-o", "out.mp4", "--model", "svd", "--height", "64", "--width", "64"],
    "eval": ["eval", "--task", "interpolate", "--model", "model", "--clips", "1", "--no-fd"],
    "flops": ["flops", "--model", "svd-tiny", "--frames", "4", "--height", "64", "--width", "64"],
    "train": ["train", "--config", "tiny.yaml", "--max-steps", "1"],
    "compress": ["compress", "--model", "model", "-o", "small", "--finetune-steps", "0"],
    "distill": ["distill", "--model", "model", "-o", "student", "--max-steps", "1"],
}

HUGE = str(2**40)
BAD_COUNT = ["abc", "", "0", "-1", HUGE, "2.5", "nan", "1e3"]  # a count >= 1
BAD_FLOAT = ["abc", "", "nan", "inf", "-inf", "1e400"]  # a finite number
BAD_SEED = ["-1", str(2**63), "abc", "", "1.5"]
BAD_SIDE = ["0", "-16", "100000", HUGE, "abc", ""]

# option -> bad values, per command
SAMPLING = {"--seed": BAD_SEED, "--steps": [*BAD_COUNT, "1001"], "--sampler": ["bogus", ""],
            "--guidance": BAD_FLOAT, "--height": BAD_SIDE, "--width": BAD_SIDE}
OPTIONS = {
    **{task: {"--frames": [*BAD_COUNT, "1025"], **SAMPLING} for task in ("animate", "interpolate", "loop")},
    "animate": {"--frames": [*BAD_COUNT, "1025"], "--index": ["-1", "16", HUGE, "abc", "", "1.5"], **SAMPLING},
    "extend": {"--new-frames": [*BAD_COUNT, "1024"], "--windows": ["bogus", ""], **SAMPLING},
    "restyle": {"--strength": [*BAD_FLOAT, "0", "-0.5", "1.5"], "--alpha": ["0.5"],  # --alpha without a style
                **{k: v for k, v in SAMPLING.items() if k != "--guidance"}},
    "inpaint": {k: v for k, v in SAMPLING.items() if k != "--guidance"},
    "cinemagraph": {"--frames": [*BAD_COUNT, "1025"], **{k: v for k, v in SAMPLING.items() if k != "--guidance"}},
    "slowmo": {"--factor": [*BAD_COUNT, "1", "3", "6", "128", "-2"], "--fps": [*BAD_FLOAT, "0", "-1", "1001"],
               **SAMPLING},
    "generate": {"--frames": [*BAD_COUNT, "1025"], "--steps": [*BAD_COUNT, "1001"], "--seed": BAD_SEED,
                 "--height": BAD_SIDE, "--width": BAD_SIDE, "--fps": ["0", "-1", "241", "abc", ""],
                 "--motion-bucket": ["-1", "1024", "abc"], "--noise-aug": [*BAD_FLOAT, "-0.5"],
                 "--min-guidance": BAD_FLOAT, "--max-guidance": BAD_FLOAT, "--decode-chunk": BAD_COUNT},
    "edit": {"--anchors": ["-1", "17", "abc", ""], "--steps": [*BAD_COUNT, "1001"], "--seed": BAD_SEED,
             "--guidance-text": BAD_FLOAT, "--guidance-image": BAD_FLOAT, "--size": ["0", "15", "100000", "abc"],
             "--workers": ["0", "-1", "65", "abc"], "--batch": ["0", "65", "abc", ""]},
    "eval": {"--task": ["bogus", "", "random"], "--clips": [*BAD_COUNT, "1001"], "--seed": BAD_SEED,
             "--steps": [*BAD_COUNT, "1001"], "--sampler": ["bogus"], "--split": ["bogus", ""],
             "--dataset": ["bogus"]},
    "flops": {"--frames": [*BAD_COUNT, "1025"], "--height": BAD_SIDE, "--width": BAD_SIDE,
              "--table": ["bogus", ""]},
    "train": {"--max-steps": ["0", "-1", "abc", "", HUGE]},
    "compress": {"--finetune-steps": ["-1", "abc", "", HUGE]},
    "distill": {"--student-steps": ["0", "9", "-1", "abc", ""], "--max-steps": ["0", "-1", "abc", "", HUGE]},
}
# option values that are legal alone but refused together with the others (the message names the first option)
COMBINED = [
    ("animate", ["--height", "4096", "--width", "4096"], "--height"),  # 16.8 megapixels a frame
    ("generate", ["--height", "4096", "--width", "2048"], "--height"),
    ("flops", ["--height", "4096", "--width", "4096"], "--height"),
    ("animate", ["--frames", "1024", "--height", "1024", "--width", "1024"], "frames"),  # a 1G-pixel video
    ("generate", ["--frames", "1024", "--height", "1024", "--width", "512"], "frames"),
    ("animate", ["--height", "15"], "--height"),  # not a multiple of the model's patch (2)
    ("interpolate", ["--frames", "9"], "--frames"),  # longer than the model's window (5), --windows chain
    ("restyle", ["--style-weights", "model", "--alpha", "1.5"], "--alpha"),
    ("loop", ["--frames", "1023", "--height", "1024", "--width", "1024"], "frames"),  # past the video pixel limit
    ("eval", ["--encoder", "photo.png"], "--encoder"),  # with --no-fd
    ("slowmo", ["--factor", "64", "--height", "2048", "--width", "2048"], "frames"),  # 4 frames: 193 past the pixels
    ("eval", ["--seed", str(2**63 - 1), "--clips", "2"], "--seed"),  # the second clip's seed overflows
]

INPUTS = {  # command -> the positions in BASE of its input files
    "animate": [1], "interpolate": [1, 2], "extend": [1], "loop": [1], "restyle": [1], "generate": [1],
    "inpaint": [1, 2], "cinemagraph": [1, 2], "edit": [1], "slowmo": [1],
}
BAD_IMAGES = ["missing.png", "empty.png", "garbage.png", "truncated.png", "notes.txt", "adir", "", "photo.png/x.png"]
BAD_VIDEOS = ["missing.mp4", "empty.mp4", "garbage.mp4", "truncated.gif", "notes.txt", "emptydir", "garbagedir",
              ""]

VIDEO_OUTPUTS = ["", ".", "/", "adir", "adir/", "out.xyz", "out", "photo.png/out.mp4", "/proc/lightvid-fuzz.mp4",
                 "x" * 300 + ".mp4", "missing/" + "y" * 300 + "/out.mp4"]
MODEL_OUTPUTS = ["", ".", "/", "adir", "photo.png", "photo.png/out", "x" * 300]
EVAL_OUTPUTS = ["", "/", "adir", "report.txt", "photo.png/r.json", "x" * 300 + ".json"]

BAD_MODELS = ["", "missing", "photo.png", "emptydir", "badconfig", "badpipeline", "listconfig", "pickle",
              "truncweights", "nullpipeline", "wrongchannels"]
FLOPS_READABLE = ("pickle", "truncweights", "wrongchannels")  # flops reads config files only: these count fine
BAD_SVD = ["missing", "emptydir", "photo.png", "model", "svdgarbage"]

BAD_TRAIN_YAML = ["missing.yaml", "empty.yaml", "notmap.yaml", "invalid.yaml", "unknown.yaml", "wrongtype.yaml",
                  "negsteps.yaml", "badbase.yaml", "selfbase.yaml", "binary.yaml", "adir", "", "nomodel.yaml",
                  "baddata.yaml"]
BAD_DISTILL_YAML = ["missing.yaml", "notmap.yaml", "invalid.yaml", "distill_unknown.yaml", "distill_types.yaml",
                    "distill_section.yaml", "adir"]
BAD_RECIPES = ["bogus", "", "missing.yaml", "notmap.yaml", "invalid.yaml", "recipe_unknown.yaml", "adir"]


@dataclass(frozen=True)
class Case:
    kind: str  # the class of bad input
    argv: tuple[str, ...]  # run with the scratch folder as the working directory
    names: str | None = None  # a text the error line must contain (the option at fault)

    def __str__(self) -> str:
        return "lightvid " + " ".join(repr(a) if (not a or " " in a) else a for a in self.argv)


def _with(command: str, option: str, value: str) -> list[str]:
    argv = list(BASE[command])
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


def _replace(command: str, index: int, value: str) -> list[str]:
    argv = list(BASE[command])
    argv[index] = value
    return argv


def cases(seed: int = 0) -> list[Case]:
    """Every case, in a seeded order (the same seed gives the same list)."""
    out: list[Case] = []
    for command, options in OPTIONS.items():
        for option, values in options.items():
            out += [Case("option value", tuple(_with(command, option, v)), option) for v in values]
    out += [Case("option value", tuple(BASE[c] + extra), names) for c, extra, names in COMBINED]
    for command in COMMANDS:
        out.append(Case("unknown option", tuple(BASE[command] + ["--bogus"]), "--bogus"))
        out.append(Case("unknown option", tuple(BASE[command] + ["--bogus=1"]), "--bogus"))
        out.append(Case("unknown option", tuple(BASE[command] + ["-z"]), "-z"))
        out.append(Case("arguments", tuple(BASE[command] + ["extra.png"])))
        if BASE[command][-1] != "--no-fd":
            out.append(Case("arguments", tuple(BASE[command][:-1])))  # an option without its value
    out += [Case("unknown option", ("bogus",)), Case("unknown option", ("--bogus",)),
            Case("unknown option", ("animate", "--frames=3=4", "photo.png", "-o", "o.mp4", "--model", "model"))]
    for command in (*TASK_COMMANDS, "slowmo", "generate"):
        argv = BASE[command]
        out.append(Case("arguments", tuple(a for i, a in enumerate(argv) if i not in INPUTS[command])))
        out.append(Case("arguments", tuple(argv[:argv.index("-o")] + argv[argv.index("-o") + 2:])))  # no -o
    out += [Case("arguments", ("interpolate", "photo.png", "-o", "out.mp4", "--model", "model")),
            Case("arguments", ("eval", "--model", "model")), Case("arguments", ("train",)),
            Case("arguments", ("compress", "--model", "model")), Case("arguments", ("distill", "-o", "student")),
            Case("arguments", ("generate", "photo.png", "-o", "out.mp4"))]
    for command, positions in INPUTS.items():
        for index in positions:
            video = (command in ("extend", "restyle", "inpaint", "slowmo", "edit") and index == 1) or \
                (command, index) == ("inpaint", 2)
            out += [Case("input file", tuple(_replace(command, index, v))) for v in (BAD_VIDEOS if video
                                                                                     else BAD_IMAGES)]
    out += [Case("input file", tuple(_replace(c, 2, m))) for c in ("inpaint", "cinemagraph")
            for m in ("photo.png", "blank.png", "small.png")]  # a colour picture, no white, another size
    out.append(Case("input file", ("extend", "clip.gif", "-o", "out.mp4", "--model", "model", "--new-frames",
                                   "1023")))  # too many frames in all
    out.append(Case("input file", ("slowmo", "photo.png", "-o", "out.mp4", "--model", "model")))  # one frame
    for command in (*TASK_COMMANDS, "restyle", "inpaint", "cinemagraph", "slowmo", "edit", "generate"):
        out += [Case("output", tuple(_with(command, "-o", v))) for v in VIDEO_OUTPUTS]
    out += [Case("instruction", tuple(_replace("edit", 2, v))) for v in ("", "  ?! ", "make it purple",
                                                                       "make " * 13)]
    out += [Case("output", ("extend", "clip.gif", "-o", "clip.gif", "--model", "model")),  # the input itself
            Case("output", ("interpolate", "photo.png", "photo2.png", "-o", "photo2.png", "--model", "model")),
            Case("output", ("animate", "photo.png", "-o", "frames/", "--model", "model")),  # a non-empty folder
            Case("output", ("extend", "frames", "-o", "frames/", "--model", "model"))]
    for command in ("compress", "distill"):
        out += [Case("output", tuple(_with(command, "-o", v))) for v in MODEL_OUTPUTS]
    out.append(Case("output", ("compress", "--model", "model", "-o", "model", "--finetune-steps", "0")))
    out.append(Case("output", ("compress", "--model", "model", "-o", "small", "--work-dir", "photo.png")))
    out += [Case("output", tuple(_with("eval", "-o", v))) for v in EVAL_OUTPUTS]
    for command in ("animate", "eval", "compress", "distill", "flops", "interpolate", "restyle", "inpaint", "slowmo"):
        out += [Case("model folder", tuple(_with(command, "--model", m))) for m in BAD_MODELS
                if command != "flops" or m not in FLOPS_READABLE]
    out += [Case("model folder", tuple(_with("generate", "--model", m))) for m in BAD_SVD]
    out += [Case("model folder", tuple(_with("edit", "--model", m))) for m in [*BAD_MODELS, "model", "svdgarbage",
                                                                                "badeditor", "editorchannels"]]
    out += [Case("model folder", ("flops", "--model", "bogus-preset"))]
    out += [Case("yaml file", tuple(_with("train", "--config", y))) for y in BAD_TRAIN_YAML]
    out += [Case("yaml file", tuple(_with("distill", "--config", y))) for y in BAD_DISTILL_YAML]
    out += [Case("yaml file", tuple(_with("compress", "--recipe", r))) for r in BAD_RECIPES]
    random.Random(seed).shuffle(out)
    return out


def fast_subset(all_cases: list[Case], size: int = 60, seed: int = 0, skip=frozenset()) -> list[Case]:
    """About `size` cases drawn evenly from every class (a seeded draw), none of `skip` (their str)."""
    rng = random.Random(seed)
    kinds = sorted({c.kind for c in all_cases})
    pool = {k: [c for c in all_cases if c.kind == k and str(c) not in skip] for k in kinds}
    chosen = []
    while len(chosen) < size and any(pool.values()):
        for k in kinds:
            if pool[k] and len(chosen) < size:
                chosen.append(pool[k].pop(rng.randrange(len(pool[k]))))
    return chosen


# ---------------------------------------------------------------------------------------------- the scratch folder

TINY_YAML = {"output_dir": "runs/fuzz", "seed": 0, "data": {"name": "moving_mnist", "num_frames": 4, "size": 32},
             "pipeline": {"data_channels": 1, "fps": 10, "conditioning": {"hint": "none"}, "steps": 2},
             "model": {"channels": [32, 32], "layers_per_level": [1, 1], "heads": [1, 1],
                       "transformer_depth": [1, 1], "attention": [False, True], "temporal_attention": [False, True],
                       "temporal_conv": [True, True], "temporal_downsample": [False, False], "mid_attention": True,
                       "cross_attention_dim": None, "num_added_time_ids": 0, "down_eps": [1e-6, 1e-6],
                       "mid_eps": 1e-6},
             "train": {"batch_size": 2, "steps": 6, "lr": 1e-3, "warmup_steps": 2, "checkpoint_every": 3,
                       "log_every": 1, "num_workers": 0}}


def make_scratch(folder: Path) -> Path:
    """The scratch folder every case starts from (build once, copy per case)."""
    import numpy as np
    import yaml
    from PIL import Image

    from native_fixtures import save_tiny_native

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)) for _ in range(4)]
    pictures[0].save(folder / "photo.png")
    pictures[1].save(folder / "photo2.png")
    pictures[0].save(folder / "clip.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(folder / "mask.png")  # the size of the photos and of the clip's frames
    Image.fromarray(mask * 0).save(folder / "blank.png")
    Image.fromarray(mask[:20]).save(folder / "small.png")
    (folder / "frames").mkdir()
    for i, p in enumerate(pictures[:3]):
        p.save(folder / "frames" / f"frame_{i:05d}.png")
    png, gif = (folder / "photo.png").read_bytes(), (folder / "clip.gif").read_bytes()
    garbage = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for name, data in {"empty.png": b"", "garbage.png": garbage, "truncated.png": png[:len(png) // 2],
                       "empty.mp4": b"", "garbage.mp4": garbage, "truncated.gif": gif[:len(gif) // 3],
                       "notes.txt": b"not a picture\n"}.items():
        (folder / name).write_bytes(data)
    (folder / "adir").mkdir()
    (folder / "adir" / "keep.txt").write_text("a folder that is not empty\n")
    (folder / "emptydir").mkdir()
    (folder / "garbagedir").mkdir()
    (folder / "garbagedir" / "frame_00000.png").write_bytes(garbage)

    model = save_tiny_native(folder / "model")
    from edit_fixtures import tiny_editor
    tiny_editor().save_pretrained(folder / "editor")
    shutil.copytree(folder / "editor", folder / "badeditor")
    unet_weights = folder / "badeditor" / "unet" / "diffusion_pytorch_model.safetensors"
    unet_weights.write_bytes(unet_weights.read_bytes()[:1000])
    shutil.copytree(folder / "editor", folder / "editorchannels")  # an editor folder whose UNet reads 3 channels
    unet_config = json.loads((folder / "editorchannels" / "unet" / "config.json").read_text())
    (folder / "editorchannels" / "unet" / "config.json").write_text(json.dumps({**unet_config, "in_channels": 3}))
    config, pipeline = (model / "config.json").read_text(), (model / "pipeline.json").read_text()
    weights = (model / "model.safetensors").read_bytes()

    def broken(name: str, files: dict) -> None:
        (folder / name).mkdir()
        for file, data in {"config.json": config, "pipeline.json": pipeline, "model.safetensors": weights,
                           **files}.items():
            if data is not None:
                (folder / name / file).write_bytes(data if isinstance(data, bytes) else data.encode())

    broken("badconfig", {"config.json": "{not json"})
    broken("badpipeline", {"pipeline.json": b"\x00\xff garbage"})
    broken("listconfig", {"config.json": "[1, 2, 3]"})
    broken("nullpipeline", {"pipeline.json": "null"})
    broken("pickle", {"model.safetensors": None, "model.bin": b"\x80\x04K\x01."})  # pickle-only weights
    broken("truncweights", {"model.safetensors": weights[:len(weights) // 2]})
    raw = json.loads(config)
    raw["in_channels"] = raw["in_channels"] + 1
    broken("wrongchannels", {"config.json": json.dumps(raw)})
    (folder / "svdgarbage").mkdir()
    (folder / "svdgarbage" / "model_index.json").write_text("{broken")
    for part in ("unet", "vae", "image_encoder", "feature_extractor"):
        (folder / "svdgarbage" / part).mkdir()

    def dump(name: str, value) -> None:
        (folder / name).write_text(value if isinstance(value, str) else yaml.safe_dump(value))

    dump("tiny.yaml", TINY_YAML)
    dump("empty.yaml", "")
    dump("notmap.yaml", "- a\n- b\n")
    dump("invalid.yaml", "a: [1, 2\nb: {")
    dump("unknown.yaml", {**TINY_YAML, "bogus_key": 1})
    dump("wrongtype.yaml", {**TINY_YAML, "train": {**TINY_YAML["train"], "steps": "many"}})
    dump("negsteps.yaml", {**TINY_YAML, "train": {**TINY_YAML["train"], "lr": -1.0}})
    dump("badbase.yaml", {"base": "missing.yaml", "seed": 1})
    dump("selfbase.yaml", {"base": "selfbase.yaml"})
    (folder / "binary.yaml").write_bytes(garbage)
    dump("nomodel.yaml", {k: v for k, v in TINY_YAML.items() if k != "model"})
    dump("baddata.yaml", {**TINY_YAML, "data": {"name": "bogus_dataset"}})
    dump("distill_unknown.yaml", {"train": {"steps": 2}, "bogus": {}})
    dump("distill_types.yaml", {"train": {"steps": "two"}})
    dump("distill_section.yaml", {"distill": [1, 2]})
    dump("recipe_unknown.yaml", {"bogus": 1})
    return folder


def listing(folder: Path) -> dict[str, str]:
    """Every path under `folder` (hidden ones included) -> the hash of its bytes ('' for a folder)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder) + "/"] = ""
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


class CaseTimeout(BaseException):
    """A case ran past its time limit (the command went on to do work instead of refusing)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise CaseTimeout(f"still running after {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_captured(argv) -> tuple[int, str, str]:
    """main(argv) in-process with stdout and stderr captured (outside pytest, which has capsys)."""
    from lightvid.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def check_case(case: Case, scratch: Path, runner, timeout: float = 120.0) -> str | None:
    """Run `case` in `scratch` with runner(argv) -> (code, stdout, stderr); None if it passed, else what went wrong.

    The working directory is `scratch` while the case runs."""
    before = listing(scratch)
    cwd = os.getcwd()
    os.chdir(scratch)
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            code, _, err = runner(case.argv)
    except BaseException as e:  # a traceback in a terminal: the failure reported
        if isinstance(e, KeyboardInterrupt):
            raise
        return f"raised {type(e).__name__}: {' '.join(str(e).split())[:200]}"
    finally:
        os.chdir(cwd)
        _reset_accelerate()
    seconds = time.perf_counter() - start
    problems = []
    lines = err.splitlines()
    if code != 2:
        problems.append(f"exit code {code}")
    if "Traceback" in err:
        problems.append("a traceback on stderr")
    if len(lines) != 1 or not lines[0].startswith("lightvid: error:"):
        shown = " | ".join(lines[:4])[:300]
        problems.append(f"stderr is {len(lines)} line(s), not one 'lightvid: error:' line: {shown!r}")
    elif case.names is not None and case.names not in lines[0]:
        problems.append(f"the error does not name {case.names}: {lines[0]!r}")
    after = listing(scratch)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    for what, paths in (("left behind", added), ("removed", removed), ("changed", changed)):
        if paths:
            problems.append(f"{what}: {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}")
    if seconds > timeout / 2:
        problems.append(f"took {seconds:.1f} s")
    if problems and lines and lines[0].startswith("lightvid: error:") and code == 2:
        problems.append(f"(stderr: {lines[0][:200]!r})")
    return "; ".join(problems) or None


def _reset_accelerate() -> None:
    """accelerate keeps one process-wide state; each case starts from a clean one, as a new process would."""
    import sys
    if "accelerate" in sys.modules:
        from accelerate.state import AcceleratorState
        AcceleratorState._reset_state(reset_partial_state=True)


def fresh_scratch(template: Path, where: Path) -> Path:
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(template, where, symlinks=True)
    return where
