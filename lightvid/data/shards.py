"""Clips from WebDataset tar shards whose samples hold an encoded video (`<key>.mp4`, `.webm`, ...).

`write_shards` writes such shards; `WebDatasetShards` streams clips from them, or (`samples` + `clip`) reads
any one sample by position, which is how training reads them (lightvid/train/batches.py: `ShardBatches`).
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from lightvid.data.clips import VIDEO_SUFFIXES, ClipSampler
from lightvid.data.common import check_int, check_split
from lightvid.errors import LightvidError
from lightvid.io import atomic_write, write_video

VIDEO_KEYS = tuple(s.lstrip(".") for s in VIDEO_SUFFIXES)  # sample fields holding the video bytes
META_MEMBER = re.compile(r"__[^/]*__($|/)")  # members webdataset skips (shard metadata)


@dataclass(frozen=True)
class ShardSample:
    """Where one sample's video lies: `size` bytes at byte `offset` of shard file `shard` (an index into
    `WebDatasetShards.shards`), in the member `<key>.<field>`."""

    shard: int
    key: str
    field: str
    offset: int
    size: int


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

    split: "train" reads `urls`, "test" reads `test_urls` (a LightvidError when it is not given).

    A clip is seeded by (seed, epoch, shard URL, sample key), so it does not depend on the split.
    Unreadable shards and samples with no or an undecodable video are skipped with a warning and
    counted in `skipped` (per process: each DataLoader worker keeps its own count).

    Random access: `samples()` indexes each shard once (tar headers only; local uncompressed tar files),
    and `clip(sample, epoch)` decodes one sample, giving the clip that iterating at that epoch yields for it;
    `clips()` is a map-style view of them (`len`, `[i]`), in the shards' listed order, which evaluation reads.
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
        split: str = "train",
        test_urls=None,
    ):
        self.split = check_split(split)
        if split == "test" and test_urls is None:
            raise LightvidError("webdataset: the test split has no shards; give test_urls")
        self.shards = expand_shards(urls if split == "train" else test_urls)
        self.sampler = ClipSampler.checked(num_frames, size, fps, frame_stride, random_crop, flip)
        self.seed = check_int("seed", seed, 0)
        self.shuffle_shards = bool(shuffle_shards)
        self.epoch = 0
        self.skipped = 0
        self._samples: list[list[ShardSample]] | None = None

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

    def samples(self) -> list[list[ShardSample]]:
        """The video samples of each shard (item i: `shards[i]`), in tar order; listed on the first call.

        Listing reads only tar headers. Members group into samples as webdataset groups them (consecutive
        members with the same key); a sample with no video field or an unreadable shard is skipped with a
        warning (the shard then has no samples).
        """
        if self._samples is None:
            self._samples = [self._list_shard(i) for i in range(len(self.shards))]
        return self._samples

    def _list_shard(self, index: int) -> list[ShardSample]:
        url = self.shards[index]
        if "://" in url or url.startswith("pipe:"):
            raise LightvidError(f"{url}: reading shards by position needs local files; copy the shards to disk")
        try:
            with tarfile.open(url, "r:") as tar:
                members = [m for m in tar.getmembers() if m.isreg() and not META_MEMBER.match(m.name)]
        except (OSError, tarfile.TarError) as e:
            self._skip(f"{url}: not a readable uncompressed tar file ({e})")
            return []
        groups: list[tuple[str, dict[str, tarfile.TarInfo]]] = []
        for member in members:
            key, field = wds.tariterators.base_plus_ext(member.name)
            if key is None:
                continue
            if not groups or groups[-1][0] != key:
                groups.append((key, {}))
            groups[-1][1].setdefault(field.lower(), member)
        samples = []
        for key, fields in groups:
            field = next((k for k in VIDEO_KEYS if k in fields), None)
            if field is None:
                self._skip(f"{url}:{key}: no video field (expected one of {', '.join(VIDEO_KEYS)})")
                continue
            samples.append(ShardSample(index, key, field, fields[field].offset_data, fields[field].size))
        return samples

    def clips(self, epoch: int = 0) -> ShardClips:
        """The clips by position (a map-style dataset): clip i is the i-th video sample of the shards in their
        listed order (never shuffled) as `clip(sample, epoch)` decodes it, so "the first N clips" is well defined."""
        return ShardClips(self, epoch)

    def _rng(self, url: str, key: str, epoch: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, epoch, zlib.crc32(url.encode()), zlib.crc32(key.encode())))

    def clip(self, sample: ShardSample, epoch: int) -> tuple[torch.Tensor, float]:
        """`(frames, fps)` of `sample` in `epoch`; LightvidError when it cannot be read or decoded."""
        url = self.shards[sample.shard]
        name = f"{url}:{sample.key}.{sample.field}"
        try:
            with open(url, "rb") as f:
                f.seek(sample.offset)
                data = f.read(sample.size)
        except OSError as e:
            raise LightvidError(f"{name}: cannot read ({e.strerror})") from None
        return self.sampler(data, name, self._rng(url, sample.key, epoch))

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
            try:
                yield self.sampler(sample[key], f"{name}.{key}", self._rng(sample["__url__"], sample["__key__"],
                                                                         self.epoch))
            except LightvidError as e:
                self._skip(f"undecodable sample: {e}")


class ShardClips(Dataset):
    """`WebDatasetShards.clips(epoch)`: item i is `(frames, fps)` of the i-th video sample of `shards.samples()`
    (shards in their listed order, samples in tar order), the clip iterating at `epoch` yields for that sample.
    Deterministic: it depends on the shards' seed and the epoch only. A sample that cannot be read or decoded is a
    LightvidError naming it (no replacement: positions stay fixed)."""

    def __init__(self, shards: WebDatasetShards, epoch: int = 0):
        self.shards = shards
        self.epoch = check_int("epoch", epoch, 0)
        self.index = [sample for shard in shards.samples() for sample in shard]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float]:
        return self.shards.clip(self.index[i], self.epoch)


def _video_bytes(item, fps: float, scratch: Path) -> tuple[bytes, str]:
    """(encoded bytes, field) of one `write_shards` item."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        field = path.suffix.lower().lstrip(".")
        if field not in VIDEO_KEYS:
            raise LightvidError(f"{path}: not a video file (expected one of {', '.join(VIDEO_SUFFIXES)})")
        try:
            return path.read_bytes(), field
        except OSError as e:
            raise LightvidError(f"{path}: cannot read ({e.strerror})") from None
    frames, rate = item if isinstance(item, tuple) else (item, fps)
    frames = torch.as_tensor(frames)
    if frames.ndim == 4 and frames.shape[1] == 1:  # one-channel clips (MovingMNIST) are stored as gray RGB
        frames = frames.expand(-1, 3, -1, -1)
    target = scratch / "clip.mp4"
    write_video(frames, target, float(rate), overwrite=True)
    return target.read_bytes(), "mp4"


def write_shards(videos: Iterable, pattern: str, per_shard: int, fps: float = 8.0) -> list[Path]:
    """Write videos as WebDataset tar shards of `per_shard` samples: shard n is `pattern % n`.

    videos: video files (stored as they are, by suffix), or clips: (F, C, H, W) float frames in [-1, 1]
    (C = 3, or 1 stored as gray RGB) or `(frames, fps)` pairs as the datasets give them, encoded as H.264
    (`lightvid.io.write_video`) at the pair's fps, else `fps`. Sample keys count up from 000000 across
    shards; each shard is written atomically. Returns the shard paths; read them back with
    `WebDatasetShards(paths)` or a brace pattern ('data/shard-{000..009}.tar' for 'data/shard-%03d.tar').
    """
    per_shard = check_int("per_shard", per_shard, 1)
    try:
        distinct = pattern % 0 != pattern % 1
    except TypeError:
        distinct = False
    if not distinct:
        raise LightvidError(f"shard pattern {pattern!r} needs one %d field for the shard number")
    written: list[Path] = []
    members: list[tuple[str, bytes]] = []

    def flush() -> None:
        path = Path(pattern % len(written))
        with atomic_write(path) as tmp, tarfile.open(tmp, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        written.append(path)
        members.clear()

    with tempfile.TemporaryDirectory() as scratch:
        for index, item in enumerate(videos):
            data, field = _video_bytes(item, fps, Path(scratch))
            members.append((f"{index:06d}.{field}", data))
            if len(members) == per_shard:
                flush()
    if members:
        flush()
    if not written:
        raise LightvidError("write_shards: no videos given")
    return written
