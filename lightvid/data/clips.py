"""Decoding videos from files or bytes, and drawing random clips from them.

Shared by `VideoFolder` (files) and `WebDatasetShards` (bytes from tar members). Decoding reuses
lightvid.io's time selection (`select_frames`: nearest source frame per output timestamp, see
lightvid/io/video.py) and colour conversion, so a clip read here matches `read_video` frame for frame.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from statistics import median

import av
import numpy as np
import torch

from lightvid.data.common import check_int, check_size
from lightvid.errors import LightvidError
from lightvid.io.image import check_image_size, resize_and_crop, uint8_to_tensor
from lightvid.io.video import FOLDER_FPS, check_fps, frame_to_rgb, select_frames, source_frames

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".avi")
VideoSource = str | os.PathLike | bytes  # a file, or a whole encoded file in memory


def _open(source: VideoSource, name: str) -> av.container.InputContainer:
    container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    if not container.streams.video:
        container.close()
        raise LightvidError(f"{name}: file has no video stream")
    return container


def probe_frame_times(source: VideoSource, name: str) -> np.ndarray:
    """(n,) presentation times in seconds from the first frame, sorted; read from packets, no decoding."""
    with _open(source, name) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]  # size 0: the end-of-stream packet
        if not pts:
            raise LightvidError(f"{name}: video has no frames")
        if any(t is None for t in pts):  # no timestamps (raw streams): assume a constant rate
            rate = float(stream.average_rate or stream.guessed_rate or FOLDER_FPS)
            return np.arange(len(pts)) / rate
        times = np.sort(np.array(pts, dtype=np.float64)) * float(stream.time_base)
        return times - times[0]


def output_frame_count(frame_times: np.ndarray, fps: float | None) -> int:
    """How many frames the output timeline surely has (`select_frames` may add one at the end)."""
    if fps is None:
        return len(frame_times)
    return int(frame_times[-1] * fps) + 1  # every k with k / fps <= the last frame's time


def source_fps(frame_times: np.ndarray) -> float:
    steps = np.diff(frame_times)
    steps = steps[steps > 0]
    return float(1.0 / median(steps)) if len(steps) else FOLDER_FPS


def decode_frames(source: VideoSource, name: str, fps: float | None, start: int, count: int) -> np.ndarray:
    """Output frames [start, start + count) as uint8 (n, H, W, 3), 1 <= n <= count (fewer at the end)."""
    with _open(source, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"

        def to_rgb(frame):
            check_image_size(frame.height, frame.width, name)
            return frame_to_rgb(frame)

        out, _ = select_frames(source_frames(container, stream, to_rgb), fps, start, count, name)
    if not out:
        raise LightvidError(f"{name}: no frames from output frame {start} on")
    if len({a.shape for a in out}) > 1:
        raise LightvidError(f"{name}: frames differ in size")
    return np.stack(out)


@dataclass(frozen=True)
class ClipSampler:
    """Draws one clip from a video: random start, stride or resampling, crop, resize, flip.

    Clips are `num_frames` frames `frame_stride` apart on the output timeline (the source frames, or
    `fps` frames per second when set). A video too short for a clip is padded by repeating its last
    frame. Frames are cropped to the aspect ratio of `size` (largest window; at a random position or
    centered), resized (bicubic, antialiased) and, with `flip`, mirrored left-right half the time.
    Returns float32 (num_frames, 3, height, width) in [-1, 1] and the clip's frame rate.
    """

    num_frames: int
    size: tuple[int, int]  # (height, width)
    fps: float | None
    frame_stride: int
    random_crop: bool
    flip: bool

    @classmethod
    def checked(cls, num_frames, size, fps, frame_stride, random_crop, flip) -> ClipSampler:
        """A sampler from user-facing options, each validated (LightvidError naming the bad one)."""
        return cls(num_frames=check_int("num_frames", num_frames, 1), size=check_size(size),
                   fps=None if fps is None else check_fps(fps),
                   frame_stride=check_int("frame_stride", frame_stride, 1), random_crop=bool(random_crop),
                   flip=bool(flip))

    def __call__(self, source: VideoSource, name: str, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        try:
            times = probe_frame_times(source, name)
            span = (self.num_frames - 1) * self.frame_stride + 1
            start = int(rng.integers(0, max(output_frame_count(times, self.fps) - span, 0) + 1))
            frames = decode_frames(source, name, self.fps, start, span)[:: self.frame_stride]
        except av.FFmpegError as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise LightvidError(f"{name}: not a readable video ({reason})") from None
        except (MemoryError, OSError) as e:
            raise LightvidError(f"{name}: cannot read ({e})") from None
        pad = self.num_frames - len(frames)
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)]) if pad else frames  # (F, H, W, 3)
        clip = resize_and_crop(uint8_to_tensor(self._crop(frames, rng)), *self.size)  # (F, 3, height, width)
        if self.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
        rate = self.fps if self.fps is not None else source_fps(times)
        return clip.contiguous(), rate / self.frame_stride

    def _crop(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The largest window of the target aspect ratio: (F, H, W, 3) -> (F, h, w, 3)."""
        height, width = frames.shape[1:3]
        scale = min(height / self.size[0], width / self.size[1])
        h, w = min(height, round(self.size[0] * scale)), min(width, round(self.size[1] * scale))
        if self.random_crop:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        else:
            top, left = (height - h) // 2, (width - w) // 2
        return frames[:, top : top + h, left : left + w]
