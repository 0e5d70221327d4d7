"""Samplers: small pure functions that integrate the probability-flow ODE (or its SDE) over a schedule.

Shared conventions (as in k-diffusion):
- ``model(x, sigma, **extra_args)`` returns the denoised estimate D(x; sigma) of x0 (a ``Denoiser``,
  possibly wrapped by ``cfg_model``); ``sigma`` is passed as a (b,) tensor.
- ``sigmas`` is the 1-D schedule including the final 0 (see ``schedules.py``); ``len(sigmas) - 1`` steps.
- The initial ``x`` must already be noise scaled to ``sigmas[0]`` (``x = sigmas[0] * randn``); that is
  the caller's job. (diffusers' SVD pipeline scales by ``sqrt(sigma_max^2 + 1)`` instead; pass that
  x to reproduce it.)
- ``callback(info)`` is called after every step with a dict: x, i, sigma, sigma_hat, denoised.
- ``disable`` is tqdm's: None shows the progress bar only when stderr is a terminal, True hides it,
  False always shows it.

The ODE in sigma is dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, eq. 4 with s(t) = 1).
For rectified flow (``Denoiser(prediction="flow")``, sigmas = times t) the same derivative is the
velocity, so ``euler`` and ``heun`` integrate flow models exactly as written; ``euler_ancestral`` and
``dpmpp_2m`` assume the variance-exploding form x = x0 + sigma * noise.
"""

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from lightvid.errors import LightvidError

Model = Callable[..., torch.Tensor]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split the move sigma_from -> sigma_to into a deterministic part down to ``sigma_down`` and fresh
    noise of std ``sigma_up``, with sigma_down^2 + sigma_up^2 = sigma_to^2 (DDPM ancestral sampling,
    Ho et al. 2020, in the variance-exploding form). ``eta`` = 0 is deterministic, 1 is full DDPM."""
    if sigma_to == 0.0 or eta == 0.0:
        return sigma_to, 0.0
    ddpm_up = math.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2)
    sigma_up = min(sigma_to, eta * ddpm_up)
    sigma_down = math.sqrt(sigma_to**2 - sigma_up**2)
    return sigma_down, sigma_up


def _steps(sigmas: torch.Tensor, disable: bool | None):
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(
            f"sigmas must be a 1-D schedule with at least 2 entries, got shape {tuple(sigmas.shape)}"
        )
    return tqdm(range(len(sigmas) - 1), disable=disable, desc="sampling", leave=False)


def _report(callback, x, i, sigma, sigma_hat, denoised) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


@torch.no_grad()
def sample_euler(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    generator: torch.Generator | None = None,  # deterministic sampler: accepted so every sampler is called alike
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 2 with s_churn = 0 and no
    Heun correction). One model call per step; same update as diffusers' EulerDiscreteScheduler."""
    extra_args = extra_args or {}
    sigmas = sigmas.to(x.device)
    batch_ones = x.new_ones([x.shape[0]])  # (b,)
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * batch_ones, **extra_args)
        d = (x - denoised) / sigma
        x = x + d * (sigma_next - sigma)
        _report(callback, x, i, sigma, sigma, denoised)
    return x


@torch.no_grad()
def sample_euler_ancestral(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral sampling with Euler steps: an Euler step down to sigma_down, then fresh noise of std
    sigma_up (see ``ancestral_step``; Ho et al. 2020, Song et al. 2021). Noise comes from
    ``generator`` (torch's global RNG if None), so seeded runs are reproducible."""
    extra_args = extra_args or {}
    sigmas = sigmas.to(x.device)
    batch_ones = x.new_ones([x.shape[0]])  # (b,)
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * batch_ones, **extra_args)
        sigma_down, sigma_up = ancestral_step(sigma.item(), sigma_next.item(), eta)
        d = to_d(x, sigma, denoised)
        x = x + d * (sigma_down - sigma)
        if sigma_up > 0.0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + noise * (s_noise * sigma_up)
        _report(callback, x, i, sigma, sigma, denoised)
    return x


@torch.no_grad()
def sample_renoise(model: Model, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                   callback: Callable[[dict], None] | None = None, disable: bool | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Multistep sampling of few-step students (consistency models, Song et al. 2023, Alg. 1; adversarial
    diffusion distillation): x0 = D(x; sigma_i), then fresh noise up to sigma_{i+1}. A student distilled at
    these sigmas was trained exactly on inputs of this form (clean clip + sigma_i * noise). One step = D(x)."""
    extra_args = extra_args or {}
    sigmas = sigmas.to(x.device)
    batch_ones = x.new_ones([x.shape[0]])  # (b,)
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x = denoised = model(x, sigma * batch_ones, **extra_args)
        if sigma_next > 0:
            x = denoised + sigma_next * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        _report(callback, x, i, sigma, sigma, denoised)
    return x


@torch.no_grad()
def sample_heun(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1; Alg. 2 when ``s_churn`` > 0).

    Two model calls per step except the last (to sigma = 0), which is a plain Euler step. With the
    default ``s_churn = 0`` it is deterministic; otherwise noise is added to go from sigma up to
    sigma_hat = sigma * (1 + gamma) first, drawn from ``generator``.
    """
    extra_args = extra_args or {}
    sigmas = sigmas.to(x.device)
    batch_ones = x.new_ones([x.shape[0]])  # (b,)
    num_steps = len(sigmas) - 1
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = min(s_churn / num_steps, 2**0.5 - 1) if s_tmin <= sigma.item() <= s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1.0)
        if gamma > 0.0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + noise * s_noise * (sigma_hat**2 - sigma**2) ** 0.5
        denoised = model(x, sigma_hat * batch_ones, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        dt = sigma_next - sigma_hat
        if sigma_next == 0:
            x = x + d * dt  # Euler step to the end (Alg. 1, line 8 skipped)
        else:
            x_euler = x + d * dt
            denoised_next = model(x_euler, sigma_next * batch_ones, **extra_args)
            d_next = to_d(x_euler, sigma_next, denoised_next)
            x = x + (d + d_next) / 2 * dt  # trapezoidal correction
        _report(callback, x, i, sigma, sigma_hat, denoised)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    generator: torch.Generator | None = None,  # deterministic sampler: accepted so every sampler is called alike
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2): multistep 2nd order in the data
    prediction, in log-SNR time lambda = -ln(sigma). One model call per step; the first step is 1st
    order (DDIM) and the last step (to sigma = 0) returns the denoised estimate."""
    extra_args = extra_args or {}
    sigmas = sigmas.to(x.device)
    batch_ones = x.new_ones([x.shape[0]])  # (b,)
    old_denoised, h_last = None, None
    for i in _steps(sigmas, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * batch_ones, **extra_args)
        if sigma_next == 0:
            x = denoised  # exp(-h) -> 0: the solution at sigma = 0 is the data prediction
        else:
            h = torch.log(sigma) - torch.log(sigma_next)  # lambda_next - lambda > 0
            if old_denoised is None:
                denoised_mix = denoised
            else:
                r = h_last / h
                denoised_mix = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_next / sigma) * x - torch.expm1(-h) * denoised_mix
            h_last = h
        old_denoised = denoised
        _report(callback, x, i, sigma, sigma, denoised)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "renoise": sample_renoise,
}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """Look a sampler up by name; an unknown name is a LightvidError listing the accepted ones."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise LightvidError(f"unknown sampler {name!r}; accepted: {', '.join(SAMPLERS)}") from None
