"""Training and evaluation datasets: each item is `(frames, fps)`.

frames: float32 (F, C, H, W) in [-1, 1] (C=3 RGB; C=1 for MovingMNIST); fps: float. Every clip is
drawn from a generator seeded by the dataset seed and the clip's index, so runs resume exactly.

    moving_mnist    MovingMNIST       bouncing real MNIST digits, train/test digit pools disjoint
    camera_motion   CameraMotion      pan/zoom/rotate over real photos, train/test photos disjoint
    moving_layers   MovingLayers      cut-out photo layers moving over a camera move, exact ground truth
    video_folder    VideoFolder       random clips from every video under a folder
    webdataset      WebDatasetShards  random clips from videos in WebDataset tar shards (`urls`; the test
                                      split reads `test_urls`); training reads them by position
    mixture         Mixture           clips drawn from several of the above in proportion to weights

`build_dataset(name, **kwargs)` builds one by name (what training config files call).
"""

from __future__ import annotations

import inspect

from torch.utils.data import Dataset, IterableDataset

from lightvid.data.camera_motion import CameraMotion, bundled_photos
from lightvid.data.mixture import Mixture
from lightvid.data.moving_layers import MovingLayers
from lightvid.data.moving_mnist import MovingMNIST
from lightvid.data.shards import WebDatasetShards, write_shards
from lightvid.data.video_folder import VideoFolder
from lightvid.errors import LightvidError

DATASETS = {
    "moving_mnist": MovingMNIST,
    "camera_motion": CameraMotion,
    "video_folder": VideoFolder,
    "webdataset": WebDatasetShards,
    "moving_layers": MovingLayers,
    "mixture": Mixture,
}


def build_dataset(name: str, **kwargs) -> Dataset | IterableDataset:
    """The dataset registered as `name`, built with `kwargs`; LightvidError for an unknown name or key."""
    if name not in DATASETS:
        raise LightvidError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    cls = DATASETS[name]
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise LightvidError(f"{name}: unknown option {unknown[0]!r}; accepted: {', '.join(params)}")
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise LightvidError(f"{name}: missing option {missing[0]!r}")
    return cls(**kwargs)


__all__ = [
    "DATASETS",
    "CameraMotion",
    "Mixture",
    "MovingLayers",
    "MovingMNIST",
    "VideoFolder",
    "WebDatasetShards",
    "build_dataset",
    "bundled_photos",
    "write_shards",
]
