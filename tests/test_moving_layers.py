"""MovingLayers (exact ground truth, bounds, splits) and Mixture (weighted, deterministic parts)."""

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightvid.data import DATASETS, Mixture, MovingLayers, build_dataset
from lightvid.data.moving_layers import layer_corners, render
from lightvid.errors import LightvidError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("datasets must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def same(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1]


def noise_photos(folder: Path, count: int = 4) -> list[Path]:
    """Distinct random-colour photos: every pixel of a frame tells where it came from."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(rng.integers(0, 256, (60 + 10 * i, 80, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def small(**kwargs) -> MovingLayers:
    return MovingLayers(**{"num_frames": 5, "size": 32, "length": 50, **kwargs})


# --------------------------------------------------------------------------------------- MovingLayers


def test_clip_shape_range_dtype_and_fps():
    frames, fps = small(size=48, num_frames=7)[0]
    assert frames.shape == (7, 3, 48, 48) and frames.dtype == torch.float32 and fps == 8.0
    assert frames.min() >= -1.0 and frames.max() <= 1.0
    assert len(MovingLayers()) == 100_000 and len(MovingLayers(split="test")) == 256


def test_deterministic_by_seed_and_index():
    ds = small()
    assert same(ds[3], ds[3]) and same(ds[3], small()[3])
    assert not torch.equal(ds[3][0], ds[4][0])
    assert not torch.equal(ds[3][0], small(seed=1)[3][0])
    assert not torch.equal(ds[3][0], small(split="test")[3][0])
    assert same(small(split="test", seed=5)[2], small(split="test")[2])  # one fixed test set


def test_layer_count_follows_min_and_max_layers():
    counts = {len(small(min_layers=1, max_layers=3).clip_layers(i)["layers"]) for i in range(30)}
    assert counts == {1, 2, 3}
    assert all(len(small(min_layers=0, max_layers=0).clip_layers(i)["layers"]) == 0 for i in range(3))


def test_layers_stay_inside_the_frame():
    for size in (16, 32, 64):
        ds = small(size=size, num_frames=9, length=200)
        sides = []
        for i in range(len(ds)):
            for layer in ds.clip_layers(i)["layers"]:
                h, w = layer["alpha"].shape[-2:]
                corners = layer_corners(layer["affine"], h, w)  # (F, 4, 2)
                assert corners.min() >= 0 and corners.max() <= size
                alpha = layer["alpha"][0]
                assert alpha[[0, -1]].max() == 0 and alpha[:, [0, -1]].max() == 0  # the shape is inside its box
                sides += [h / size, w / size]
        assert 0.1 < min(sides) and max(sides) <= 0.46


def test_frames_are_exactly_the_render_of_their_parameters():
    ds = small(num_frames=6, size=40)
    for index in range(6):
        frames, _ = ds[index]
        params = ds.clip_layers(index)
        assert torch.equal(render(params), frames)
        for f in (0, 3, 5):  # any single frame re-rendered alone
            one = dict(params, camera=params["camera"][f : f + 1])
            one["layers"] = [dict(layer, affine=layer["affine"][f : f + 1]) for layer in params["layers"]]
            assert torch.equal(render(one)[0], frames[f])


def test_a_transparent_top_layer_leaves_the_layers_below():
    params = small().clip_layers(0)
    below = render(dict(params, layers=params["layers"][:-1]))
    clear = dict(params["layers"][-1], alpha=torch.zeros_like(params["layers"][-1]["alpha"]))
    assert torch.equal(render(dict(params, layers=[*params["layers"][:-1], clear])), below)  # 0 * layer + 1 * below
    assert not torch.equal(render(params), below)


def test_motion_is_real_layers_move():
    ds = small(num_frames=6, size=48)
    for index in range(10):
        frames, _ = ds[index]
        assert ((frames[1:] - frames[:-1]).abs().amax((1, 2, 3)) > 0).all()  # every frame differs from the last
        for layer in ds.clip_layers(index)["layers"]:
            h, w = layer["alpha"].shape[-2:]
            center = layer["affine"] @ np.array([w / 2, h / 2, 1.0])  # (F, 2)
            assert np.linalg.norm(center[-1] - center[0]) >= 0.05 * 48 - 1e-6


def test_a_layer_moves_as_its_affine_says():
    """Rendered alone (white over black), a layer's alpha has its centroid where the affine maps it; rendered
    into a frame with a margin of 8 px, none of it falls in the margin."""
    ds = small(size=48, num_frames=6, min_layers=1, max_layers=1)
    for index in range(8):
        params = ds.clip_layers(index)
        layer = params["layers"][0]
        white = dict(layer, rgb=torch.ones_like(layer["rgb"]))
        black = torch.full_like(params["background"], -1.0)
        alpha = (render(dict(params, background=black, layers=[white], flip=False))[:, 0] + 1) / 2  # (F, S, S)
        ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
        seen = torch.stack([(alpha * xs).sum((1, 2)), (alpha * ys).sum((1, 2))], 1) / alpha.sum((1, 2))[:, None]
        h, w = layer["alpha"].shape[-2:]
        a = layer["alpha"][0].double()
        qy, qx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        centroid = np.array([(a * qx).sum() / a.sum(), (a * qy).sum() / a.sum(), 1.0])
        expected = layer["affine"] @ centroid  # (F, 2)
        assert np.abs(seen.numpy() - expected).max() < 0.3
        moved = layer["affine"] + np.array([[0, 0, 8], [0, 0, 8]])  # 8 px right and down
        wide = dict(params, size=64, background=black, flip=False)
        changed = render(dict(wide, layers=[dict(white, affine=moved)])) != render(dict(wide, layers=[]))
        assert changed.any() and not changed[:, :, :8].any() and not changed[:, :, -8:].any()
        assert not changed[..., :8].any() and not changed[..., -8:].any()
        assert np.linalg.norm(expected[-1] - expected[0]) > 2  # ...and it moved


def test_splits_use_disjoint_photos(tmp_path):
    paths = noise_photos(tmp_path / "mine", count=5)
    train = small(images=paths, num_test_photos=2, length=40)
    test = small(images=tmp_path / "mine", num_test_photos=2, split="test", length=40)
    assert train.photos == paths[:3] and test.photos == paths[3:]
    used_train = {p for i in range(len(train)) for p in train.clip_layers(i)["photos"]}
    used_test = {p for i in range(len(test)) for p in test.clip_layers(i)["photos"]}
    assert used_train == set(paths[:3]) and used_test == set(paths[3:])
    for ds in (train, test):  # layers are cut from another photo than the background
        assert all((ps := ds.clip_layers(i)["photos"])[0] not in ps[1:] for i in range(20))


def test_default_photos_split_like_camera_motion():
    assert [p.name for p in MovingLayers(split="test").photos] == ["motorcycle_left.png", "rocket.jpg"]


def test_bad_arguments(tmp_path):
    paths = noise_photos(tmp_path / "mine", count=2)
    for kwargs, message in [
        ({"num_frames": 1}, "num_frames"),
        ({"size": 4}, "size"),
        ({"split": "val"}, "split"),
        ({"min_layers": -1}, "min_layers"),
        ({"min_layers": 3, "max_layers": 2}, "max_layers"),
        ({"length": 0}, "length"),
        ({"images": tmp_path / "nothing"}, "not a folder"),
        ({"images": [tmp_path / "missing.png", *paths]}, "no such image"),
        ({"images": paths, "num_test_photos": 2}, "need more than"),
        ({"images": paths, "num_test_photos": 0, "split": "test"}, "empty"),
    ]:
        with pytest.raises(LightvidError, match=message):
            MovingLayers(**kwargs)
    with pytest.raises(IndexError):
        small(length=3)[3]


def test_registered_and_built_by_name():
    assert DATASETS["moving_layers"] is MovingLayers and DATASETS["mixture"] is Mixture
    assert same(build_dataset("moving_layers", num_frames=4, size=16)[1], MovingLayers(num_frames=4, size=16)[1])


# -------------------------------------------------------------------------------------------- Mixture

CAMERA = {"name": "camera_motion", "num_frames": 4, "size": 16, "length": 30}
LAYERS = {"name": "moving_layers", "num_frames": 4, "size": 16, "length": 30}


def test_mixture_is_deterministic_and_draws_from_its_parts():
    mix = Mixture([{**CAMERA, "weight": 1}, {**LAYERS, "weight": 1}], length=20)
    assert len(mix) == 20 and len(Mixture([CAMERA, LAYERS])) == 60
    assert same(mix[5], mix[5]) and same(mix[5], Mixture([{**CAMERA, "weight": 1}, LAYERS], length=20)[5])
    assert any(not torch.equal(mix[i][0], Mixture([CAMERA, LAYERS], length=20, seed=1)[i][0]) for i in range(5))
    assert set(sources(mix, 20)) == {0, 1}
    assert all(mix[i][1] == 8.0 for i in range(3))


def sources(mix: Mixture, count: int) -> list[int]:
    """Which part each of the first `count` clips came from, found by comparing with every clip of every part."""
    pools = [[part[j][0] for j in range(len(part))] for part in mix.parts]
    found = []
    for i in range(count):
        frames = mix[i][0]
        hits = [k for k, pool in enumerate(pools) if any(torch.equal(frames, clip) for clip in pool)]
        assert len(hits) == 1
        found.append(hits[0])
    return found


def test_mixture_weights_are_respected():
    mix = Mixture([{**CAMERA, "weight": 0}, {**LAYERS, "weight": 2.5}])
    assert set(sources(mix, 20)) == {1}
    skewed = Mixture([{**CAMERA, "weight": 3}, {**LAYERS, "weight": 1}], length=100)
    assert 0.6 < sources(skewed, 100).count(0) / 100 < 0.9


def test_mixture_passes_split_seed_and_epoch(monkeypatch):
    mix = Mixture([CAMERA, LAYERS], split="test", seed=3)
    assert [p.split for p in mix.parts] == ["test", "test"] and [p.seed for p in mix.parts] == [3, 3]
    assert Mixture([{**CAMERA, "seed": 7}, LAYERS], seed=3).parts[0].seed == 7
    epochs = []
    monkeypatch.setattr(MovingLayers, "set_epoch", lambda self, epoch: epochs.append(epoch), raising=False)
    mix.set_epoch(4)  # parts without set_epoch are skipped
    assert epochs == [4]


def test_mixture_test_split_leaves_out_parts_without_held_out_clips(tmp_path):
    from lightvid.io import write_video
    write_video(torch.zeros(6, 3, 16, 16), tmp_path / "v.mp4", fps=8)
    folder = {"name": "video_folder", "root": str(tmp_path), "num_frames": 4, "size": 16}
    assert len(Mixture([CAMERA, folder]).parts) == 2
    test = Mixture([CAMERA, {**folder, "weight": 5}], split="test")
    assert len(test.parts) == 1 and test.parts[0].split == "test" and list(test.probs) == [1.0]
    with pytest.raises(LightvidError, match="no part has a test split"):
        Mixture([folder], split="test")


def test_mixture_sets_frames_and_size_on_every_part():
    mix = Mixture([CAMERA, {**LAYERS, "num_frames": 6}], num_frames=3, size=24)
    assert mix.frame_shape == (3, 3, 24, 24) and mix[0][0].shape == (3, 3, 24, 24)


def test_mixture_refuses_parts_of_different_shapes():
    with pytest.raises(LightvidError, match=r"camera_motion \(4, 3, 16, 16\), moving_layers \(5, 3, 16, 16\)"):
        Mixture([CAMERA, {**LAYERS, "num_frames": 5}])


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], "non-empty list"),
        ("camera_motion", "non-empty list"),
        ([CAMERA, "moving_layers"], "part 1 must be a mapping"),
        ([{"weight": 1}], "part 0 has no 'name'"),
        ([{**CAMERA, "weight": -1}], "part 0 weight must be a finite number >= 0"),
        ([{**CAMERA, "weight": float("nan")}], "finite"),
        ([{**CAMERA, "weight": "1"}], "finite"),
        ([{**CAMERA, "weight": 0}, {**LAYERS, "weight": 0}], "sum to 0"),
        ([{"name": "mixture", "parts": [CAMERA]}], "part 0 is a mixture"),
        ([{"name": "nope"}], "unknown dataset 'nope'"),
        ([{"name": "webdataset", "urls": "x"}], "streams clips"),
        ([{**CAMERA, "colour": 1}], "unknown option 'colour'"),
    ],
)
def test_mixture_bad_parts(parts, message):
    with pytest.raises(LightvidError, match=message):
        Mixture(parts)
    with pytest.raises(LightvidError, match=message):
        build_dataset("mixture", parts=parts)
