"""Random clips from every video under a folder."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lightvid.data.clips import VIDEO_SUFFIXES, ClipSampler
from lightvid.data.common import check_index, check_int
from lightvid.errors import LightvidError


def find_videos(root: Path) -> list[Path]:
    """Video files under `root` (recursive, hidden files skipped), sorted by path."""
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


class VideoFolder(Dataset):
    """Clips from the videos under `root`: `(frames, fps)`, frames float32 (F, 3, H, W) in [-1, 1].

    Videos: .mp4 .webm .mov .mkv .gif .avi files, searched recursively. Index i is clip i //
    len(videos) of video i % len(videos); there are `clips_per_video` clips per video and epoch.
    Each clip (see `ClipSampler`): `num_frames` frames, `frame_stride` apart on the source frames or,
    with `fps`, on the video resampled to `fps`; a random start; a crop of the aspect ratio of `size`
    (int: square, or (height, width)), random or centered per `random_crop`; a left-right flip half
    the time with `flip`. A video shorter than a clip is padded by repeating its last frame.
    The reported fps is (fps or the source rate) / frame_stride.

    An unreadable file is skipped: one warning per file, counted in `skipped` (per process: each
    DataLoader worker keeps its own count), and the clip comes from the next readable video in
    index order. Clips are seeded by (seed, epoch, index, video); call `set_epoch` to draw new ones.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        num_frames: int = 16,
        size: int | tuple[int, int] = 128,
        fps: float | None = None,
        frame_stride: int = 1,
        seed: int = 0,
        clips_per_video: int = 1,
        random_crop: bool = True,
        flip: bool = True,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise LightvidError(f"{self.root}: no such folder")
        self.videos = find_videos(self.root)
        if not self.videos:
            raise LightvidError(f"{self.root}: no videos found (looked for {' '.join(VIDEO_SUFFIXES)}, recursively)")
        self.sampler = ClipSampler.checked(num_frames, size, fps, frame_stride, random_crop, flip)
        self.seed = check_int("seed", seed, 0)
        self.clips_per_video = check_int("clips_per_video", clips_per_video, 1)
        self.epoch = 0
        self.unreadable: set[Path] = set()

    @property
    def skipped(self) -> int:
        """How many files this process found unreadable."""
        return len(self.unreadable)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = check_int("epoch", epoch, 0)

    def __len__(self) -> int:
        return len(self.videos) * self.clips_per_video

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        index = check_index(index, len(self))
        count = len(self.videos)
        for offset in range(count):
            video_index = (index + offset) % count
            video = self.videos[video_index]
            if video in self.unreadable:
                continue
            rng = np.random.default_rng((self.seed, self.epoch, index, video_index))
            try:
                return self.sampler(video, str(video), rng)
            except LightvidError as e:
                self.unreadable.add(video)
                warnings.warn(f"skipping unreadable video: {e}", stacklevel=2)
        raise LightvidError(f"{self.root}: none of the {count} videos is readable")
