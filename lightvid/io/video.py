"""Reading and writing videos: PyAV for mp4/mov/webm/gif input, H.264/VP9/GIF/PNG-folder output.

Conventions
- `read_video` returns float32 frames (F, 3, H, W) in [-1, 1] (lightvid's pixel convention) and the
  frame rate; `read_video_uint8` returns numpy uint8 (F, H, W, 3) instead.
- Time selection happens on an *output timeline* of `fps` frames per second starting at the first
  decoded frame: output frame k (k >= start) is the source frame whose timestamp is nearest to
  k / fps (ties go to the earlier frame); output stops where the last source frame ends. Without
  `fps`, the output timeline is the source frames themselves.
- `write_video` writes atomically (temp file + rename, see `atomic.py`): a failed write leaves no
  partial file and keeps an existing target; a video and its GIF preview land together or not at all.
- Inputs are regular files or folders of frames, checked before they are opened (`paths.py`); a video whose
  frames are over MAX_IMAGE_PIXELS is refused from its stream header, before decoding. Outputs are checked
  before any work (`check_output_path`): never an input, names that fit the filesystem, a writable folder.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.io.atomic import atomic_outputs, check_dir_target, shown
from lightvid.io.image import (
    MIN_IMAGE_SIDE,
    check_image_size,
    check_pixel_count,
    load_image,
    resize_and_crop,
    tensor_to_uint8,
    uint8_to_tensor,
)
from lightvid.io.paths import (
    check_input,
    check_name_length,
    check_not_current_folder,
    check_not_input,
)

FOLDER_FPS = 8.0  # frame rate assumed for a folder of images (it has no timestamps)
MAX_READ_FRAMES = 4096  # reading more needs an explicit max_frames: 4096 frames of 512^2 are ~13 GB
MAX_FPS = 1000.0
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
H264_CRF = 17  # near-transparent: smooth colour gradients round-trip at ~42 dB PSNR (tests/test_io.py)
VP9_CRF = 20
WRITE_FORMATS = ".mp4/.mov (H.264), .webm (VP9), .gif, or a folder of PNG frames (path ending in '/')"
VIDEO_INPUT = "a video file (mp4, webm, gif, ...) or a folder of frames"


# ---------------------------------------------------------------------------------------------- reading


class SourceFrame:
    """A decoded frame with its time in seconds (from the first frame), decoded to RGB on demand."""

    def __init__(self, time: float, duration: float | None, load):
        self.time, self.duration, self._load, self._array = time, duration, load, None

    def array(self) -> np.ndarray:  # (H, W, 3) uint8
        if self._array is None:
            self._array = self._load()
        return self._array


def _check_read_args(fps, start, max_frames, size) -> None:
    if fps is not None:
        check_fps(fps)
    if not isinstance(start, int) or start < 0:
        raise LightvidError(f"start must be a frame index >= 0, got {start!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise LightvidError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if size is not None:
        ok = len(size) == 2 and all(isinstance(s, int) and s >= MIN_IMAGE_SIDE for s in size)
        if not ok:
            raise LightvidError(f"size must be (height, width) integers >= {MIN_IMAGE_SIDE}, got {size!r}")


def select_frames(frames: Iterator[SourceFrame], fps, start, max_frames, name):
    """Pick output frames from a stream of source frames (see the module docstring).

    Returns the picked frames and (time, duration) of the source frames seen, for the source rate.
    """
    out: list[np.ndarray] = []
    seen: list[tuple[float, float | None]] = []  # not the frames: they would pin decoded memory
    limit = max_frames if max_frames is not None else MAX_READ_FRAMES + 1

    def emit(frame: SourceFrame) -> bool:
        out.append(frame.array())
        if max_frames is None and len(out) > MAX_READ_FRAMES:
            raise LightvidError(
                f"{shown(name)}: more than {MAX_READ_FRAMES} frames to read; pass max_frames or a lower fps"
            )
        return len(out) >= limit

    k, prev = start, None
    for frame in frames:
        seen.append((frame.time, frame.duration))
        if fps is None:
            if len(seen) > start and emit(frame):
                return out, seen
            continue
        while k / fps <= frame.time:
            target = k / fps
            best = prev if prev is not None and target - prev.time <= frame.time - target else frame
            k += 1
            if emit(best):
                return out, seen
        prev = frame  # the frame before is never picked again: targets are now past frame.time
    if fps is not None and prev is not None:
        end = prev.time + (prev.duration or _median_step(seen) or 1.0 / fps)
        while k / fps < end - 1e-9:
            k += 1
            if emit(prev):
                break
    return out, seen


def _median_step(seen: list[tuple[float, float | None]]) -> float | None:
    steps = [b[0] - a[0] for a, b in itertools.pairwise(seen) if b[0] > a[0]]
    return statistics.median(steps) if steps else None


def _source_fps(seen: list[tuple[float, float | None]], fallback: float | None) -> float:
    step = _median_step(seen)
    if step:
        return 1.0 / step
    if seen and seen[-1][1]:
        return 1.0 / seen[-1][1]
    return fallback or FOLDER_FPS


def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


# Subsampled chroma is first upsampled to 4:4:4 with bilinear interpolation: swscale's direct
# yuv420p -> rgb24 path repeats chroma samples, which costs ~9 dB PSNR on smooth colour gradients.
_FULL_CHROMA = {
    "yuv420p": "yuv444p",
    "yuv422p": "yuv444p",
    "nv12": "yuv444p",
    "yuvj420p": "yuvj444p",
    "yuvj422p": "yuvj444p",
    "yuv420p10le": "yuv444p10le",
    "yuv422p10le": "yuv444p10le",
}


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB."""
    full = _FULL_CHROMA.get(frame.format.name)
    if full is not None:
        frame = frame.reformat(format=full, interpolation="BILINEAR")
    return frame.to_ndarray(format="rgb24")


def _read_folder(path: Path, fps, start, max_frames, resize):
    files = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        raise LightvidError(f"{shown(path)}: folder has no frames (expected {', '.join(FRAME_SUFFIXES)} files)")
    step = 1.0 / FOLDER_FPS
    frames = (
        SourceFrame(i * step, step, lambda p=p: resize(np.asarray(load_image(p)), p))
        for i, p in enumerate(files)
    )
    out, _ = select_frames(frames, fps, start, max_frames, path)
    return out, FOLDER_FPS, len(files)


def _read_container(path: Path, fps, start, max_frames, resize):
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise LightvidError(f"{shown(path)}: file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        check_pixel_count(stream.codec_context.height or 0, stream.codec_context.width or 0, path)
        if "gif" in container.format.name.split(",") and not _ends_with_trailer(path):
            raise LightvidError(f"{shown(path)}: truncated GIF (no trailer byte at the end)")

        def to_rgb(frame: av.VideoFrame) -> np.ndarray:
            check_pixel_count(frame.height, frame.width, path)  # a stream may change size midway
            return resize(frame_to_rgb(frame), path)

        finished = []

        def frames():
            yield from source_frames(container, stream, to_rgb)
            finished.append(True)

        out, seen = select_frames(frames(), fps, start, max_frames, path)
        # An MP4's index counts its frames. An edit list or a decoder's delay may hide a few of them in a valid file,
        # so only a larger shortfall is a truncated file (one cut a frame or two before its end passes as shorter).
        missing = stream.frames - len(seen) if finished and stream.frames else 0
        if missing > max(2, stream.frames // 50):
            raise LightvidError(f"{shown(path)}: truncated video ({len(seen)} of its {stream.frames} frames decode)")
        return out, _source_fps(seen, float(rate) if rate else None), len(seen)


def _ends_with_trailer(path: Path) -> bool:
    """A GIF's last byte, before any padding (NUL or whitespace bytes some writers append), is its trailer ';'."""
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
        return f.read().rstrip(b"\0 \t\r\n").endswith(b";")


def source_frames(container, stream, to_rgb) -> Iterator[SourceFrame]:
    """The decoded frames of `stream`, timed from the first one; frames without a timestamp are placed at the
    stream's nominal rate. `to_rgb(frame)` runs only for the frames `select_frames` keeps."""
    rate = stream.average_rate or stream.guessed_rate
    rate = float(rate) if rate else FOLDER_FPS
    t0 = None
    for i, frame in enumerate(container.decode(stream)):
        t = frame.time if frame.time is not None else i / rate
        t0 = t if t0 is None else t0
        duration = getattr(frame, "duration", None)
        duration = float(duration * frame.time_base) if duration and frame.time_base else None
        yield SourceFrame(t - t0, duration, lambda f=frame: to_rgb(f))


def read_video_uint8(
    path: str | os.PathLike,
    fps: float | None = None,
    start: int = 0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, float]:
    """Read a video file or a folder of frames as uint8 (F, H, W, 3) RGB and its frame rate.

    path: an .mp4/.mov/.webm/.gif/... file (anything FFmpeg demuxes) or a folder of PNG/JPG frames
      taken in name order (digits compared as numbers), played at FOLDER_FPS (8) frames per second.
    fps: resample to this rate by picking the nearest source frame per output timestamp; None keeps
      the source frames. The returned rate is `fps`, or the source's (median frame step) if None.
    start, max_frames: the range [start, start + max_frames) of the output timeline. Without
      max_frames, more than MAX_READ_FRAMES (4096) frames is an error rather than an out-of-memory.
    size: (height, width): every frame is resized to cover it and center-cropped (LANCZOS).
    A missing, unreadable, corrupt or empty input, or `start` past the end, is a LightvidError.
    """
    _check_read_args(fps, start, max_frames, size)
    path = Path(path)

    def resize(array: np.ndarray, name) -> np.ndarray:
        check_image_size(array.shape[0], array.shape[1], name)
        if size is None:
            return array
        return np.asarray(resize_and_crop(Image.fromarray(array), size[0], size[1]))

    check_input(path, VIDEO_INPUT, folder_ok=True)  # a FIFO would make the demuxer wait forever
    if path.is_file() and path.stat().st_size == 0:
        raise LightvidError(f"{shown(path)}: file is empty")
    try:
        if path.is_dir():
            out, src_fps, count = _read_folder(path, fps, start, max_frames, resize)
        else:
            out, src_fps, count = _read_container(path, fps, start, max_frames, resize)
    except av.FFmpegError as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise LightvidError(f"{shown(path)}: not a readable video ({' '.join(str(reason).split())})") from None
    except (MemoryError, OSError) as e:
        raise LightvidError(f"{shown(path)}: cannot read ({' '.join(str(e).split())})") from None
    if count == 0:
        raise LightvidError(f"{shown(path)}: video has no frames")
    if not out:
        raise LightvidError(f"{shown(path)}: start={start} is past the end of the video ({count} source frames)")
    if len({a.shape for a in out}) > 1:
        shapes = sorted({f"{a.shape[1]}x{a.shape[0]}" for a in out})
        raise LightvidError(f"{shown(path)}: frames differ in size ({', '.join(shapes)}); pass size=(h, w)")
    return np.stack(out), float(fps if fps is not None else src_fps)


def read_video(
    path: str | os.PathLike,
    fps: float | None = None,
    start: int = 0,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, float]:
    """Read a video as float32 (F, 3, H, W) in [-1, 1] and its frame rate. See `read_video_uint8`."""
    frames, rate = read_video_uint8(path, fps=fps, start=start, max_frames=max_frames, size=size)
    return uint8_to_tensor(frames), rate


# ---------------------------------------------------------------------------------------------- writing


def _as_uint8_frames(frames) -> np.ndarray:
    """(F, 3, H, W) float in [-1, 1] (torch or numpy) or (F, H, W, 3) uint8 -> (F, H, W, 3) uint8."""
    expected = "(F, 3, H, W) float in [-1, 1] or (F, H, W, 3) uint8"
    if not isinstance(frames, (torch.Tensor, np.ndarray)):
        raise LightvidError(f"frames must be a tensor or array {expected}, got {type(frames).__name__}")
    shape, dtype = tuple(frames.shape), frames.dtype
    if dtype == torch.uint8 or (isinstance(frames, np.ndarray) and dtype == np.uint8):
        arr = frames.numpy(force=True) if isinstance(frames, torch.Tensor) else frames
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise LightvidError(f"frames must be {expected}; got uint8 of shape {shape}")
    else:
        t = torch.as_tensor(frames)
        if not t.is_floating_point() or t.ndim != 4 or t.shape[1] != 3:
            raise LightvidError(f"frames must be {expected}; got {dtype} of shape {shape}")
        if t.numel() and not torch.isfinite(t).all():
            raise LightvidError("frames contain NaN or infinite values; nothing was written")
        if t.numel() and t.abs().max() > 2.0:
            lo, hi = t.min().item(), t.max().item()
            raise LightvidError(f"frame values span [{lo:.3g}, {hi:.3g}]; expected [-1, 1]")
        arr = tensor_to_uint8(t)
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise LightvidError(f"nothing to write: frames have shape {shape}")
    return np.ascontiguousarray(arr)


def check_fps(fps) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        raise LightvidError(f"fps must be a number in (0, {MAX_FPS:g}], got {fps!r}")
    if not 0 < fps <= MAX_FPS:
        raise LightvidError(f"fps must be a number in (0, {MAX_FPS:g}], got {fps!r}")
    return float(fps)


def _av_frame(array: np.ndarray) -> av.VideoFrame:
    """One RGB frame for the encoder (a seam for tests that make encoding fail midway)."""
    return av.VideoFrame.from_ndarray(array, format="rgb24")


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad H and W up to even by replicating the last row/column (yuv420p needs even sizes)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _write_av(frames: np.ndarray, tmp: Path, fps: float, codec: str, options: dict, path: Path) -> None:
    """Encode `frames` into the file `tmp` (a temporary name for `path`, named in errors)."""
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = options
            for array in frames:
                container.mux(stream.encode(_av_frame(array)))
            container.mux(stream.encode())  # flush delayed frames
    except av.FFmpegError as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise LightvidError(f"{shown(path)}: could not encode with {codec} ({' '.join(reason.split())}); "
                            "nothing was written") from None


def _gif_centiseconds(fps: float) -> int:
    """GIF frame delays are whole centiseconds, and viewers treat delays below 2 as 10."""
    return max(2, round(100.0 / fps))


def _write_gif(frames: np.ndarray, tmp: Path, fps: float) -> None:
    """An animated GIF of `frames` into the file `tmp`."""
    images = [Image.fromarray(a) for a in frames]
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=10 * _gif_centiseconds(fps),
        loop=0,
    )


def _write_png_folder(frames: np.ndarray, tmp: Path) -> None:
    """PNG frames frame_00000.png, ... into the folder `tmp`."""
    for i, array in enumerate(frames):
        Image.fromarray(array).save(tmp / f"frame_{i:05d}.png")


def _output_kind(path: str | os.PathLike) -> str:
    """'folder', 'h264', 'vp9' or 'gif' for an output path; LightvidError for anything else."""
    if str(path).endswith(("/", os.sep)) or Path(path).is_dir():
        return "folder"
    path = Path(path)
    suffix = path.suffix.lower()
    kind = {".mp4": "h264", ".mov": "h264", ".webm": "vp9", ".gif": "gif"}.get(suffix)
    if kind is None:
        shown_suffix = shown(suffix) if suffix else "(no suffix)"
        raise LightvidError(f"{shown(path)}: unknown output format '{shown_suffix}'; use {WRITE_FORMATS}")
    if kind == "vp9" and "libvpx-vp9" not in av.codecs_available:
        raise LightvidError(f"{shown(path)}: this PyAV build has no VP9 encoder; use {WRITE_FORMATS}")
    return kind


def preview_path(path: str | os.PathLike) -> Path | None:
    """Where `write_video(..., gif_preview=True)` writes the GIF preview of `path`: the same name with the suffix
    .gif (frames/ -> frames.gif); None for a .gif output, which is its own preview."""
    return None if _output_kind(path) == "gif" else Path(path).with_suffix(".gif")


def check_output_path(
    path: str | os.PathLike,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    gif_preview: bool = False,
) -> Path:
    """Fail fast, before any generation, if `write_video(..., path)` would refuse `path` or lose an input.

    Checks, for the output and (with `gif_preview`) its GIF preview: the path is not empty, not the current
    folder, one of its parents or the root; the format (see `write_video`); that a frames folder is new, empty
    or `overwrite` is set, and the preview path not a folder; that no output is one of `inputs` (the same file
    by resolved path or `os.path.samefile`: symlinks, hard links) and no frames folder holds one; that every
    name fits the filesystem (NAME_MAX, PATH_MAX); that an existing parent folder is writable. Creates nothing.
    """
    given = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(given, str) or not given.strip():
        raise LightvidError(f"the output path is empty; use {WRITE_FORMATS}")
    path = Path(given)
    check_name_length(path)  # first: looking up an overlong name fails with ENAMETOOLONG
    check_not_current_folder(path, given)
    kind = _output_kind(given)
    inputs = [Path(p) for p in inputs]
    targets = [(path, "output", kind == "folder")]
    preview = preview_path(given) if gif_preview else None
    if preview is not None:
        targets.append((preview, "GIF preview", False))
    for target, what, folder in targets:
        check_name_length(target)
        check_not_input(target, inputs, folder, what)
        if folder:
            check_dir_target(target, overwrite)
        elif target.is_dir():
            raise LightvidError(f"{shown(target)}: is a folder; the {what} needs a file path there")
        parent = next((p for p in target.absolute().parents if p.exists()), None)
        if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK)):
            raise LightvidError(f"{shown(target)}: cannot write into {shown(parent)}")
        if parent is not None:
            _probe_writable(target, parent)
    return path


def _probe_writable(target: Path, parent: Path) -> None:
    """Create and delete a hidden file in `parent`: a folder that refuses new files although its permissions
    allow them (/proc, a read-only or full filesystem, root on a root-squashed share) is found before any work."""
    try:
        fd, name = tempfile.mkstemp(prefix=".lightvid-probe.", dir=parent)
    except OSError as e:
        raise LightvidError(f"{shown(target)}: cannot write into {shown(parent)} ({e.strerror})") from None
    os.close(fd)
    os.unlink(name)


def write_video(
    frames,
    path: str | os.PathLike,
    fps: float,
    gif_preview: bool = False,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Write frames to `path` atomically; returns the written paths (the video, then the preview).

    frames: (F, 3, H, W) float in [-1, 1] (torch or numpy; overshoot up to |x| <= 2 is clamped) or
      (F, H, W, 3) uint8. Empty, non-finite or wrongly shaped input is a LightvidError.
    path, by suffix:
      .mp4 / .mov: H.264 (libx264, yuv420p, crf 17). yuv420p needs even sizes, so an odd height or
        width is padded by one replicated edge row/column: 33x47 frames read back as 34x48.
      .webm: VP9 (libvpx-vp9, yuv420p, crf 20); odd sizes are kept.
      .gif: Pillow animated GIF, looping forever; delays are whole centiseconds >= 2, so the stored
        rate is 100 / max(2, round(100 / fps)) (8 fps -> 8.33, capped at 50). 256 colours per frame;
        identical consecutive frames are merged into one longer frame (read back with `fps`).
      a path ending in '/' or an existing folder: lossless PNG frames frame_00000.png, ... written
        as a whole folder; a non-empty existing folder is replaced only if overwrite=True.
    gif_preview: also write `path.with_suffix('.gif')` (`preview_path`; skipped when `path` is a .gif).
    inputs: paths that must not be overwritten (see `check_output_path`, which runs first).
    Both outputs land together or not at all: each is written under a temporary name, then both are moved
    into place; a failure (a full disk: one LightvidError) or Ctrl-C at any point leaves neither, no temporary
    file, and any previous file at either path as it was.
    """
    array = _as_uint8_frames(frames)
    original = path
    fps = check_fps(fps)
    path = check_output_path(path, overwrite, inputs=inputs, gif_preview=gif_preview)  # checks the format too
    kind = _output_kind(original)
    preview = preview_path(original) if gif_preview else None
    current = path
    try:
        with atomic_outputs() as outputs:
            if kind == "folder":
                _write_png_folder(array, outputs.folder(path, overwrite))
            elif kind == "h264":
                options = {"crf": str(H264_CRF), "preset": "medium"}
                _write_av(_pad_to_even(array), outputs.file(path), fps, "libx264", options, path)
            elif kind == "vp9":
                options = {"crf": str(VP9_CRF), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
                _write_av(array, outputs.file(path), fps, "libvpx-vp9", options, path)
            else:
                _write_gif(array, outputs.file(path), fps)
            if preview is not None:
                current = preview
                _write_gif(array, outputs.file(preview), fps)
            current = path
    except OSError as e:  # a full disk, a lost mount, ...: nothing was written
        reason = e.strerror or " ".join(str(e).split())
        raise LightvidError(f"{shown(current)}: cannot write ({reason}); nothing was written") from None
    return [path] if preview is None else [path, preview]
