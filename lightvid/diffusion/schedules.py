"""Noise schedules: the 1-D sequence of noise levels a sampler walks through.

Every function returns a float32 tensor of length ``n + 1``, descending, whose last entry is 0.0:
``n`` sampler steps go from ``sigmas[i]`` to ``sigmas[i + 1]``. For EDM-style (variance exploding)
models the values are noise standard deviations sigma; for rectified-flow models they are times t.
"""

import numpy as np
import torch

from lightvid.errors import LightvidError

# Stable Video Diffusion's noise range (diffusers scheduler config of stable-video-diffusion-img2vid).
SVD_SIGMA_MIN = 0.002
SVD_SIGMA_MAX = 700.0


def _check_steps(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise LightvidError(f"number of sampling steps must be a positive integer, got {n!r}")


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5), ``n`` steps from ``sigma_max`` down to ``sigma_min``, then 0.

    sigma_i = (sigma_max^(1/rho) + i/(n-1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i < n.
    Computed in float64 and rounded once to float32 (as diffusers does), so the values match
    diffusers' ``use_karras_sigmas=True`` schedulers bit for bit.
    """
    _check_steps(n)
    if not 0.0 < sigma_min < sigma_max:
        raise LightvidError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )
    ramp = np.linspace(0.0, 1.0, n)  # (n,) float64; n == 1 gives [0.0] -> a single step from sigma_max
    max_inv_rho = sigma_max ** (1.0 / rho)
    min_inv_rho = sigma_min ** (1.0 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)  # (n + 1,)
    return torch.from_numpy(sigmas)


def student_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """The ``n`` noise levels of an n-step distilled student, then 0: the first n of Karras' n + 1 levels, so the
    last step starts from a real noise level rather than sigma_min (where D is nearly the identity and a step
    would be wasted). n = 1: [sigma_max, 0]."""
    return torch.cat([karras_sigmas(n + 1, sigma_min, sigma_max)[:n], torch.zeros(1)])


def svd_sigmas(n: int) -> torch.Tensor:
    """Stable Video Diffusion's schedule: ``karras_sigmas(n, 0.002, 700.0)``.

    Identical to ``EulerDiscreteScheduler.sigmas`` after ``set_timesteps(n)`` with SVD's scheduler
    config (``use_karras_sigmas=True``, continuous timesteps, v-prediction). SVD's network is
    conditioned on ``0.25 * ln(sigma)`` (see ``Denoiser(noise_conditioning="log4")``).
    """
    return karras_sigmas(n, SVD_SIGMA_MIN, SVD_SIGMA_MAX)


def flow_sigmas(n: int, shift: float = 1.0) -> torch.Tensor:
    """Rectified-flow times, ``n`` steps from t = 1 (pure noise) to t = 0 (data).

    Uniform times t_i = 1 - i/n are warped by SD3's resolution shift (Esser et al. 2024, eq. 23)
    t' = shift * t / (1 + (shift - 1) * t), which keeps the endpoints 1 and 0 and spends more steps
    at high noise when ``shift > 1``. Use with ``Denoiser(prediction="flow")``.
    """
    _check_steps(n)
    if not shift > 0.0:
        raise LightvidError(f"flow schedule shift must be > 0, got {shift}")
    t = np.linspace(1.0, 0.0, n + 1)  # (n + 1,) float64
    t = shift * t / (1.0 + (shift - 1.0) * t)
    return torch.from_numpy(t.astype(np.float32))
