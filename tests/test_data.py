"""Datasets: clip shapes and ranges, per-index determinism, disjoint splits, skipping unreadable input."""

import io
import socket
import tarfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import lightvid.data.shards as shards_mod
from lightvid.data import (
    CameraMotion,
    MovingMNIST,
    VideoFolder,
    WebDatasetShards,
    build_dataset,
    bundled_photos,
)
from lightvid.data.moving_mnist import DIGIT_SIZE, load_mnist
from lightvid.errors import LightvidError
from lightvid.io import write_video

CODE_STEP = 10  # frame k of a coded video is flat gray 10 * k


def coded_video(num_frames: int, h: int = 24, w: int = 32) -> np.ndarray:
    """(f, h, w, 3) uint8 where frame k is flat gray CODE_STEP * k."""
    return np.stack([np.full((h, w, 3), CODE_STEP * k, np.uint8) for k in range(num_frames)])


def frame_codes(frames: torch.Tensor) -> list[int]:
    """Recover k per frame of a clip cut from a coded video."""
    gray = (frames.mean((1, 2, 3)) + 1) * 127.5
    return [round(v / CODE_STEP) for v in gray.tolist()]


def same(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("datasets must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


# ---------------------------------------------------------------------------------------- MovingMNIST


def test_moving_mnist_clip_shape_range_and_fps():
    frames, fps = MovingMNIST(length=4)[0]
    assert frames.shape == (20, 1, 64, 64) and frames.dtype == torch.float32
    assert frames.min() == -1.0 and frames.max() == 1.0  # black background, saturated strokes
    assert fps == 10.0


def test_moving_mnist_is_deterministic_per_index():
    ds = MovingMNIST(length=10, num_frames=6)
    assert same(ds[3], ds[3])
    assert same(ds[3], MovingMNIST(length=10, num_frames=6)[3])
    assert not torch.equal(ds[3][0], ds[4][0])
    assert not torch.equal(ds[3][0], MovingMNIST(length=10, num_frames=6, seed=1)[3][0])


def test_moving_mnist_test_split_is_fixed_for_every_seed():
    first, second = MovingMNIST("test", num_frames=6), MovingMNIST("test", num_frames=6, seed=123)
    assert len(first) == 1000 and len(MovingMNIST()) == 100_000
    assert all(same(first[i], second[i]) for i in (0, 7, 999))


def test_moving_mnist_train_and_test_digit_pools_are_disjoint():
    labels = load_mnist()[1]
    train, test = MovingMNIST("train", num_frames=2), MovingMNIST("test", num_frames=2)
    assert len(train.digit_ids) == 4000 and len(test.digit_ids) == 1000
    assert not set(train.digit_ids) & set(test.digit_ids)
    assert np.bincount(labels[test.digit_ids]).tolist() == [100] * 10
    for ds in (train, test):
        used = np.concatenate([ds.trajectory(i).digit_ids for i in range(50)])
        assert set(used) <= set(ds.digit_ids)


def test_moving_mnist_digits_move_and_stay_inside_the_canvas():
    ds = MovingMNIST(num_digits=1, length=20)
    digits = load_mnist()[0]
    for index in range(20):
        frames, _ = ds[index]
        plan = ds.trajectory(index)
        assert plan.top_left.min() >= 0 and plan.top_left.max() <= 64 - DIGIT_SIZE
        steps = np.abs(np.diff(plan.top_left, axis=0)).max(-1)  # (F - 1, D) pixels per frame
        assert steps.max() <= 4 and steps.mean() > 1.5  # 0.1 * 36 = 3.6 px per frame, reflected at walls
        assert not torch.equal(frames[0], frames[10])
        mass = ((frames + 1) * 127.5).round().sum((1, 2, 3))  # (F,) a clipped digit would lose mass
        assert (mass == float(digits[plan.digit_ids[0]].sum())).all()


def test_moving_mnist_rejects_bad_arguments():
    with pytest.raises(LightvidError, match="split"):
        MovingMNIST("val")
    with pytest.raises(LightvidError, match="size"):
        MovingMNIST(size=20)


# --------------------------------------------------------------------------------------- CameraMotion


def gradient_photos(folder: Path, count: int = 3) -> list[Path]:
    """Smooth colour ramps: mean pixel change is proportional to camera motion on them."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:90, 0:120]
    paths = []
    for i in range(count):
        rgb = np.stack([x * 2, y * 2, (x + y + 40 * i) % 256], -1).astype(np.uint8)
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


def test_default_photos_are_bundled_files_on_disk():
    photos = bundled_photos()
    assert len(photos) >= 12  # scikit-image's 12; scikit-learn's 2 when installed
    assert all(p.is_file() and {"skimage", "sklearn"} & set(p.parts) for p in photos)  # inside the packages
    train, test = CameraMotion(split="train"), CameraMotion(split="test")
    assert [p.name for p in test.photos] == ["motorcycle_left.png", "rocket.jpg"]
    assert not set(train.photos) & set(test.photos)
    assert set(train.photos) | set(test.photos) == set(photos)


def test_camera_motion_clip_shape_and_determinism():
    ds = CameraMotion(num_frames=8, size=32, length=6)
    frames, fps = ds[0]
    assert frames.shape == (8, 3, 32, 32) and frames.dtype == torch.float32 and fps == 8.0
    assert frames.min() >= -1.0 and frames.max() <= 1.0
    assert same(ds[2], ds[2]) and same(ds[2], CameraMotion(num_frames=8, size=32, length=6)[2])
    assert not torch.equal(ds[2][0], ds[3][0])
    assert len(CameraMotion()) == 100_000 and len(CameraMotion(split="test")) == 256
    assert same(CameraMotion(split="test", size=32, seed=5)[1], CameraMotion(split="test", size=32)[1])


def test_camera_motion_is_smooth(tmp_path):
    ds = CameraMotion(gradient_photos(tmp_path), num_frames=8, size=32, length=16, num_test_photos=1)
    for index in range(len(ds)):
        frames, _ = ds[index]
        steps = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))  # (F - 1,)
        total = (frames[-1] - frames[0]).abs().mean()
        assert (steps > 0).all()  # the camera never stops
        assert steps.max() < 0.4 * total  # ...and never jumps: the largest step is a fraction of the path


def test_camera_motion_user_folder_and_list_splits(tmp_path):
    paths = gradient_photos(tmp_path / "mine")
    train = CameraMotion(tmp_path / "mine", size=16, num_frames=4, num_test_photos=1)
    test = CameraMotion(paths, size=16, num_frames=4, num_test_photos=1, split="test")
    assert train.photos == paths[:2] and test.photos == paths[2:]
    assert train[0][0].shape == test[0][0].shape == (4, 3, 16, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LightvidError, match="0 photos"):
        CameraMotion(tmp_path / "empty")
    with pytest.raises(LightvidError, match="no such image"):
        CameraMotion([tmp_path / "missing.png", *paths])
    with pytest.raises(LightvidError, match="empty"):
        CameraMotion(paths, num_test_photos=0, split="test")


# ---------------------------------------------------------------------------------------- VideoFolder


@pytest.fixture
def video_root(tmp_path) -> Path:
    """12-fps coded videos of 20, 12 (in a subfolder) and 5 frames, and a corrupt .mp4."""
    root = tmp_path / "videos"
    write_video(coded_video(20), root / "long.mp4", fps=12)
    write_video(coded_video(12), root / "sub" / "mid.mp4", fps=12)
    write_video(coded_video(5), root / "short.mp4", fps=12)
    (root / "broken.mp4").write_bytes(b"\x00not a video" * 64)
    (root / "notes.txt").write_text("not a video either")
    return root


def test_video_folder_clips_and_corrupt_file_skipped_once(video_root):
    ds = VideoFolder(video_root, num_frames=6, size=16)
    assert [p.name for p in ds.videos] == ["broken.mp4", "long.mp4", "short.mp4", "mid.mp4"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = [ds[i] for i in range(len(ds))] + [ds[i] for i in range(len(ds))]
    assert len(caught) == 1 and "broken.mp4" in str(caught[0].message) and ds.skipped == 1
    assert all(c[0].shape == (6, 3, 16, 16) and c[1] == pytest.approx(12.0) for c in clips)  # rational fps as a float
    codes = [frame_codes(c[0]) for c in clips[:4]]  # index 0 falls back to long.mp4, the next video
    assert [max(c) < n for c, n in zip(codes, (20, 20, 5, 12))] == [True] * 4
    assert codes[2] == [0, 1, 2, 3, 4, 4]  # short.mp4 (5 frames) padded with its last frame
    assert all(np.diff(c).tolist() == [1] * 5 for c in (codes[0], codes[1], codes[3]))


def test_video_folder_is_deterministic_and_set_epoch_redraws(video_root):
    def dataset():
        return VideoFolder(video_root, num_frames=4, size=16, clips_per_video=3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset()
        assert len(ds) == 12
        assert all(same(ds[i], dataset()[i]) for i in range(len(ds)))
        before = [ds[i] for i in range(len(ds))]
        ds.set_epoch(1)
        assert any(not same(a, ds[i]) for i, a in enumerate(before))


def test_video_folder_fps_stride_and_short_videos(video_root):
    long_index = 1  # ds.videos[1] is long.mp4 (20 frames at 12 fps)
    resampled = VideoFolder(video_root, num_frames=5, size=16, fps=6)
    frames, fps = resampled[long_index]
    codes = frame_codes(frames)
    assert fps == 6.0 and np.diff(codes).tolist() == [2] * 4  # every other source frame
    frames, fps = VideoFolder(video_root, num_frames=4, size=16, frame_stride=3)[long_index]
    # 12 fps / stride 3, computed from the container's rational rate: approx's 1e-6 relative
    assert fps == pytest.approx(4.0) and np.diff(frame_codes(frames)).tolist() == [3] * 3
    frames, _ = VideoFolder(video_root, num_frames=8, size=(16, 24))[2]  # short.mp4: 5 frames, padded
    assert frames.shape == (8, 3, 16, 24)
    assert frame_codes(frames) == [0, 1, 2, 3, 4, 4, 4, 4]


def test_video_folder_errors(tmp_path, video_root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LightvidError, match="no videos found"):
        VideoFolder(tmp_path / "empty")
    with pytest.raises(LightvidError, match="no such folder"):
        VideoFolder(tmp_path / "missing")
    with pytest.raises(LightvidError, match="fps"):
        VideoFolder(video_root, fps=0)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.webm").write_bytes(b"garbage")
    ds = VideoFolder(only_bad)
    with pytest.warns(UserWarning, match="a.webm"), pytest.raises(LightvidError, match="none of the 1 videos"):
        ds[0]


# ------------------------------------------------------------------------------------------- shards


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def shard_pattern(tmp_path, video_root) -> str:
    """Two shards: 000 (2 good videos, 1 corrupt), 001 (1 good video, 1 sample with no video)."""
    good = [(video_root / name).read_bytes() for name in ("long.mp4", "sub/mid.mp4", "short.mp4")]
    with tarfile.open(tmp_path / "shard-000.tar", "w") as tar:
        add_member(tar, "000.mp4", good[0])
        add_member(tar, "000.json", b'{"caption": "gray ramp"}')
        add_member(tar, "001.mp4", b"\x00corrupt" * 100)
        add_member(tar, "002.mp4", good[1])
    with tarfile.open(tmp_path / "shard-001.tar", "w") as tar:
        add_member(tar, "003.mp4", good[2])
        add_member(tar, "004.json", b"{}")
    return str(tmp_path / "shard-{000..001}.tar")


def test_shards_yield_clips_and_skip_bad_samples(shard_pattern):
    ds = WebDatasetShards(shard_pattern, num_frames=6, size=16)
    assert len(ds.shards) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = list(ds)
    assert len(clips) == 3 and ds.skipped == 2 and len(caught) == 2
    assert any("001.mp4" in str(w.message) for w in caught) and any("004" in str(w.message) for w in caught)
    assert all(c[0].shape == (6, 3, 16, 16) and c[1] == pytest.approx(12.0) for c in clips)  # rational fps as a float
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = list(WebDatasetShards(shard_pattern, num_frames=6, size=16))
    assert all(same(a, b) for a, b in zip(clips, again))


def test_shards_are_split_across_ranks_and_workers(shard_pattern, tmp_path, monkeypatch):
    for i in range(2, 8):
        (tmp_path / f"shard-{i:03d}.tar").write_bytes((tmp_path / "shard-001.tar").read_bytes())
    ds = WebDatasetShards(str(tmp_path / "shard-{000..007}.tar"))
    seen = []
    for rank in range(2):
        for worker in range(2):
            monkeypatch.setattr(shards_mod, "_rank_and_world", lambda rank=rank: (rank, 2))
            info = SimpleNamespace(id=worker, num_workers=2)
            monkeypatch.setattr(shards_mod, "get_worker_info", lambda info=info: info)
            seen.append(ds.assigned_shards())
    assert all(len(s) == 2 for s in seen)
    assert sorted(s for shards in seen for s in shards) == ds.shards  # every shard read once per epoch


def test_shards_skip_a_corrupt_shard_and_refuse_missing_ones(shard_pattern, tmp_path):
    (tmp_path / "shard-002.tar").write_bytes(b"not a tar archive" * 64)
    ds = WebDatasetShards(str(tmp_path / "shard-{000..002}.tar"), num_frames=2, size=16, shuffle_shards=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(list(ds)) == 3
    assert ds.skipped == len(caught) == 3  # the corrupt member, the sample without video, the corrupt shard
    assert "shard-002.tar" in str(caught[-1].message)
    with pytest.raises(LightvidError, match="no such shard"):
        WebDatasetShards(str(tmp_path / "shard-{003..004}.tar"))


# ------------------------------------------------------------------------------------------ registry


def test_build_dataset(video_root):
    assert isinstance(build_dataset("moving_mnist", length=3, num_frames=4), MovingMNIST)
    assert isinstance(build_dataset("video_folder", root=video_root, size=16), VideoFolder)
    with pytest.raises(LightvidError, match="unknown dataset 'mnist'; accepted: moving_mnist, camera_motion"):
        build_dataset("mnist")
    with pytest.raises(LightvidError, match="unknown option 'frames'; accepted: split, num_frames"):
        build_dataset("moving_mnist", frames=8)
    with pytest.raises(LightvidError, match="missing option 'root'"):
        build_dataset("video_folder")
