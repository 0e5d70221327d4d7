"""Training batches as a pure function of (seed, step, rank): the batch at any step is known without reading
the steps before it, which is what makes a resumed run see exactly the data an uninterrupted one sees.

Both classes are map-style datasets whose item `step` is this rank's batch for that step, (b, f, c, h, w)
frames: `StepBatches` over a map-style dataset, `ShardBatches` over WebDataset tar shards. With `world`
ranks, rank r's batch at step s holds positions (s * world + r) * batch_size + i (i < batch_size) of one
global sample order, so the ranks read disjoint samples and, together, every sample once per epoch: an epoch
is one pass over the data by all ranks, len(data) / (world * batch_size) steps; a batch may straddle two.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from lightvid.data.shards import ShardSample, WebDatasetShards
from lightvid.errors import LightvidError


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and machines)."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return value


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch)))


class StepBatches(Dataset):
    """Item `step` = this rank's batch of clips for that step: (b, f, c, h, w) frames.

    The clip indices come from a fresh permutation of the dataset per epoch, seeded by (seed, epoch), so the
    batch at any step is known without replaying earlier steps.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int, world: int):
        self.dataset, self.batch_size, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self._perm_epoch, self._perm = -1, None

    def __len__(self) -> int:
        return 1 << 62

    @property
    def clip_shape(self) -> tuple[int, ...]:
        """(f, c, h, w) of the dataset's clips."""
        return tuple(self.dataset[0][0].shape)

    def _index(self, position: int) -> int:
        n = len(self.dataset)
        epoch, offset = divmod(position, n)
        if epoch != self._perm_epoch:
            self._perm = _permutation(n, self.seed, epoch)
            self._perm_epoch = epoch
            if hasattr(self.dataset, "set_epoch"):  # new crops/starts per epoch, still a function of the step
                self.dataset.set_epoch(epoch)
        return int(self._perm[offset])

    def __getitem__(self, step: int) -> torch.Tensor:
        start = (step * self.world + self.rank) * self.batch_size
        return torch.stack([self.dataset[self._index(start + i)][0] for i in range(self.batch_size)])


class ShardBatches(Dataset):
    """Item `step` = this rank's batch of clips for that step, read from WebDataset shards: (b, f, c, h, w).

    The global order of epoch e: all video samples of all shards (N) in a permutation seeded by (seed, e), so a
    batch mixes shards and videos (in listed order, shard by shard and each in tar order, when the dataset has
    shuffle_shards=False). Position p of the endless sequence is sample p mod N of epoch p // N, found through
    the shard index (`WebDatasetShards.samples`, tar headers listed once): only the samples a step needs are read
    (by offset) and decoded.
    Each clip is cut as the dataset cuts it, seeded by (dataset seed, epoch, shard, key).

    A sample that cannot be decoded is replaced by the next decodable one in the order (a property of the
    data, not of what was read before; warned once per process). Shards must be local uncompressed tar files.
    """

    def __init__(self, shards: WebDatasetShards, batch_size: int, seed: int, rank: int, world: int):
        self.shards, self.batch_size, self.seed, self.rank, self.world = shards, batch_size, seed, rank, world
        self.counts = np.array([len(s) for s in shards.samples()], dtype=np.int64)
        self.total = int(self.counts.sum())
        if self.total == 0:
            raise LightvidError(f"no readable video samples in the {len(shards.shards)} shard(s) "
                                f"{shards.shards[0]}, ...")
        self.bad: set[ShardSample] = set()
        self._ends = np.cumsum(self.counts)  # sample index (listed order) -> shard: searchsorted
        self._epoch, self._order = -1, None

    def __len__(self) -> int:
        return 1 << 62

    def sample_order(self, epoch: int) -> np.ndarray:
        """The N sample indices (in listed order: shard by shard, tar order within) in the order epoch `epoch`
        reads them."""
        if not self.shards.shuffle_shards:
            return np.arange(self.total)
        return _permutation(self.total, self.seed, epoch).numpy()

    def sample_at(self, position: int) -> tuple[ShardSample, int]:
        """The sample at `position` of the global order, and its epoch."""
        epoch, offset = divmod(position, self.total)
        if epoch != self._epoch:
            self._order, self._epoch = self.sample_order(epoch), epoch
        index = int(self._order[offset])
        shard = int(np.searchsorted(self._ends, index, side="right"))
        within = index - (int(self._ends[shard - 1]) if shard else 0)
        return self.shards.samples()[shard][within], epoch

    def positions(self, step: int) -> range:
        """The global positions this rank reads at `step`."""
        start = (step * self.world + self.rank) * self.batch_size
        return range(start, start + self.batch_size)

    def samples(self, step: int) -> list[ShardSample]:
        """The samples of this rank's batch at `step` (before replacing undecodable ones)."""
        return [self.sample_at(p)[0] for p in self.positions(step)]

    def clip(self, position: int) -> torch.Tensor:
        """(f, c, h, w) frames of the clip at `position` (or of the next decodable sample)."""
        for later in range(position, position + self.total):
            sample, epoch = self.sample_at(later)
            if sample in self.bad:
                continue
            try:
                return self.shards.clip(sample, epoch)[0]
            except LightvidError as e:
                self.bad.add(sample)
                warnings.warn(f"skipping undecodable sample: {e}", stacklevel=2)
        raise LightvidError(f"none of the {self.total} video samples in the shards can be decoded")

    @property
    def clip_shape(self) -> tuple[int, ...]:
        """(f, c, h, w) of the clips."""
        return tuple(self.clip(0).shape)

    def __getitem__(self, step: int) -> torch.Tensor:
        return torch.stack([self.clip(p) for p in self.positions(step)])
