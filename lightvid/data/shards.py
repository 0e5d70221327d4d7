"""Clips from WebDataset tar shards whose samples hold an encoded video (`<key>.mp4`, `.webm`, ...)."""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from lightvid.data.clips import VIDEO_SUFFIXES, ClipSampler
from lightvid.data.common import check_int
from lightvid.errors import LightvidError

VIDEO_KEYS = tuple(s.lstrip(".") for s in VIDEO_SUFFIXES)  # sample fields holding the video bytes


def expand_shards(urls) -> list[str]:
    """Shard URLs from a brace pattern ('data/shard-{000..009}.tar'), a path, or a list of either."""
    items = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    shards = [url for item in items for url in wds.shardlists.expand_urls(str(item))]
    if not shards:
        raise LightvidError(f"no shards in {urls!r}")
    missing = [s for s in shards if "://" not in s and not s.startswith("pipe:") and not Path(s).is_file()]
    if missing:
        raise LightvidError(f"{missing[0]}: no such shard file ({len(missing)} of {len(shards)} missing)")
    return shards


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class WebDatasetShards(IterableDataset):
    """Clips from video samples in tar shards: yields `(frames, fps)`, frames float32 (F, 3, H, W) in [-1, 1].

    urls: a local path or URL, a brace pattern ('data/shard-{000..009}.tar') or a list of them.
    Each sample's first field among mp4, webm, mov, mkv, gif, avi is decoded with PyAV from memory;
    clip sampling is that of `VideoFolder` (see `ClipSampler`). Shards are shuffled per epoch (seeded
    by (seed, epoch), identical on every rank) unless `shuffle_shards=False`, then dealt round-robin
    to ranks (when torch.distributed is initialised) and to DataLoader workers: use at least
    world_size * num_workers shards, or some workers get none. Samples keep their order within a shard.

    A clip is seeded by (seed, epoch, shard URL, sample key), so it does not depend on the split.
    Unreadable shards and samples with no or an undecodable video are skipped with a warning and
    counted in `skipped` (per process: each DataLoader worker keeps its own count).
    """

    def __init__(
        self,
        urls,
        num_frames: int = 16,
        size: int | tuple[int, int] = 128,
        fps: float | None = None,
        frame_stride: int = 1,
        seed: int = 0,
        shuffle_shards: bool = True,
        random_crop: bool = True,
        flip: bool = True,
    ):
        self.shards = expand_shards(urls)
        self.sampler = ClipSampler.checked(num_frames, size, fps, frame_stride, random_crop, flip)
        self.seed = check_int("seed", seed, 0)
        self.shuffle_shards = bool(shuffle_shards)
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = check_int("epoch", epoch, 0)

    def assigned_shards(self) -> list[str]:
        """The shards this rank and DataLoader worker read in this epoch, in order."""
        order = np.arange(len(self.shards))
        if self.shuffle_shards:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(order)
        rank, world = _rank_and_world()
        worker = get_worker_info()
        mine = order[rank::world]
        if worker is not None:
            mine = mine[worker.id :: worker.num_workers]
        return [self.shards[i] for i in mine]

    def _skip(self, message: str) -> None:
        self.skipped += 1
        warnings.warn(f"skipping {message}", stacklevel=3)

    def _skip_shard(self, error: Exception) -> bool:
        """webdataset's error handler: warn, count, and go on (True)."""
        self._skip(f"unreadable shard data: {error}")
        return True

    def _open_shards(self) -> Iterator[dict]:
        """Open this worker's shards one at a time, closing each when it is read (webdataset's opener leaks them)."""
        for url in self.assigned_shards():
            try:
                stream = wds.gopen(url)
            except OSError as e:
                self._skip_shard(e)
                continue
            try:
                yield {"url": url, "stream": stream}
            finally:
                stream.close()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, float]]:
        files = wds.tariterators.tar_file_expander(self._open_shards(), handler=self._skip_shard)
        for sample in wds.tariterators.group_by_keys(files, handler=self._skip_shard):
            name = f"{sample['__url__']}:{sample['__key__']}"
            key = next((k for k in VIDEO_KEYS if k in sample), None)
            if key is None:
                self._skip(f"{name}: no video field (expected one of {', '.join(VIDEO_KEYS)})")
                continue
            rng = np.random.default_rng(
                (self.seed, self.epoch, zlib.crc32(sample["__url__"].encode()), zlib.crc32(sample["__key__"].encode()))
            )
            try:
                yield self.sampler(sample[key], f"{name}.{key}", rng)
            except LightvidError as e:
                self._skip(f"undecodable sample: {e}")
