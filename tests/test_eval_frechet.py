"""Fréchet distance, lightvid's own video encoder (FD-lightvid) and the I3D loader (FVD)."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tolerances import EPS32, EPS64, relative_error
from torch.utils.data import Dataset

from lightvid.errors import LightvidError
from lightvid.eval.frechet import fd_lightvid as frechet_fd_lightvid
from lightvid.eval.frechet import frechet_distance, frechet_distance_from_stats, trace_sqrt_product
from lightvid.eval.i3d import I3D, i3d_features, load_i3d, pad_same
from lightvid.eval.video_encoder import (
    ARRANGEMENTS,
    VideoEncoder,
    VideoEncoderConfig,
    arrangement_order,
    encoder_loss,
    fd_lightvid,
    make_batch,
    train_video_encoder,
)

# ---------------------------------------------------------------- Fréchet distance


def test_frechet_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    # float64 square roots of diagonal matrices: a few roundings (measured: equal); 64 eps64 ≈ 1.4e-14
    assert got == pytest.approx(expected, rel=64 * EPS64)


def test_frechet_one_dimensional_samples_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, 300), rng.normal(-1.0, 0.5, 200)
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    # float64 sums of N = 300 terms on both sides, summed differently: at most ~N·eps64 (measured 1.3 eps64)
    assert frechet_distance(a[:, None], b[:, None]) == pytest.approx(expected, rel=300 * EPS64)


def test_frechet_symmetric_and_zero_for_same_sample():
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(8, 8))
    a = rng.normal(size=(2000, 8)) @ mixing
    b = rng.normal(size=(1500, 8)) @ mixing.T + 0.3
    # tr (Σ_aΣ_b)^½ = tr (Σ_bΣ_a)^½, two float64 square roots of products of covariances of condition ~800 each:
    # rounding up to cond·eps64 ≈ 1.5e-10 relative to the ~32 distance (measured: equal); 1e-8 is 60x that
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 1.0
    # 2·tr Σ - 2·tr (Σ²)^½ with cond(Σ²) ≈ 7e5 and tr Σ ≈ 47: rounding up to cond·eps64·tr ≈ 7e-9 (measured 3e-13)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    c = rng.normal(size=(20000, 8)) @ mixing  # a second large sample of a's distribution
    # the sampling error of 2000 draws in 8 dimensions, measured 0.0011·tr Σ (seeded); a distance that mishandles
    # the covariances is of order tr Σ
    assert frechet_distance(a[:2000], c) < 0.005 * np.trace(np.cov(a, rowvar=False))


def test_frechet_torch_and_numpy_agree():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 5, generator=g), torch.randn(80, 5, generator=g) * 1.5
    # the same float32 samples converted to float64 either way: the same computation (measured: equal), up to
    # BLAS reordering of sums of 64-80 terms (≤ 80 eps64)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(a.numpy(), b.numpy()), rel=80 * EPS64)


def test_frechet_rank_deficient_covariances_stay_finite():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 0.1  # N < D: singular covariances
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 0
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values = np.linalg.eigvals(cov_a @ cov_b)
    # singular matrices: the square root of a zero eigenvalue is ill-conditioned, so both sides are only accurate
    # to ~sqrt(eps64) = 1.5e-8 relative (measured 1.0e-8); 64·sqrt(eps64) ≈ 1e-6
    assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(np.sqrt(values.real.clip(min=0)).sum(),
                                                             rel=64 * EPS64 ** 0.5)


def test_frechet_falls_back_when_sqrtm_fails(monkeypatch):
    calls = []

    def failing_sqrtm(matrix):
        calls.append(matrix)
        return np.full(matrix.shape, np.nan) if len(calls) == 1 else matrix + 1j  # NaN, then large imaginary parts

    monkeypatch.setattr("lightvid.eval.frechet.scipy.linalg.sqrtm", failing_sqrtm)
    var1, var2 = np.array([1.0, 4.0, 0.0]), np.array([2.0, 1.0, 3.0])
    expected = np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = frechet_distance_from_stats(np.zeros(3), np.diag(var1), np.zeros(3), np.diag(var2))
    # retried with eps·I, then the symmetric form: float64 eigh of a diagonal matrix, a few roundings (measured:
    # equal); 64 eps64
    assert len(calls) == 2 and got == pytest.approx(expected, rel=64 * EPS64)


def test_frechet_bad_input():
    with pytest.raises(LightvidError, match="feature sizes differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(LightvidError, match=r"\(N, D\)"):
        frechet_distance(np.zeros(4), np.zeros((4, 1)))
    with pytest.raises(LightvidError, match="NaN"):
        frechet_distance(np.full((4, 2), np.nan), np.zeros((4, 2)))


# ---------------------------------------------------------------- video encoder


class BlobClips(Dataset):
    """Tiny synthetic clips: a bright Gaussian blob moving in a straight line, (8, 1, 32, 32) in [-1, 1]."""

    def __init__(self, length=32, num_frames=8, size=32):
        self.length, self.num_frames, self.size = length, num_frames, size

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        start, velocity = torch.rand(2, generator=g) * self.size, (torch.rand(2, generator=g) - 0.5) * 6
        t = torch.arange(self.num_frames, dtype=torch.float32)[:, None]
        centre = start + t * velocity  # (F, 2)
        yy, xx = torch.meshgrid(torch.arange(self.size), torch.arange(self.size), indexing="ij")
        d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2  # (F, H, W)
        return (2 * torch.exp(-d2 / 20) - 1).unsqueeze(1), 8.0


def test_arrangement_orders():
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(6, 1, 4, 4)
    assert torch.equal(clip[arrangement_order("forward", 6, g)], clip)
    assert torch.equal(clip[arrangement_order("reversed", 6, g)], clip.flip(0))
    for _ in range(20):
        frozen = clip[arrangement_order("frozen", 6, g)]
        assert all(torch.equal(frame, frozen[0]) for frame in frozen)
        assert any(torch.equal(frozen[0], frame) for frame in clip)
        order = arrangement_order("shuffled", 6, g)
        assert sorted(order.tolist()) == list(range(6))
        assert order.tolist() not in (list(range(6)), list(range(5, -1, -1)))
    with pytest.raises(LightvidError, match="unknown arrangement"):
        arrangement_order("sideways", 6, g)
    assert ARRANGEMENTS == ("forward", "reversed", "shuffled", "frozen")


def test_features_shape_and_batch_invariance():
    torch.manual_seed(0)
    model = VideoEncoder()
    grey, rgb = torch.rand(3, 8, 1, 32, 32) * 2 - 1, torch.rand(2, 5, 3, 48, 40) * 2 - 1
    assert model.features(grey).shape == (3, model.feature_dim) == (3, 256)
    assert model.features(rgb).shape == (2, 256)
    # batch size changes oneDNN's blocking: float32 convolutions summed in another order (measured 3 eps of
    # max|feature| with AVX-512 kernels, 6 with AVX2 ones)
    assert relative_error(model.features(grey, batch_size=1), model.features(grey)) <= 32 * EPS32
    assert sum(p.numel() for p in model.parameters()) < 1_500_000
    with pytest.raises(LightvidError, match="c = 1 or 3"):
        model.features(torch.zeros(1, 4, 2, 8, 8))


def test_training_is_deterministic_per_seed():
    data = BlobClips()
    state = torch.get_rng_state()
    runs = [train_video_encoder(data, steps=2, batch_size=4, seed=s, progress=False).state_dict() for s in (0, 0, 1)]
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_training_steps_reduce_loss_on_a_toy_batch():
    torch.manual_seed(0)
    model = VideoEncoder()
    batch = make_batch(BlobClips(), 8, model.config.size, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss, parts = encoder_loss(model, *batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["loss"])
    # measured: 3.41 -> 1.49 (arrangement 1.40 -> 0.98, InfoNCE 2.01 -> 0.51); seeded, so this is not flaky
    assert losses[-1] < 0.6 * losses[0], losses


def test_save_load_round_trip_is_exact(tmp_path):
    config = VideoEncoderConfig(channels=(8, 16, 16, 32), groups=4, projection_dim=16)
    model = train_video_encoder(BlobClips(), steps=1, batch_size=2, seed=3, progress=False, config=config)
    model.save(tmp_path / "enc.safetensors")
    loaded = VideoEncoder.load(tmp_path / "enc.safetensors")
    assert loaded.config == config and loaded.train_info == model.train_info and loaded.train_info["seed"] == "3"
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    clips = torch.rand(2, 8, 1, 32, 32) * 2 - 1
    assert torch.equal(model.features(clips), loaded.features(clips))
    many = clips.repeat(4, 1, 1, 1, 1)
    # a tensor or a list of clips: the same features, so 2·tr Σ - 2·tr (Σ²)^½ = 0 up to the float64 square root of a
    # rank-1 covariance (tr Σ ≈ 0.09; ~sqrt(eps64)·tr Σ ≈ 1.4e-9; measured: 0); 1e-7 is 70x that
    assert fd_lightvid(loaded, many, list(many)) == pytest.approx(0, abs=1e-7)
    assert fd_lightvid(loaded, many, many.flip(1)) > 0
    assert fd_lightvid is frechet_fd_lightvid


def test_load_rejects_wrong_files(tmp_path):
    (tmp_path / "enc.pt").write_bytes(b"not opened")
    with pytest.raises(LightvidError, match="pickle"):
        VideoEncoder.load(tmp_path / "enc.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LightvidError, match="not a readable safetensors"):
        VideoEncoder.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(LightvidError, match="not a lightvid video encoder"):
        VideoEncoder.load(tmp_path / "other.safetensors")
    model = VideoEncoder(VideoEncoderConfig(channels=(8, 8, 8, 8), groups=4, projection_dim=8))
    model.save(tmp_path / "enc.safetensors")
    with safe_open(str(tmp_path / "enc.safetensors"), "pt") as f:
        metadata, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state.pop("arrangement_head.bias")
    save_file(state, str(tmp_path / "cut.safetensors"), metadata=metadata)
    with pytest.raises(LightvidError, match=r"missing \['arrangement_head.bias'\]"):
        VideoEncoder.load(tmp_path / "cut.safetensors")


def test_training_needs_long_enough_clips():
    with pytest.raises(LightvidError, match="at least 4 frames"):
        train_video_encoder(BlobClips(num_frames=3), steps=1, batch_size=2, progress=False)


# ---------------------------------------------------------------- I3D


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    """A seeded random I3D (random BatchNorm statistics too), saved as safetensors: (path, model)."""
    torch.manual_seed(0)
    model = I3D().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("i3d") / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model


def test_i3d_state_dict_names_follow_the_pytorch_port():
    names = set(I3D().state_dict())
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_mean", "Mixed_3b.b0.conv3d.weight",
                "Mixed_3b.b1a.bn.weight", "Mixed_3b.b1b.conv3d.weight", "Mixed_3b.b2a.bn.running_var",
                "Mixed_3b.b2b.conv3d.weight", "Mixed_3b.b3b.conv3d.weight", "Mixed_5c.b3b.bn.bias",
                "logits.conv3d.weight", "logits.conv3d.bias"):
        assert key in names
    assert sum(p.numel() for p in I3D().parameters()) == 12_697_264  # Inception-I3D, 400 classes


def test_pad_same_gives_tensorflow_output_sizes():
    for size in (7, 8, 9, 16, 31):
        x = torch.zeros(1, 1, size, size, size)
        for kernel, stride in (((7, 7, 7), (2, 2, 2)), ((1, 3, 3), (1, 2, 2)), ((3, 3, 3), (1, 1, 1))):
            out = torch.nn.functional.max_pool3d(pad_same(x, kernel, stride), kernel, stride)
            assert out.shape[2:] == tuple(-(-size // s) for s in stride)


def test_load_i3d_round_trip_and_features(i3d_file):
    path, model = i3d_file
    loaded = load_i3d(path)
    clips = torch.rand(2, 8, 3, 32, 32) * 2 - 1
    feats = i3d_features(loaded, clips, size=32)
    assert feats.shape == (2, 400) and torch.isfinite(feats).all()
    assert torch.equal(feats, i3d_features(model, clips, size=32))
    assert i3d_features(loaded, clips[:, :, :1], size=32).shape == (2, 400)  # grey clips are repeated to RGB


def test_load_i3d_accepts_missing_batch_counters(i3d_file, tmp_path):
    _, model = i3d_file
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "old.safetensors"))
    assert load_i3d(tmp_path / "old.safetensors").logits.conv3d.bias.shape == (400,)


def test_load_i3d_refuses_pickles_without_opening_them(tmp_path, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    for name in ("rgb_imagenet.pt", "i3d.pth"):
        (tmp_path / name).write_bytes(b"PK\x03\x04 pickle")
        with pytest.raises(LightvidError, match=r"\.safetensors only"):
            load_i3d(tmp_path / name)
    (tmp_path / "fake.safetensors").write_bytes(b"PK\x03\x04 pickle")
    with pytest.raises(LightvidError, match="not a readable safetensors"):
        load_i3d(tmp_path / "fake.safetensors")


def test_load_i3d_names_wrong_keys(i3d_file, tmp_path):
    _, model = i3d_file
    state = dict(model.state_dict())
    state.pop("Mixed_4c.b1b.conv3d.weight")
    state["Mixed_4c.b9.conv3d.weight"] = torch.zeros(1)
    state["Mixed_3b.b0.conv3d.weight"] = torch.zeros(64, 192, 3, 3, 3)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(LightvidError) as info:
        load_i3d(tmp_path / "bad.safetensors")
    message = str(info.value)
    assert "missing (1): Mixed_4c.b1b.conv3d.weight" in message
    assert "unexpected (1): Mixed_4c.b9.conv3d.weight" in message
    assert "wrong shape (1): Mixed_3b.b0.conv3d.weight" in message
    save_file({"fc.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(LightvidError, match="not an I3D state_dict"):
        load_i3d(tmp_path / "other.safetensors")
