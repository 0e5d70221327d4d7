"""The training loss: EDM denoising on the generated frames only.

EDM (Karras et al. 2022) preconditioning gives the network unit-variance inputs and targets at every noise level,
and λ(σ) = (σ² + σ_d²)/(σ·σ_d)² makes every σ contribute equally: the framework SVD uses, so one Denoiser and one
set of samplers serve SVD checkpoints and lightvid's own models. Given frames (or pixels) enter clean through the
conditioning channels and the loss ignores them (MarDini: loss on the masked frames only).

What the network outputs (NativeSettings.prediction, lightvid.conditioning.PREDICTIONS):
- "edm": EDM's F. At low σ its target tends to minus the noise, every pixel's own random value, which the network
  must carry from input to output: fine when a token holds few values, hard with wide pixel patches.
- "x0": the clean clip, which lies near a low-dimensional set even when a token is wide (Li & He 2025, "Back to
  Basics: Let Denoising Generative Models Denoise"). λ(σ) then grows as 1/σ² at low noise, where the estimate's
  error is mostly rounding, so it is capped at SNR = MIN_SNR_GAMMA (Min-SNR weighting, Hang et al. 2023):
  λ·σ_d² = 1 + SNR ≤ 1 + γ.
- "hint_residual": x0 minus the hint (lightvid.conditioning): colours and detail of the given frames pass through
  exactly instead of through the network. Weighted as "x0".

Frame weighting (DiffusionConfig.frame_weight), for "hint_residual" networks:
- "uniform": every generated pixel counts the same, so a frame the hint already gets nearly right adds almost
  nothing to the loss, and the network may leave a noise floor on it.
- "hint_relative": each generated frame's squared error is divided by the hint's own on that frame (plus
  HINT_MSE_FLOOR): the loss is the error relative to the hint, a PSNR gain over it (a dB is a ratio of MSEs), so
  easy frames count as much as hard ones. The hint's error is a constant of the batch (no gradient).
"""
import torch

from lightvid.diffusion import Denoiser

MIN_SNR_GAMMA = 5.0
FRAME_WEIGHTS = ("uniform", "hint_relative")
# Below this hint MSE (pixels in [-1, 1]; 46 dB on [0, 1]) a frame gets no more weight: a static frame the hint
# reproduces exactly would otherwise get an infinite one.
HINT_MSE_FLOOR = 1e-4



def denoising_loss(denoiser: Denoiser, clean: torch.Tensor, mask: torch.Tensor, generator: torch.Generator,
                   p_mean: float, p_std: float, frame_weight: str = "uniform") -> torch.Tensor:
    """EDM loss. clean: (b, f, c, h, w) in [-1, 1]; mask: (b, f, 1, h, w) in {0, 1}, 1 = given pixel (whole frames,
    or regions for the spatial tasks). Each frame's error is the mean over its generated pixels; a clip's, the mean
    over its frames with any. Returns a scalar."""
    b = clean.shape[0]
    sigma = torch.exp(p_mean + p_std * torch.randn(b, generator=generator)).to(clean)
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    mask = mask.to(clean)
    given = clean * mask
    denoised = denoiser(clean + sigma.view(-1, 1, 1, 1, 1) * noise, sigma, given=given, mask=mask)
    generated = (1 - mask).expand_as(clean)  # (b, f, c, h, w)
    pixels = generated.sum(dim=(2, 3, 4))  # (b, f): generated values per frame
    has_pixels = (pixels > 0).to(clean)  # (b, f)

    def frame_mse(estimate: torch.Tensor) -> torch.Tensor:  # (b, f): mean over each frame's generated pixels
        return (((estimate - clean) ** 2) * generated).sum(dim=(2, 3, 4)) / pixels.clamp(min=1.0)

    per_frame = frame_mse(denoised)
    if frame_weight == "hint_relative":
        net = getattr(denoiser.net, "module", denoiser.net)  # unwrapped from DistributedDataParallel
        with torch.no_grad():  # the same `given` and `mask` objects: the hint the forward pass used (cached)
            hint_mse = frame_mse(net.start(given, mask))
        per_frame = per_frame / (hint_mse + HINT_MSE_FLOOR)
    per_clip = (per_frame * has_pixels).sum(1) / has_pixels.sum(1).clamp(min=1.0)
    weight = denoiser.loss_weight(sigma)
    if denoiser.prediction == "x0":
        weight = weight.clamp(max=(1 + MIN_SNR_GAMMA) / denoiser.sigma_data ** 2)
    return (weight * per_clip).mean()
