"""What the web app's tabs run (`lightvid serve`, web.py): the model picker's catalogue, the app's limits, and one
method per task that checks a request against those limits, then calls the very command function the CLI runs
(tasks.py). A web result is therefore the file `lightvid animate ... --seed S` writes, bit for bit.

Every refusal is a LightvidError turned into one `gr.Error` line in the page, with the server's upload paths
replaced by the file names the user uploaded. Gradio itself is imported only for that error: this module is also
what the tests drive without a browser.
"""
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lightvid.errors import LightvidError
from lightvid.weights import EMBEDDED, model_folder

from . import regions, restyle, tasks
from .options import RUNTIME_NAMES as RUNTIMES
from .options import WINDOW_MODE_NAMES as WINDOW_MODES

PIPELINE_FILE = "pipeline.json"  # what makes a folder a native model (lightvid.pipelines.native)

COMMANDS = {"animate": tasks.animate, "interpolate": tasks.interpolate, "extend": tasks.extend, "loop": tasks.loop,
            "restyle": restyle.restyle, "inpaint": regions.inpaint,
            "cinemagraph": regions.cinemagraph}  # the CLI's command functions the tabs call
GUIDED = ("animate", "interpolate", "extend", "loop")  # the commands with --guidance (the app samples without it)
# The browser's number fields hold doubles: integers above 2^53 would arrive rounded, and the same seed would not
# give the CLI's video. 2^32 - 1 keeps the field short and every seed exact.
MAX_WEB_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. Stricter than the CLI's limits (options.py): a server shares its cores between
    everyone's requests, and one request must not hold them for an hour."""
    frames: int = 64  # frames of a result video (an extended video counts with its new frames)
    steps: int = 50  # sampling steps, given or the model's default
    megapixels: float = 16.0  # an uploaded image or one frame of an uploaded video
    upload_mb: int = 20  # one uploaded file, in MB (enforced by gradio on upload, see web.launch)


@dataclass(frozen=True)
class ModelInfo:
    model: str  # what --model takes: an embedded name or a folder path
    window: int  # frames the model makes in one pass
    height: int
    width: int
    fps: float
    default_steps: int  # what a request without Steps samples (a shipped student's steps, if any)

    def describe(self) -> str:
        return f"{self.height}x{self.width}, {self.window} frames at {self.fps:g} fps"


def find_models(folders: list[Path]) -> dict[str, ModelInfo]:
    """The model picker's choices, by label: the embedded models, then every `--models DIR` (a model folder, or a
    folder whose subfolders are model folders). Only these can be picked: the web user never types a path."""
    chosen = {name: str(name) for name in EMBEDDED}
    for folder in folders:
        for found in _model_folders(folder):
            if str(found.resolve()) in chosen.values():  # given twice (a folder and the folder above it)
                continue
            label = found.name if found.name not in chosen else f"{found.parent.name}/{found.name}"
            while label in chosen:  # two folders of the same name under folders of the same name
                label += "'"
            chosen[label] = str(found.resolve())
    return {label: _info(model) for label, model in chosen.items()}


def _model_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise LightvidError(f"--models {folder}: no such folder")
    if (folder / PIPELINE_FILE).is_file():
        return [folder]
    found = sorted(sub for sub in folder.iterdir() if (sub / PIPELINE_FILE).is_file())
    if not found:
        raise LightvidError(f"--models {folder}: holds no model folder (a folder with {PIPELINE_FILE}) and is none")
    return found


def _info(model: str) -> ModelInfo:
    """A model's frame format and default steps, read (and checked) from its pipeline.json without its weights."""
    from lightvid.pipelines.native import read_settings

    folder = model_folder(model)
    settings, facts = read_settings(folder)
    student = facts.get("student")  # sampled by default instead of the model itself (NativePipeline.for_sampling)
    steps = read_settings(folder / student)[0].steps if student else settings.steps
    return ModelInfo(model, settings.num_frames, settings.height, settings.width, settings.fps, steps)


class WebTasks:
    """The tasks as the web app runs them. `keep(path) -> str` copies a finished video to where the server
    serves it from (gradio's cache) before its temporary folder is deleted."""

    def __init__(self, models: dict[str, ModelInfo], limits: Limits, keep: Callable[[Path], str]):
        self.models, self.limits, self.keep = models, limits, keep

    def animate(self, image, model, frames, seed, steps, runtime="torch", windows="chain") -> str:
        info, frames = self._model(model), _given(frames)
        _count("Frames", frames, info.window, 2, self.limits.frames, "(this app's limit)")
        return self._run("animate", {"image": self._image(image, "a photo")}, info, seed, steps, runtime,
                         frames=frames, windows=_windows(windows))

    def interpolate(self, first, last, model, frames, seed, steps, runtime="torch", windows="chain") -> str:
        info, frames = self._model(model), _given(frames)
        if _windows(windows) == "chain":
            _count("Frames", frames, info.window, 3, min(info.window, self.limits.frames),
                   f"for interpolation with {model} and Windows chain (its window is {info.window} frames)")
        else:
            _count("Frames", frames, info.window, 3, self.limits.frames, "(this app's limit)")
        uploads = {"first": self._image(first, "the first frame"), "last": self._image(last, "the last frame")}
        return self._run("interpolate", uploads, info, seed, steps, runtime, frames=frames, windows=windows)

    def extend(self, video, model, new_frames, seed, steps, runtime="torch", windows="chain") -> str:
        info, new_frames = self._model(model), _given(new_frames)
        new = _count("New frames", new_frames, info.window // 2, 1, self.limits.frames - 1, "(this app's limit)")
        upload = self._video(video, info, new)
        return self._run("extend", {"video": upload}, info, seed, steps, runtime, new_frames=new_frames,
                         windows=_windows(windows))

    def restyle(self, video, model, strength, seed, steps, runtime="torch") -> str:
        info = self._model(model)
        if runtime != "torch":
            raise _error("Runtime: restyle runs with torch (it loads the model's own weights)")
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 1:
            raise _error(f"Strength must be more than 0 and at most 1, got {strength!r}")
        upload = self._video(video, info, 0)
        return self._run("restyle", {"video": upload}, info, seed, steps, None, strength=float(strength))

    def inpaint(self, video, mask, model, seed, steps, runtime="torch") -> str:
        info = self._model(model)
        uploads = {"video": self._video(video, info, 0, own_rate=True), "mask": self._image(mask, "a mask")}
        return self._run("inpaint", uploads, info, seed, steps, runtime)

    def cinemagraph(self, image, mask, model, frames, seed, steps, runtime="torch") -> str:
        info, frames = self._model(model), _given(frames)
        _count("Frames", frames, info.window, 2, self.limits.frames, "(this app's limit)")
        uploads = {"image": self._image(image, "a photo"), "mask": self._image(mask, "a mask")}
        return self._run("cinemagraph", uploads, info, seed, steps, runtime, frames=frames)

    def loop(self, image, model, frames, seed, steps, runtime="torch", windows="chain") -> str:
        info, frames = self._model(model), _given(frames)
        _count("Frames", frames, info.window - 1, 3, self.limits.frames - 1, "(this app's limit, less the repeated "
               "first frame)")
        return self._run("loop", {"image": self._image(image, "a first frame")}, info, seed, steps, runtime,
                         frames=frames, windows=_windows(windows))

    def _model(self, label) -> ModelInfo:
        if label not in self.models:
            raise _error(f"Model: pick one of {', '.join(self.models)}, got {label!r}")
        return self.models[label]

    def _image(self, path, what: str) -> Path:
        """The uploaded file, checked as the CLI checks an image (header only), then against the app's pixels."""
        if not path:
            raise _error(f"Upload {what} first")
        from PIL import Image

        from lightvid.io import check_image
        with _shown_as_uploaded(path):
            check_image(path)
            with Image.open(path) as im:  # reads the header: the size, no pixels
                self._check_pixels(path, im.width, im.height, "image")
        return Path(path)

    def _video(self, path, info: ModelInfo, new: int, own_rate: bool = False) -> Path:
        """The uploaded video, bounded as the CLI's extend bounds it (frame size, then frame count at the model's
        frame rate, or the video's own with `own_rate`, reading one frame more than allowed, no more) but by the
        app's limits."""
        if not path:
            raise _error("Upload a video first")
        from lightvid.io import VIDEO_INPUT, check_input, read_video
        with _shown_as_uploaded(path):
            check_input(path, VIDEO_INPUT)
            size = _video_size(path)
            if size is not None:
                self._check_pixels(path, *size, "video's frames")
            allowed = self.limits.frames - new
            fps = None if own_rate else info.fps
            clip, _ = read_video(path, fps=fps, size=(info.height, info.width), max_frames=allowed + 1)
            if clip.shape[0] > allowed:
                rate = f" at {fps:g} fps" if fps is not None else ""
                raise LightvidError(f"{path}: more than {allowed} frames{rate}; with {new} new frames the result "
                                    f"would pass this app's limit of {self.limits.frames} frames (trim it first)")
        return Path(path)

    def _check_pixels(self, path, width: int, height: int, what: str) -> None:
        if width * height > self.limits.megapixels * 1e6:
            raise LightvidError(f"{path}: the {what} {width}x{height} = {width * height / 1e6:.3g} megapixels: this "
                                f"app takes at most {self.limits.megapixels:g} megapixels (scale it down first)")

    def _run(self, command: str, uploads: dict, info: ModelInfo, seed, steps, runtime, **frames) -> str:
        """Run the CLI's command function into a temporary folder of this request's own, keep the video."""
        _seed(seed)
        steps = _given(steps)
        if steps is not None:
            _count("Steps", steps, None, 1, self.limits.steps, "(this app's limit)")
        elif info.default_steps > self.limits.steps:
            raise _error(f"Steps: this model samples {info.default_steps} steps by default, more than this app's "
                         f"limit of {self.limits.steps}: give Steps")
        if runtime is not None and runtime not in RUNTIMES:
            raise _error(f"Runtime: pick one of {', '.join(RUNTIMES)}, got {runtime!r}")
        # restyle (runtime None) takes neither guidance nor a runtime; inpaint and cinemagraph take no guidance
        options = {} if runtime is None else {"bf16": False, "runtime": runtime}
        options |= {"guidance": 1.0} if command in GUIDED else {}
        with tempfile.TemporaryDirectory(prefix="lightvid-web-") as folder:
            output = Path(folder) / f"lightvid-{command}-seed{seed}.mp4"
            with _shown_as_uploaded(*uploads.values(), result=folder):
                COMMANDS[command](**uploads, output=str(output), model=info.model, seed=seed, steps=steps,
                                  sampler=None, height=None, width=None, gif=False, **options, **frames)
            return self.keep(output)


def _windows(mode) -> str:
    if mode not in WINDOW_MODES:
        raise _error(f"Windows: pick one of {', '.join(WINDOW_MODES)}, got {mode!r}")
    return mode


def _given(value):
    """A count the user left to the model: None, or 0 (the page's number fields send 0 when cleared)."""
    return None if value is None or (value == 0 and not isinstance(value, bool)) else value


def _count(label: str, value, default: int | None, low: int, high: int, why: str) -> int:
    """`value` (None: `default`) must be a whole number in [low, high]; the message names the field and the bound."""
    n = default if value is None else value
    if not isinstance(n, int) or isinstance(n, bool) or not low <= n <= high:
        given = f"got {n!r}" if value is not None else f"and the model's default is {n}: give {label}"
        raise _error(f"{label} must be {low} to {high} {why}, {given}")
    return n


def _seed(seed) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_WEB_SEED:
        raise _error(f"Seed must be a whole number from 0 to {MAX_WEB_SEED}, got {seed!r}")


def _video_size(path) -> tuple[int, int] | None:
    """(width, height) from the first video stream's header; None where PyAV cannot tell (read_video then says
    what is wrong with the file, in the CLI's words)."""
    import av
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0].codec_context
            return stream.width, stream.height
    except (av.FFmpegError, OSError):
        return None


def _error(message: str):
    import gradio as gr
    return gr.Error(message, title="lightvid", print_exception=False)


@contextmanager
def _shown_as_uploaded(*uploads, result: str | None = None):
    """Turns a LightvidError (or an OSError, as the CLI's main does) raised inside into a gr.Error whose message
    names each upload by the name it was uploaded with (gradio keeps it as the file name) and a request's
    temporary folder as "the result", never by a server path."""
    try:
        yield
    except (LightvidError, OSError) as e:
        if isinstance(e, LightvidError):
            message = str(e)
        else:
            message = f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e)
        from lightvid.io import shown
        names = {text: Path(p).name for p in uploads for text in (str(p), shown(p))}
        names |= {result: "the result"} if result else {}
        for path, name in sorted(names.items(), key=lambda item: -len(item[0])):  # a longer path first
            message = message.replace(path, name)
        raise _error(" ".join(message.split())) from None
