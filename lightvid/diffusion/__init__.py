"""Diffusion core: noise schedules, the Denoiser (preconditioning), samplers and guidance.

Usage, with ``net(x_in, c_noise, **cond)`` an SVD-style network and ``cond`` its conditioning kwargs::

    sigmas = svd_sigmas(25)  # (26,), last entry 0
    x = sigmas[0] * torch.randn(1, 14, 4, 72, 128)  # (b, f, c, h, w) noise at sigma_max
    guided = cfg_model(svd_denoiser(net), cond, uncond, svd_guidance_ramp(14, 1.0, 3.0))
    latents = get_sampler("euler")(guided, x, sigmas)  # (b, f, c, h, w) at sigma = 0
"""

from lightvid.diffusion.denoiser import Denoiser, svd_denoiser
from lightvid.diffusion.guidance import cfg_model, svd_guidance_ramp
from lightvid.diffusion.samplers import (
    SAMPLERS,
    ancestral_step,
    get_sampler,
    sample_dpmpp_2m,
    sample_euler,
    sample_euler_ancestral,
    sample_heun,
    sample_renoise,
)
from lightvid.diffusion.schedules import flow_sigmas, karras_sigmas, student_sigmas, svd_sigmas

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "ancestral_step",
    "cfg_model",
    "flow_sigmas",
    "get_sampler",
    "karras_sigmas",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_renoise",
    "student_sigmas",
    "svd_denoiser",
    "svd_guidance_ramp",
    "svd_sigmas",
]
