"""Tests for lightvid.diffusion: schedules, Denoiser preconditioning, samplers, guidance."""

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import EPS32

from lightvid.diffusion import (
    SAMPLERS,
    Denoiser,
    cfg_model,
    flow_sigmas,
    get_sampler,
    karras_sigmas,
    sample_euler,
    sample_euler_ancestral,
    sample_heun,
    svd_denoiser,
    svd_guidance_ramp,
    svd_sigmas,
)
from lightvid.errors import LightvidError

SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "v_prediction",
    "sigma_max": 700.0, "sigma_min": 0.002, "steps_offset": 1, "timestep_spacing": "leading",
    "timestep_type": "continuous", "use_karras_sigmas": True,
}  # fmt: skip

# diffusers' scheduler trips a numpy 2 deprecation inside set_timesteps; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def svd_scheduler():
    from diffusers import EulerDiscreteScheduler

    accepted = inspect.signature(EulerDiscreteScheduler.__init__).parameters
    return EulerDiscreteScheduler(**{k: v for k, v in SVD_SCHEDULER_CONFIG.items() if k in accepted})


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max()).item()


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("n", [1, 2, 3, 14, 25, 50])
def test_svd_sigmas_match_diffusers_euler_scheduler(n):
    scheduler = svd_scheduler()
    scheduler.set_timesteps(n)
    ours = svd_sigmas(n)
    assert ours.dtype == torch.float32 and ours.shape == scheduler.sigmas.shape == (n + 1,)
    # both compute the schedule in float64 and round it once to float32: equal, or 1 ulp apart where float64
    # values that differ in their last bits round apart (measured: equal)
    torch.testing.assert_close(ours, scheduler.sigmas, rtol=EPS32, atol=0.0)
    # SVD's timesteps are its c_noise: 0.25 * ln(sigma) for the non-zero sigmas. A float32 log is within an ulp or
    # two of the result (rtol 4 eps); where the log was taken before sigma's rounding to float32 (relative 2^-24),
    # the results differ by up to 0.25·2^-24 absolute, which matters near c_noise = 0 (atol eps)
    torch.testing.assert_close(scheduler.timesteps, 0.25 * torch.log(ours[:-1]), rtol=4 * EPS32, atol=EPS32)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    sigma_min=st.floats(1e-4, 10.0),
    ratio=st.floats(1.5, 1e5),
    rho=st.floats(1.0, 10.0),
)
def test_karras_sigmas_properties(n, sigma_min, ratio, rho):
    sigma_max = sigma_min * ratio
    sigmas = karras_sigmas(n, sigma_min, sigma_max, rho)
    assert sigmas.shape == (n + 1,) and sigmas.dtype == torch.float32
    assert sigmas[-1] == 0.0
    # float64 (ρ-th power of a root: ~ρ·2^-52 relative) rounded once to float32 (2^-24): within 1 float32 eps
    assert math.isclose(sigmas[0].item(), sigma_max, rel_tol=EPS32)
    if n > 1:
        assert math.isclose(sigmas[-2].item(), sigma_min, rel_tol=EPS32)
    assert torch.all(sigmas[1:] < sigmas[:-1])  # strictly decreasing


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), shift=st.floats(0.1, 20.0))
def test_flow_sigmas_properties(n, shift):
    t = flow_sigmas(n, shift)
    assert t.shape == (n + 1,) and t.dtype == torch.float32
    # shift·1 / (1 + (shift - 1)·1) in float64 is within 2^-52 of 1, so its float32 rounding is exactly 1
    assert t[0].item() == 1.0 and t[-1] == 0.0
    assert torch.all(t[1:] < t[:-1])


def test_flow_sigmas_shift_formula():
    t = torch.linspace(1.0, 0.0, 5, dtype=torch.float64)
    # the same float64 formula rounded once to float32 on both sides: at most 1 ulp apart (measured: equal)
    torch.testing.assert_close(flow_sigmas(4, 3.0), (3 * t / (1 + 2 * t)).float(), rtol=EPS32, atol=0)
    torch.testing.assert_close(flow_sigmas(4), t.float(), rtol=EPS32, atol=0)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_schedules_reject_bad_step_counts(bad):
    with pytest.raises(LightvidError, match="steps"):
        svd_sigmas(bad)


# ---------------------------------------------------------------- Denoiser


def ideal_net_output(prediction, x0, noise, sigma, sigma_data):
    """What a perfect network outputs for x = x0 + sigma * noise (flow: (1 - t) x0 + t noise)."""
    s = sigma.view(-1, *(1,) * (x0.ndim - 1))
    sd = sigma_data
    v = (sd * noise - s * x0 / sd) / (s**2 + sd**2) ** 0.5
    return {"v": v, "edm": -v, "eps": noise, "x0": x0, "flow": noise - x0}[prediction]


@pytest.mark.parametrize("prediction", ["v", "eps", "x0", "edm", "flow"])
@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_denoiser_recovers_x0_from_ideal_net(prediction, sigma_data):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 4, 5, 5, generator=g)  # (b, f, c, h, w)
    noise = torch.randn(x0.shape, generator=g)
    sigma = torch.tensor([0.3, 0.9, 0.05]) if prediction == "flow" else torch.tensor([0.01, 1.3, 80.0])
    s = sigma.view(-1, 1, 1, 1, 1)
    x = (1 - s) * x0 + s * noise if prediction == "flow" else x0 + s * noise
    seen = {}

    def net(x_in, c_noise, extra=None):
        seen.update(x_in=x_in, c_noise=c_noise, extra=extra)
        return ideal_net_output(prediction, x0, noise, sigma, sigma_data)

    denoiser = Denoiser(net, prediction=prediction, sigma_data=sigma_data)
    out = denoiser(x, sigma, extra="passed through")
    # D = c_skip·x + c_out·F cancels terms as large as x (80·noise at sigma 80) down to x0: a few float32 roundings
    # of those terms (measured 0.06 eps·max|x|: 7.5e-6 at max|x| ≈ 300); the bound is 1 eps·max|x|
    torch.testing.assert_close(out, x0, rtol=0, atol=EPS32 * x.abs().max().item())
    assert seen["extra"] == "passed through"
    _, _, c_in, _ = denoiser.preconditioning(sigma)
    # the same float32 products as the denoiser's own: equal, or an ulp apart if reordered (rtol 2 eps)
    torch.testing.assert_close(seen["x_in"], c_in.view(-1, 1, 1, 1, 1) * x, rtol=2 * EPS32, atol=0)
    expected_c_noise = sigma if prediction == "flow" else 0.25 * torch.log(sigma)
    torch.testing.assert_close(seen["c_noise"], expected_c_noise, rtol=2 * EPS32, atol=0)


def test_svd_denoiser_matches_diffusers_v_prediction_formula():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 6, 6, generator=g) * 30
    raw = torch.randn(x.shape, generator=g)
    for sigma in [700.0, 14.2, 0.002]:
        sigma_t = torch.tensor(sigma)
        expected = raw * (-sigma_t / (sigma_t**2 + 1) ** 0.5) + x / (sigma_t**2 + 1)  # diffusers' step()
        out = svd_denoiser(lambda x_in, c_noise: raw)(x, sigma)
        # elementwise, two or three float32 roundings per side of terms up to max|x| ≈ 100: 8 eps relative (rtol),
        # and 8 eps absolute where terms of order 1 cancel (atol); measured 0.3 eps·max
        torch.testing.assert_close(out, expected, rtol=8 * EPS32, atol=8 * EPS32)


def test_denoiser_scalar_and_batched_sigma_agree():
    def net(x_in, c_noise):
        return torch.tanh(x_in) * c_noise.view(-1, 1, 1)

    denoiser = Denoiser(net, prediction="edm", sigma_data=0.5)
    x = torch.randn(2, 3, 4)
    # the same float32 arithmetic whatever sigma's shape: equal, or an ulp apart if broadcasting reorders it
    torch.testing.assert_close(denoiser(x, 2.0), denoiser(x, torch.tensor([2.0, 2.0])), rtol=2 * EPS32, atol=0)
    torch.testing.assert_close(denoiser(x, torch.tensor(2.0)), denoiser(x, 2.0), rtol=2 * EPS32, atol=0)


def test_denoiser_loss_weight_and_bad_arguments():
    denoiser = Denoiser(lambda x, c: x, prediction="edm", sigma_data=0.5)
    # (σ² + σ_d²) / (σ·σ_d)² = 5 in float32: exact here; approx's default 1e-6 relative is 8 eps
    assert denoiser.loss_weight(1.0).item() == pytest.approx((1 + 0.25) / 0.25)
    with pytest.raises(LightvidError, match="accepted: v, eps, x0, edm, flow"):
        Denoiser(lambda x, c: x, prediction="velocity")
    with pytest.raises(LightvidError, match="noise_conditioning"):
        Denoiser(lambda x, c: x, noise_conditioning="log")


# ---------------------------------------------------------------- samplers


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_end_at_the_single_data_point(name):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 3, 4, 4, generator=g)
    sigmas = karras_sigmas(10, 0.002, 80.0)
    x = sigmas[0] * torch.randn(x0.shape, generator=g)
    out = get_sampler(name)(lambda x, sigma: x0.expand_as(x), x, sigmas, disable=True)
    # the last step to sigma 0 lands on D's output: x - sigma·(x - x0)/sigma cancels every earlier rounding and
    # adds ~2 of its own at |x0| (measured: exact); bound 8 eps·max|x0|
    torch.testing.assert_close(out, x0, rtol=0, atol=8 * EPS32 * x0.abs().max().item())


def test_heun_with_churn_ends_at_the_single_data_point():
    x0 = torch.randn(2, 3, 4, 4)
    sigmas = karras_sigmas(6, 0.002, 80.0)
    gen = torch.Generator().manual_seed(0)
    out = sample_heun(lambda x, s: x0, 80.0 * torch.randn(x0.shape), sigmas, s_churn=10.0, generator=gen)
    torch.testing.assert_close(out, x0, rtol=0, atol=8 * EPS32 * x0.abs().max().item())  # as above


def gaussian_ode_error(name: str, steps: int, data_std=1.0, sigma_max=80.0) -> float:
    """Relative error of sampling N(0, data_std^2) with its exact denoiser against the exact ODE solution."""

    def ideal_denoiser(x, sigma):  # E[x0 | x] for Gaussian data
        s = sigma.view(-1, *(1,) * (x.ndim - 1))
        return x * data_std**2 / (data_std**2 + s**2)

    x = sigma_max * torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    # the exact ODE solution: x(sigma) is proportional to sqrt(data_std^2 + sigma^2)
    exact = x * data_std / (data_std**2 + sigma_max**2) ** 0.5
    sigmas = karras_sigmas(steps, 0.002, sigma_max).double()
    return relative_error(get_sampler(name)(ideal_denoiser, x, sigmas, disable=True), exact)


# Measured relative errors (float64, karras 0.002..80, data std 1): the problem is linear, so they do not
# depend on the noise draw.   20 steps   40 steps   160 steps
#   euler                      1.27e-1    6.39e-2    1.61e-2
#   heun                       3.54e-2    7.98e-3    4.61e-4
#   dpmpp_2m                   4.01e-2    8.45e-3    4.67e-4
# Bounds are ~1.5x the measurement; the error ratio 20 -> 40 steps checks the order of each method.
@pytest.mark.parametrize(
    "name, bound_20, order", [("euler", 0.19, 1), ("heun", 0.055, 2), ("dpmpp_2m", 0.06, 2)]
)
def test_samplers_solve_the_gaussian_probability_flow_ode(name, bound_20, order):
    err_20, err_40 = gaussian_ode_error(name, 20), gaussian_ode_error(name, 40)
    assert err_20 < bound_20
    assert order - 0.3 < math.log2(err_20 / err_40) < order + 0.4


def test_heun_reaches_1e3_relative_error_on_gaussian_data():
    assert gaussian_ode_error("heun", 160) < 1e-3  # measured 4.61e-4 (float64: discretisation error, not rounding)


def random_svd_net(channels: int):
    """A fixed nonlinear stand-in for SVD's UNet: net(x_in, c_noise) -> v."""
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(channels, channels, generator=g) / channels**0.5
    bias = torch.randn(channels, 1, 1, generator=g)

    def net(x_in, c_noise):  # x_in (b, f, c, h, w), c_noise (b,) or 0-d
        mixed = torch.einsum("dc,bfchw->bfdhw", weight, x_in)
        return torch.tanh(mixed + bias) * (1 + c_noise.reshape(-1, 1, 1, 1, 1))

    return net


@pytest.mark.parametrize("total_steps", [3, 25])
def test_sample_euler_matches_diffusers_euler_scheduler_for_svd(total_steps):
    net = random_svd_net(channels=4)
    scheduler = svd_scheduler()
    scheduler.set_timesteps(total_steps)
    x = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(5)) * scheduler.init_noise_sigma
    reference = x.clone()
    for t in scheduler.timesteps[:3]:
        model_output = net(scheduler.scale_model_input(reference, t), t)
        reference = scheduler.step(model_output, t, reference).prev_sample
    ours = sample_euler(svd_denoiser(net), x, svd_sigmas(total_steps)[:4], disable=True)
    # three Euler steps, each a float32 einsum and arithmetic ordered differently from diffusers': rounding of
    # values up to max|x| (~1e3 at sigma 700); measured 8.6 eps·max|x|, bound 84 eps (1e-5) relative to it
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5 * reference.abs().max().item())


def test_euler_ancestral_is_reproducible_per_seed():
    def model(x, sigma):
        return x / (1 + sigma.view(-1, 1, 1, 1) ** 2)

    sigmas = karras_sigmas(5, 0.002, 80.0)
    x = 80.0 * torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(6))

    def run(seed):
        return sample_euler_ancestral(model, x, sigmas, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))  # other noise: O(1) apart (measured 1.4), far beyond rounding
    deterministic = sample_euler_ancestral(model, x, sigmas, eta=0.0)
    # eta 0 is plain Euler: the same float32 steps (measured: equal); 2 eps relative allows a reordered product
    torch.testing.assert_close(deterministic, sample_euler(model, x, sigmas), rtol=2 * EPS32, atol=0)


def test_sampler_callback_and_registry():
    steps = []
    sigmas = karras_sigmas(4, 0.002, 80.0)
    sample_euler(lambda x, s: x * 0, torch.ones(1, 2), sigmas, callback=lambda info: steps.append(info["i"]))
    assert steps == [0, 1, 2, 3]
    assert get_sampler("heun") is sample_heun
    with pytest.raises(LightvidError, match="accepted: euler, euler_ancestral, heun, dpmpp_2m"):
        get_sampler("ddim")


# ---------------------------------------------------------------- guidance


class RecordingModel:
    """model(x, sigma, image, flag) = 0.5 * x + image; records every call's inputs."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, image, flag=None):
        self.calls.append({"x": x, "sigma": sigma, "image": image, "flag": flag})
        return 0.5 * x + image


def test_cfg_scale_one_skips_the_uncond_pass():
    model = RecordingModel()
    x, image = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    for scale in [1.0, torch.ones(3)]:
        model.calls.clear()
        guided = cfg_model(model, {"image": image}, {"image": torch.zeros_like(image)}, scale)
        sample_euler(guided, x, karras_sigmas(3, 0.002, 80.0), disable=True)
        assert len(model.calls) == 3 and all(c["x"].shape[0] == 2 for c in model.calls)
        # scale 1: the conditional call alone, the same float32 ops (measured: equal); 2 eps for a reordering
        torch.testing.assert_close(guided(x, torch.tensor([1.0, 1.0])), 0.5 * x + image, rtol=2 * EPS32, atol=0)


def test_cfg_per_frame_ramp_in_one_batched_call():
    model = RecordingModel()
    b, f = 2, 5
    x = torch.randn(b, f, 3, 4, 4)
    image = torch.randn(b, 1, 3, 4, 4)
    uncond_image = torch.zeros_like(image)
    ramp = svd_guidance_ramp(f, 1.0, 3.0)
    guided = cfg_model(model, {"image": image, "flag": None}, {"image": uncond_image, "flag": None}, ramp)
    out = guided(x, torch.full((b,), 7.0))

    assert len(model.calls) == 1
    call = model.calls[0]
    assert call["x"].shape[0] == 2 * b and call["flag"] is None
    assert torch.equal(call["image"], torch.cat([uncond_image, image]))  # uncond first
    assert torch.equal(call["sigma"], torch.full((2 * b,), 7.0))
    for frame in range(f):  # hand computation, frame by frame
        uncond, cond = 0.5 * x[:, frame] + uncond_image[:, 0], 0.5 * x[:, frame] + image[:, 0]
        expected = uncond + ramp[frame].item() * (cond - uncond)
        # uncond + s·(cond - uncond), computed the same way (measured: equal); a fused or reordered version
        # rounds the difference of values up to max|x| differently: 4 eps of that size
        torch.testing.assert_close(out[:, frame], expected, rtol=0, atol=4 * EPS32 * expected.abs().max().item())


def test_cfg_on_denoised_equals_diffusers_cfg_on_v_output():
    """diffusers' SVD pipeline guides the raw v output; guiding D is the same (D is affine in it)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 4, 3, 4, 4, generator=g) * 5
    image = torch.randn(1, 4, 3, 4, 4, generator=g)
    def net(x_in, c_noise, image):
        return torch.tanh(x_in + image) * c_noise.view(-1, 1, 1, 1, 1)

    ramp = svd_guidance_ramp(4, 1.0, 3.0)
    sigma = torch.tensor([5.0])
    guided = cfg_model(svd_denoiser(net), {"image": image}, {"image": torch.zeros_like(image)}, ramp)

    c_noise, x_in = 0.25 * torch.log(sigma), x / (sigma**2 + 1) ** 0.5
    v_uncond, v_cond = net(x_in, c_noise, torch.zeros_like(image)), net(x_in, c_noise, image)
    v = v_uncond + ramp.view(1, -1, 1, 1, 1) * (v_cond - v_uncond)
    expected = v * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
    # elementwise float32 (tanh within an ulp or two, differing across SIMD widths) and the guidance mix in
    # another order: measured 1.3 eps·max; 8 eps relative, and 8 eps absolute where terms of order 1 cancel
    torch.testing.assert_close(guided(x, sigma), expected, rtol=8 * EPS32, atol=8 * EPS32)


def test_svd_guidance_ramp_endpoints_and_errors():
    ramp = svd_guidance_ramp(14, 1.0, 3.0)
    assert ramp.shape == (14,) and ramp[0].item() == 1.0 and ramp[-1].item() == 3.0
    # each ramp value (≤ 3) is within 1 ulp (2·eps at values in [2, 4)) of its float64 value, so a difference of
    # two is within 4·eps; measured 1.1 eps·3
    torch.testing.assert_close(ramp[1:] - ramp[:-1], torch.full((13,), 2.0 / 13), rtol=0, atol=4 * EPS32 * 3)
    x = torch.randn(1, 5, 2)
    guided = cfg_model(lambda x, s, y: x + y, {"y": x}, {"y": x * 0}, ramp)
    with pytest.raises(ValueError, match="per frame"):
        guided(x, 1.0)
    with pytest.raises(ValueError, match="same keys"):
        cfg_model(lambda x, s, y: x, {"y": x}, {}, 2.0)
