"""lightvid.eval.metrics (PSNR, SSIM, Moving MNIST MSE, loop seam) and lightvid.eval.baselines (frame filling)."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity
from tolerances import EPS32, EPS64, relative_error

from lightvid.errors import LightvidError
from lightvid.eval import (
    BASELINES,
    copy_nearest,
    farneback,
    farneback_global,
    farneback_visible,
    linear_blend,
    loop_seam,
    mnist_frame_mse,
    psnr,
    ssim,
)
from lightvid.eval.evaluate import _scores


def smooth_clip(rng, frames, channels, h, w, sigma=1.5) -> torch.Tensor:
    """(F, C, H, W) float32 in [-1, 1]: blurred noise, spatially smooth like natural images."""
    x = gaussian_filter(rng.standard_normal((frames, channels, h, w)), (0, 0, sigma, sigma))
    return torch.from_numpy(np.clip(x / np.abs(x).max(), -1, 1)).float()


def translated_texture(frames, step, channels=1, size=64, sigma=2.0, seed=0) -> torch.Tensor:
    """(F, C, size, size): one periodic smooth texture moved by `step` = (dy, dx) pixels per frame."""
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.standard_normal((channels, size, size)), (0, sigma, sigma), mode="wrap")
    tex /= np.abs(tex).max()
    clip = [np.roll(tex, (step[0] * i, step[1] * i), axis=(1, 2)) for i in range(frames)]
    return torch.from_numpy(np.stack(clip)).float()


def mask(frames, *given) -> torch.Tensor:
    m = torch.zeros(frames, dtype=torch.bool)
    m[list(given)] = True
    return m


# --- metrics -------------------------------------------------------------------------------------------------


def test_psnr_known_values():
    target = torch.zeros(3, 3, 8, 8)
    pred = target.clone()
    pred[1] += 0.2  # 0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB
    pred[2, 0] -= 0.2  # one channel of three: MSE 0.01 / 3
    out = psnr(pred, target)
    assert out.shape == (3,)
    # float32 means and log10 of values of order 1 (measured ≤ 0.1 eps off); approx's default 1e-6 is 8 eps
    assert out[0].item() == pytest.approx(100.0)  # identical: MSE clamped at 1e-10
    assert out[1].item() == pytest.approx(20.0)
    assert out[2].item() == pytest.approx(20.0 + 10 * math.log10(3))


@pytest.mark.parametrize("size", [(16, 16), (23, 31), (64, 48)])
@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(size, channels):
    rng = np.random.default_rng(channels * 100 + size[1])
    target = smooth_clip(rng, 2, channels, *size)
    pred = (target + 0.3 * smooth_clip(rng, 2, channels, *size, sigma=1.0)).clamp(-1, 1)
    ours = ssim(pred, target)
    assert ours.shape == (2,)
    for i in range(2):
        ref = structural_similarity(
            ((pred[i].double() + 1) / 2).numpy(),
            ((target[i].double() + 1) / 2).numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
        assert 0.3 < ref < 0.99  # a non-trivial comparison
        # float64 on both sides, the same 11-tap separable Gaussian blur and 'valid' crop: sums of 121 terms
        # rounded in another order (measured 10 eps64); 256 eps64 ≈ 5.7e-14
        assert abs(ours[i].item() - ref) < 256 * EPS64


def test_ssim_identical_is_one_and_small_frames_rejected():
    x = smooth_clip(np.random.default_rng(0), 2, 3, 16, 16)
    # numerator and denominator are the same float64 values (2μ² = μ² + μ², 2·cov = var + var): exactly 1
    # (measured), a few eps64 if the blur treated equal channels differently
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), rtol=0, atol=16 * EPS64)
    with pytest.raises(LightvidError, match="at least 11x11"):
        ssim(x[..., :10], x[..., :10])


def test_mnist_frame_mse_sums_over_pixels():
    target = -torch.ones(2, 1, 64, 64)
    pred = target.clone()
    pred[0, 0, 3, 5] = 1.0  # one pixel off by the full range: 1 on the [0, 1] scale
    pred[1] = 0.0  # every pixel off by 0.5
    out = mnist_frame_mse(pred, target)
    # float32 sums of 4096 squares of exactly representable values: exact here (measured); approx's 1e-6 default
    assert out.tolist() == pytest.approx([1.0, 64 * 64 * 0.25])
    assert out[1].item() == pytest.approx(64 * 64 * torch.mean(((pred[1] - target[1]) / 2) ** 2).item())


def test_loop_seam():
    n = 12
    phase = torch.arange(n) / n
    # a triangle wave in brightness: every step, the wrap from the last frame to the first included, is 1/6
    # on the [0, 1] scale
    triangle = (1 - 4 * (phase - 0.5).abs()).view(n, 1, 1, 1).expand(n, 1, 4, 4)
    ramp = (2 * phase - 1).view(n, 1, 1, 1).expand(n, 3, 4, 4)  # jumps back from the top to the bottom
    seamless, jumping = loop_seam(triangle), loop_seam(ramp)
    assert set(seamless) == {"seam", "median_step", "max_step", "ratio"}
    # means of float32 differences of values like 1/6 that float32 rounds: measured up to 4 eps off, too close to
    # approx's default 1e-6 (8 eps); 32 eps
    tol = 32 * EPS32
    assert seamless["seam"] == pytest.approx(1 / 6, rel=tol) and seamless["max_step"] == pytest.approx(1 / 6, rel=tol)
    assert seamless["ratio"] == pytest.approx(1.0, rel=tol)
    assert jumping["median_step"] == pytest.approx(1 / n, rel=tol)
    assert jumping["seam"] == pytest.approx((n - 1) / n, rel=tol)
    assert jumping["ratio"] == pytest.approx(n - 1, rel=tol)
    still = loop_seam(torch.zeros(4, 1, 4, 4))
    assert still == {"seam": 0.0, "median_step": 0.0, "max_step": 0.0, "ratio": 1.0}
    broken = torch.zeros(4, 1, 4, 4)
    broken[0] = 1.0  # steps 1, 0, 0 -> median 0, seam 0.5
    assert loop_seam(broken)["ratio"] == math.inf


def test_eval_scores_give_the_loop_seam_in_gray_levels():
    n = 12
    ramp = (2 * torch.arange(n) / n - 1).view(n, 1, 1, 1).expand(n, 3, 16, 16)  # steps 1/n, seam (n-1)/n on [0, 1]
    generated = torch.ones(n, dtype=torch.bool)
    scores = _scores(ramp, ramp, generated, mnist=False, seam=True)
    tol = 32 * EPS32  # as in test_loop_seam: float32 means of rounded steps, measured up to 1 eps off
    assert scores["seam_levels"] == pytest.approx(255 * (n - 1) / n, rel=tol)
    assert scores["step_levels"] == pytest.approx(255 / n, rel=tol)
    assert scores["seam_ratio"] == pytest.approx(n - 1, rel=tol)
    assert "seam_levels" not in _scores(ramp, ramp, generated, mnist=False, seam=False)


@pytest.mark.parametrize("metric", [psnr, ssim, mnist_frame_mse])
def test_metrics_reject_bad_shapes(metric):
    x = torch.zeros(2, 1, 16, 16)
    with pytest.raises(LightvidError, match="same shape"):
        metric(x, torch.zeros(3, 1, 16, 16))
    with pytest.raises(LightvidError, match=r"\(F, C, H, W\)"):
        metric(x[0], x[0])
    with pytest.raises(LightvidError, match="float tensor"):
        metric(x.numpy(), x)
    with pytest.raises(LightvidError, match="at least 3 frames"):
        loop_seam(x)


# --- baselines -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("channels", [1, 3])
def test_baselines_keep_given_frames(name, channels):
    clip = smooth_clip(np.random.default_rng(1), 7, channels, 24, 20)
    given = mask(7, 1, 4, 5)
    out = BASELINES[name](clip, given)
    assert out.shape == clip.shape and out.dtype == clip.dtype
    assert torch.equal(out[given], clip[given])
    assert torch.equal(out[0], clip[1]) and torch.equal(out[6], clip[5])  # outside the given range: copy nearest
    assert torch.equal(clip, smooth_clip(np.random.default_rng(1), 7, channels, 24, 20))  # input untouched


def test_copy_nearest_tie_goes_to_earlier():
    clip = torch.arange(7.0).view(7, 1, 1, 1).expand(7, 1, 2, 2) / 10
    out = copy_nearest(clip, mask(7, 1, 3, 6))
    assert out[:, 0, 0, 0].mul(10).round().tolist() == [1, 1, 1, 3, 3, 6, 6]  # frame 2: tie of 1 and 3 -> 1
    out = copy_nearest(clip, mask(7, 0, 4))
    assert out[:, 0, 0, 0].mul(10).round().tolist() == [0, 0, 0, 4, 4, 4, 4]  # frame 2: tie of 0 and 4 -> 0


def test_linear_blend_is_exact_on_a_constant_velocity_ramp():
    n = 9
    clip = (torch.linspace(-0.8, 0.8, n).view(n, 1, 1, 1) + torch.linspace(-0.1, 0.1, 12).view(1, 1, 1, 12)).expand(
        n, 3, 10, 12
    )
    out = linear_blend(clip, mask(n, 0, 3, 8))
    # (1 - t)·a + t·b of float32 values up to 0.9: a couple of roundings (measured 0.5 eps); 4 eps relative
    assert relative_error(out, clip) <= 4 * EPS32


@pytest.mark.parametrize("channels", [1, 3])
def test_farneback_beats_linear_blend_on_translation(channels):
    # 3 px right and 1 px down per frame; frames 0 and 2 given, so the flow between them is (6, 2) px.
    # Measured: farneback 13-18 dB better than the cross-fade on these clips (seeds 0-4, 1 and 3 channels).
    clip = translated_texture(3, (1, 3), channels=channels)
    given = mask(3, 0, 2)
    gain = psnr(farneback(clip, given), clip)[1] - psnr(linear_blend(clip, given), clip)[1]
    assert gain > 8.0  # 5 dB below the smallest measured gain: a flow that fails is no better than the cross-fade
    # Slower motion over a longer gap: every in-between time t = 1/4, 1/2, 3/4 gains.
    clip = translated_texture(5, (0, 1), channels=channels, seed=1)
    given = mask(5, 0, 4)
    gains = psnr(farneback(clip, given), clip) - psnr(linear_blend(clip, given), clip)
    assert (gains[1:4] > 8.0).all()


def test_farneback_warps_are_the_baselines_parts_and_know_where_they_leave_the_frame():  # and farneback_visible
    from lightvid.conditioning import farneback_warps

    clip = translated_texture(3, (0, 3), channels=3)  # 6 px to the right from frame 0 to frame 2
    given = mask(3, 0, 2)
    warps = farneback_warps(clip, given)
    assert list(warps) == [1] and warps[1].t == 0.5
    middle = torch.from_numpy(warps[1].blend()).permute(2, 0, 1)
    assert torch.equal(farneback(clip, given)[1], middle)
    # frame 1 at x saw frame 0 at x - 3 and frame 2 at x + 3: the 3 columns at the left edge are not in frame 0,
    # the 3 at the right edge not in frame 2; everything else is in both
    expected_a, expected_b = np.ones(64, np.float32), np.ones(64, np.float32)
    expected_a[:3], expected_b[-3:] = 0, 0
    assert np.array_equal(warps[1].inside_a.mean(0), expected_a)
    assert np.array_equal(warps[1].inside_b.mean(0), expected_b)
    assert farneback_warps(clip, mask(3, 0)) == {}  # one given frame: nothing lies between two
    # farneback_visible: where one warp leaves its frame the other is used alone, elsewhere the same (1 - t, t)
    weight = warps[1].visible_weight()  # (H, W), the weight of frame 2's warp
    assert np.array_equal(weight.mean(0), np.r_[np.ones(3), np.full(58, 0.5), np.zeros(3)].astype(np.float32))
    visible = farneback_visible(clip, given)
    # the same (1 - t, t) blend of the same warps inside the frame (measured: equal); 4 eps for a reordering
    assert relative_error(visible[:, :, :, 3:-3], farneback(clip, given)[:, :, :, 3:-3]) <= 4 * EPS32
    edges = [0, 1, 2, 61, 62, 63]  # there the baseline blends in a replicated border pixel
    truth = clip[1:2, ..., edges]
    assert psnr(visible[1:2, ..., edges], truth) > psnr(middle[None, ..., edges], truth) + 3  # a clear gain, not noise


def panned_photo(step: int, frames: int = 5) -> torch.Tensor:
    """(frames, 3, 128, 128): a camera panning right over a real photo by `step` whole pixels per frame."""
    from PIL import Image
    from skimage import data

    photo = np.array(Image.fromarray(data.chelsea()).resize((240, 160)))  # (160, 240, 3) uint8
    crops = [photo[16:144, 8 + step * i: 136 + step * i] for i in range(frames)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_farneback_global_follows_a_camera_pan_that_farneback_loses():
    from lightvid.conditioning.flows import global_affine, gray_uint8

    clip = panned_photo(8)  # 32 px between the given frames 0 and 4: beyond Farneback's 3-level pyramid
    given = mask(5, 0, 4)
    # the camera's motion: frame 0 at x is frame 4 at x - 32 (content moves left)
    affine = global_affine(gray_uint8(clip[0]), gray_uint8(clip[4]))
    # ORB keypoints and RANSAC on 8-bit frames: measured 0.4% off the identity's entries and 0.1 px off the 32 px
    # shift; 2% (0.64 px for the shift) bounds that sub-pixel fit error 5x, far below a wrong match's pixels
    assert np.allclose(affine, [[1, 0, -32], [0, 1, 0]], atol=0.02 * np.array([[1, 1, 32], [1, 1, 32]]))
    # measured: farneback 16.84 dB, farneback_visible 16.84, farneback_global 34.92 (steps of 4-10 px: 34-42 dB
    # against 17-22)
    scores = {f.__name__: psnr(f(clip, given)[1:4], clip[1:4]).mean().item()
              for f in (farneback, farneback_visible, farneback_global)}
    assert scores["farneback_global"] > 32 and scores["farneback"] < 20, scores
    assert torch.equal(farneback_global(clip, given), farneback_global(clip, given))  # ORB and RANSAC: seeded
    assert torch.equal(farneback_global(clip, given)[[0, 4]], clip[[0, 4]])  # given frames unchanged


def test_global_motion_flow_keeps_plain_farneback_when_the_global_fit_warps_worse(monkeypatch):
    from lightvid.conditioning import flows

    clip = panned_photo(1, frames=2)  # 1 px: plain Farneback is right
    ga, gb = flows.gray_uint8(clip[0]), flows.gray_uint8(clip[1])
    plain = flows.farneback_flow(ga, gb)
    # content moves 1 px left: Farneback's median flow is sub-pixel accurate (measured 0.001 px off); 0.1 px
    assert np.allclose(np.median(plain.reshape(-1, 2), 0), [-1, 0], atol=0.1)
    good = flows.global_motion_flow(ga, gb)
    assert flows.warp_error(ga, gb, good) <= flows.warp_error(ga, gb, plain)
    monkeypatch.setattr(flows, "global_affine", lambda a, b: np.array([[1, 0, 20.0], [0, 1, -15.0]]))
    assert np.array_equal(flows.global_motion_flow(ga, gb), plain)  # a wrong fit: the plain flow is kept


def test_farneback_global_without_a_global_fit_is_farneback_visible():
    from lightvid.conditioning.flows import global_affine, gray_uint8

    clip = smooth_clip(np.random.default_rng(0), 3, 3, 32, 32, sigma=4.0)  # too smooth for ORB's corners
    assert global_affine(gray_uint8(clip[0]), gray_uint8(clip[2])) is None
    assert global_affine(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)) is None  # no keypoints
    given = mask(3, 0, 2)
    assert torch.equal(farneback_global(clip, given), farneback_visible(clip, given))
    with pytest.raises(LightvidError, match="unknown flow 'raft'; accepted: farneback, farneback_global"):
        from lightvid.conditioning import farneback_warps
        farneback_warps(clip, given, flow="raft")


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_reject_bad_input(name):
    fill = BASELINES[name]
    clip = torch.zeros(4, 1, 16, 16)
    with pytest.raises(LightvidError, match=r"shape \(4,\)"):
        fill(clip, mask(5, 0))
    with pytest.raises(LightvidError, match="bool"):
        fill(clip, torch.tensor([1, 0, 0, 1]))
    with pytest.raises(LightvidError, match="no frame"):
        fill(clip, mask(4))
    with pytest.raises(LightvidError, match=r"\(F, C, H, W\)"):
        fill(clip[0], mask(1, 0))


def test_edit_flicker_follows_motion_and_sees_inconsistent_frames():
    from lightvid.eval.flicker import edit_flicker, source_flows, warped_change
    g = torch.Generator().manual_seed(0)
    scene = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 48, 80, generator=g), 3, 1, 1) * 2 - 1  # smooth texture
    source = torch.cat([scene[..., :, 2 * t:2 * t + 48] for t in range(6)])  # a pan, 2 px a frame: (6, 3, 48, 48)
    flows = source_flows(source)
    assert warped_change(source, flows) < 0.5 * warped_change(source, [0 * f for f in flows])  # motion explained
    darker = source * 0.5 - 0.5  # an exact per-pixel edit: no flicker of its own (its change halves with contrast)
    assert edit_flicker(darker, source, flows) <= 0
    flicker = darker + 0.1 * torch.rand(6, 1, 1, 1, generator=g)  # each frame's brightness off by up to 12.75 levels
    assert edit_flicker(flicker, source, flows) > edit_flicker(darker, source, flows) + 2
    from lightvid.eval.flicker import error_flicker
    steady = darker + 0.1  # wrong by 12.75 levels everywhere, in every frame: a steady error
    assert error_flicker(steady, darker, flows) < 0.01 < 2 < error_flicker(flicker, darker, flows)
