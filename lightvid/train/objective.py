"""The training loss: EDM denoising on the generated frames only.

Why EDM (Karras et al. 2022) rather than plain v-prediction: its preconditioning gives the network unit-variance
inputs and targets at every noise level, and λ(σ) = (σ² + σ_d²)/(σ·σ_d)² makes every σ contribute equally —
the same framework SVD uses, so one Denoiser and one set of samplers serve SVD checkpoints and our own models.
Given frames enter clean through the conditioning channels; the loss ignores them (MarDini: loss on the
masked frames only), so the network spends its capacity on what it must generate.
"""
import torch

from lightvid.diffusion import Denoiser


def given_mask(given_frames: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(b, f) bool -> (b, f, 1, h, w) float mask broadcast to `like`'s frames and pixels."""
    b, f, _, h, w = like.shape
    return given_frames[:, :, None, None, None].to(like).expand(b, f, 1, h, w)


def denoising_loss(denoiser: Denoiser, clean: torch.Tensor, given_frames: torch.Tensor, generator: torch.Generator,
                   p_mean: float, p_std: float) -> torch.Tensor:
    """EDM loss. clean: (b, f, c, h, w) in [-1, 1]; given_frames: (b, f) bool. Returns a scalar."""
    b = clean.shape[0]
    sigma = torch.exp(p_mean + p_std * torch.randn(b, generator=generator)).to(clean)
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    mask = given_mask(given_frames, clean)
    denoised = denoiser(clean + sigma.view(-1, 1, 1, 1, 1) * noise, sigma, given=clean * mask, mask=mask)
    generated = 1.0 - mask  # (b, f, 1, h, w)
    squared = ((denoised - clean) ** 2 * generated).sum(dim=(1, 2, 3, 4))
    per_clip = squared / (generated.sum(dim=(1, 2, 3, 4)) * clean.shape[2]).clamp(min=1.0)
    return (denoiser.loss_weight(sigma) * per_clip).mean()
