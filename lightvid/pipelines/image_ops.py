"""Small image operations the SVD conditioning path needs (CLIP's anti-aliased 224×224 resize)."""
import torch
from torch.nn import functional as F


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-x.pow(2) / (2 * sigma ** 2))
    return kernel / kernel.sum()


def _blur_axis(x: torch.Tensor, size: int, sigma: float, dim: int) -> torch.Tensor:
    """Separable Gaussian blur along H (dim=-2) or W (dim=-1) of (n, c, h, w), reflect padding."""
    kernel = _gaussian_kernel(size, sigma).to(x)
    channels = x.shape[1]
    pad = (size - 1) // 2, size - 1 - (size - 1) // 2
    if dim == -1:
        x = F.pad(x, (*pad, 0, 0), mode="reflect")
        weight = kernel.view(1, 1, 1, size)
    else:
        x = F.pad(x, (0, 0, *pad), mode="reflect")
        weight = kernel.view(1, 1, size, 1)
    return F.conv2d(x, weight.expand(channels, 1, -1, -1), groups=channels)


def antialiased_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gaussian pre-blur (σ = (factor−1)/2, kernel ≈ 4σ, odd) then bicubic resize with aligned corners.

    The resize SVD's image encoder was trained behind (scikit-image's anti-aliasing rule); x: (n, c, h, w).
    """
    h, w = x.shape[-2:]
    sigmas = [max((h / size[0] - 1) / 2, 0.001), max((w / size[1] - 1) / 2, 0.001)]
    sizes = [int(max(4 * s, 3)) for s in sigmas]
    sizes = [k + 1 if k % 2 == 0 else k for k in sizes]
    x = _blur_axis(x, sizes[1], sigmas[1], dim=-1)
    x = _blur_axis(x, sizes[0], sigmas[0], dim=-2)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)
