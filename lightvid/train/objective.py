"""The training loss: EDM denoising on the generated frames only.

Why EDM (Karras et al. 2022) rather than plain v-prediction: its preconditioning gives the network unit-variance
inputs and targets at every noise level, and λ(σ) = (σ² + σ_d²)/(σ·σ_d)² makes every σ contribute equally —
the same framework SVD uses, so one Denoiser and one set of samplers serve SVD checkpoints and our own models.
Given frames enter clean through the conditioning channels; the loss ignores them (MarDini: loss on the
masked frames only), so the network spends its capacity on what it must generate.

Two outputs (DiffusionConfig.prediction):
- "edm": EDM's F. At low σ its target tends to minus the noise: every pixel's own random value, which the
  network must carry from input to output. Fine when a token holds few values (Moving MNIST: 16 values per
  token, 64 channels), not when it holds many: with 4×4 RGB patches (48 values per token beside 48 hint
  values in 96 channels) the photo model never learned to denoise at σ <= 0.5 (held-out MSE flat from step
  200 to 400, 0.08 at σ = 0.5) and its samples stayed noisy.
- "x0": the network outputs the clean clip, which lies near a low-dimensional set (smooth, close to the given
  frames) even when a token is wide: Li & He 2025 ("Back to Basics: Let Denoising Generative Models Denoise")
  show noise prediction collapsing and x-prediction working with large pixel patches. λ(σ) then grows as 1/σ²
  at low noise, where the estimate's error is mostly rounding, so it is capped at SNR = MIN_SNR_GAMMA
  (Min-SNR weighting, Hang et al. 2023): λ·σ_d² = 1 + SNR ≤ 1 + γ.
- "hint_residual": x0-prediction whose network adds to the nearest given frame (models/native.py): with
  plain x0 every colour must pass through the network, and a photo model trained on 12 photos turned a
  held-out blue sky teal; a skip from the given frame keeps colours and detail exact. Weighted as "x0".
"""
import torch

from lightvid.diffusion import Denoiser

MIN_SNR_GAMMA = 5.0


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
    weight = denoiser.loss_weight(sigma)
    if denoiser.prediction == "x0":
        weight = weight.clamp(max=(1 + MIN_SNR_GAMMA) / denoiser.sigma_data ** 2)
    return (weight * per_clip).mean()
