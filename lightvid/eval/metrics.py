"""Per-frame quality metrics for clips: PSNR, SSIM, Moving MNIST frame MSE, and the seam of a loop.

Clips are float tensors (F, C, H, W) in [-1, 1], any C (1 or 3 in practice). Every metric first maps pixels to
[0, 1] with (x + 1) / 2, so "data range 1" below means that scale. Metrics are computed in float64 and returned
as float64 tensors of shape (F,) (one value per frame), so averaging over frames or clips is up to the caller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lightvid.errors import LightvidError

MSE_FLOOR = 1e-10  # PSNR clamps the MSE here: identical frames score 100 dB instead of +inf

# SSIM constants of Wang et al. 2004 ("Image quality assessment: from error visibility to structural similarity").
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_clip(x, name: str) -> torch.Tensor:
    """A clip must be a float tensor (F, C, H, W) with at least one frame; returns it in [0, 1], float64."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise LightvidError(f"{name} must be a float tensor (F, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] == 0:
        raise LightvidError(f"{name} must have shape (F, C, H, W) with F >= 1, got {tuple(x.shape)}")
    return (x.detach().double() + 1) / 2


def _check_pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _check_clip(pred, "pred"), _check_clip(target, "target")
    if p.shape != t.shape:
        raise LightvidError(f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    return p, t.to(p.device)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per frame, in dB, with peak 1 on the [0, 1] scale.

    pred, target: (F, C, H, W) in [-1, 1] -> (F,) = -10·log10(MSE), the MSE taken over C, H, W of each frame.
    The MSE is clamped at MSE_FLOOR (1e-10), so identical frames give 100 dB rather than +inf and means stay finite.
    """
    p, t = _check_pair(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(1)  # (F,)
    return -10 * torch.log10(mse.clamp_min(MSE_FLOOR))


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (size,), centred, as scipy.ndimage.gaussian_filter uses them."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, 'valid' region only: (N, K, H, W) -> (N, K, H - s + 1, W - s + 1)."""
    k = x.shape[1]
    row = window.view(1, 1, 1, -1).expand(k, 1, 1, -1)
    col = window.view(1, 1, -1, 1).expand(k, 1, -1, 1)
    return F.conv2d(F.conv2d(x, row, groups=k), col, groups=k)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per frame (Wang et al. 2004), averaged over channels.

    pred, target: (F, C, H, W) in [-1, 1], H and W >= 11 -> (F,).
    On the [0, 1] scale (data range 1): local means, variances and covariance from an 11-tap Gaussian window
    (sigma 1.5) with population (not sample) statistics, C1 = (0.01)², C2 = (0.03)²; the SSIM map is kept where
    the window fits inside the frame ('valid' region) and averaged. This matches
    skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1), which blurs the whole frame and then crops the 5-pixel border.
    """
    p, t = _check_pair(pred, target)
    n, c, h, w = p.shape
    if min(h, w) < SSIM_WINDOW:
        raise LightvidError(f"ssim needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, p.dtype, p.device)
    p, t = p.reshape(n * c, 1, h, w), t.reshape(n * c, 1, h, w)
    stats = _blur_valid(torch.cat([p, t, p * p, t * t, p * t], dim=1), window)  # (F·C, 5, h', w')
    mu_p, mu_t, pp, tt, pt = stats.unbind(1)
    var_p, var_t, cov = pp - mu_p**2, tt - mu_t**2, pt - mu_p * mu_t
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(1).mean(1).view(n, c).mean(1)


def mnist_frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Moving MNIST frame MSE: squared error summed over the pixels of a frame, per frame.

    pred, target: (F, C, H, W) in [-1, 1] -> (F,), computed on intensities in [0, 1].
    This is the convention of the ConvLSTM / PredRNN / SimVP papers ("MSE per frame"): the error is summed
    over the 64x64 pixels of a frame, not averaged, then averaged over frames (and sequences) by the caller;
    SimVP reports 23.8 on 64x64 Moving MNIST. It equals 4096 x the mean squared error of a 64x64 frame.
    """
    p, t = _check_pair(pred, target)
    return (p - t).pow(2).flatten(1).sum(1)


def loop_seam(frames: torch.Tensor) -> dict[str, float]:
    """How visible the jump from the last frame back to the first is when a clip plays on repeat.

    frames: (F, C, H, W) in [-1, 1], F >= 3. On the [0, 1] scale, the steps d_i = mean |x_{i+1} - x_i|
    (i = 0 .. F-2) and the seam d = mean |x_0 - x_{F-1}| give
      {"seam": d, "median_step": median(d_i), "max_step": max(d_i), "ratio": d / median(d_i)}.
    The median of an even number of steps is the mean of the middle two.
    A seamless loop has ratio about 1 or below: the seam is no larger than a typical step. When the median step is
    0 (a still clip), ratio is 1.0 if the seam is 0 too and +inf otherwise.
    """
    x = _check_clip(frames, "frames")
    if x.shape[0] < 3:
        raise LightvidError(f"loop_seam needs a clip of at least 3 frames, got {x.shape[0]}")
    steps = (x[1:] - x[:-1]).abs().flatten(1).mean(1)  # (F-1,)
    seam = (x[0] - x[-1]).abs().mean().item()
    median = torch.quantile(steps, 0.5).item()
    if median > 0:
        ratio = seam / median
    else:
        ratio = 1.0 if seam == 0 else math.inf
    return {"seam": seam, "median_step": median, "max_step": steps.max().item(), "ratio": ratio}


def _region_pairs(region: torch.Tensor, frames: int) -> torch.Tensor:
    """region (F or 1, 1, H, W) in {0, 1} -> (F-1, 1, H, W): in the region in both frames t and t + 1."""
    region = region.expand(frames, *region.shape[1:]).float()
    return region[1:] * region[:-1]


def _region_mean(values: torch.Tensor, weights: torch.Tensor) -> float:
    weights = weights.to(values).expand_as(values)
    if not weights.any():
        raise LightvidError("the region is empty: nothing to measure")
    return ((values * weights).sum() / weights.sum()).item()


def region_psnr(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR (dB, [0, 1] scale) over the pixels of `region` (F or 1, 1, H, W), 1 = in, of clips (F, C, H, W) in
    [-1, 1], every frame's region pooled."""
    p, t = _check_pair(pred, target)
    mse = _region_mean((p - t) ** 2, region.expand(p.shape[0], *region.shape[1:]).float())
    return 10 * math.log10(1 / max(mse, MSE_FLOOR))


def region_step(frames: torch.Tensor, region: torch.Tensor) -> float:
    """How much a region moves: the mean |x_{t+1} - x_t| ([0, 1] scale) over the pixels in `region` (F or 1, 1, H, W)
    in both frames, of a clip (F, C, H, W) in [-1, 1] with F >= 2."""
    x = _check_clip(frames, "frames")
    if x.shape[0] < 2:
        raise LightvidError(f"region_step needs at least 2 frames, got {x.shape[0]}")
    return _region_mean((x[1:] - x[:-1]).abs(), _region_pairs(region, x.shape[0]))


def region_flicker(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> float:
    """Temporal flicker inside a region against the truth: the mean |Δpred - Δtarget| ([0, 1] scale) of the
    frame-to-frame changes, over the pixels in `region` in both frames. 0 when pred changes exactly as the truth."""
    p, t = _check_pair(pred, target)
    if p.shape[0] < 2:
        raise LightvidError(f"region_flicker needs at least 2 frames, got {p.shape[0]}")
    change = ((p[1:] - p[:-1]) - (t[1:] - t[:-1])).abs()
    return _region_mean(change, _region_pairs(region, p.shape[0]))
