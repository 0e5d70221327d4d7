"""Fréchet distance between two feature sets (the statistic behind FID and FVD).

Each set of N feature vectors (N, D) is summarised by a Gaussian: mean μ and covariance Σ (unbiased,
N-1). The Fréchet (2-Wasserstein) distance between the two Gaussians is (Dowson & Landau 1982)

    d² = ||μ_a - μ_b||² + tr(Σ_a) + tr(Σ_b) - 2 tr((Σ_a Σ_b)^½)

and is what FID (Heusel et al. 2017) and FVD (Unterthiner et al. 2018) report (the squared distance,
without the square root). Which network produced the features decides the metric's name; see
`lightvid.eval.video_encoder` (FD-lightvid) and `lightvid.eval.i3d` (FVD with a real I3D).

The matrix square root is scipy's `sqrtm`, as in the reference FID code; a product of two covariances
estimated from few samples is often singular, which gives non-finite values or imaginary parts well
above rounding, and then the computation is retried with ε·I added to both covariances. If that also
fails, tr((Σ_a Σ_b)^½) is taken from the symmetric form tr((Σ_a^½ Σ_b Σ_a^½)^½), which only needs
symmetric eigendecompositions and is always real. Use N well above D (thousands of clips for D = 256
or 400): with N ≤ D the covariances are rank-deficient and the distance is biased upwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch

from lightvid.errors import LightvidError

IMAGINARY_TOLERANCE = 1e-3  # largest |imag| of sqrtm's result, relative to its largest |real|, taken as rounding


def _as_features(feats, name: str) -> np.ndarray:
    """(N, D) float64 array from a tensor or an array; LightvidError for a wrong shape or non-finite values."""
    array = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, float)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise LightvidError(f"{name}: expected features of shape (N, D) with N >= 2, got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise LightvidError(f"{name}: features contain NaN or infinite values")
    return array


def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), float64, of (N, D) features."""
    array = _as_features(feats, "features")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding eigenvalues clipped to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray, eps: float = 1e-6) -> float:
    """tr((Σ_a Σ_b)^½) for two covariance matrices, robust to singular ones (see the module docstring)."""
    identity = np.eye(cov_a.shape[0])
    for offset in (0.0, eps):
        root = scipy.linalg.sqrtm((cov_a + offset * identity) @ (cov_b + offset * identity))
        if not np.isfinite(root).all():
            continue
        if np.iscomplexobj(root):
            if np.abs(root.imag).max() > IMAGINARY_TOLERANCE * max(np.abs(root.real).max(), 1e-12):
                continue
            root = root.real
        return float(np.trace(root))
    root_a = _symmetric_sqrt(cov_a)
    values = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # similar to Σ_a Σ_b: same eigenvalues
    return float(np.sqrt(values.clip(min=0)).sum())


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between N(μ_a, Σ_a) and N(μ_b, Σ_b); clamped at 0 against rounding."""
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, float)), np.atleast_1d(np.asarray(mu_b, float))
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, float)), np.atleast_2d(np.asarray(cov_b, float))
    d = mu_a.shape[0]
    if mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise LightvidError(f"feature statistics disagree in size: means {mu_a.shape}, {mu_b.shape}; "
                            f"covariances {cov_a.shape}, {cov_b.shape}")
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    cov_term = float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_sqrt_product(cov_a, cov_b, eps)
    return max(mean_term + cov_term, 0.0)


def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between Gaussians fitted to features (N_a, D) and (N_b, D) (tensors or arrays).

        frechet_distance(real_features, generated_features)  # 0 for identical statistics
    """
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise LightvidError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b), eps=eps)


def fd_lightvid(encoder, clips_a, clips_b, batch_size: int = 32) -> float:
    """FD-lightvid (NOT FVD): Fréchet distance between `encoder.features` of two clip sets.

    encoder: a `lightvid.eval.video_encoder.VideoEncoder` (anything with `features(clips, batch_size)`).
    clips_a, clips_b: (N, F, C, H, W) tensors in [-1, 1], or sequences of (F, C, H, W) clips; use many
    more clips than the 256 feature dimensions for a stable number.
    """
    feats_a = encoder.features(_stack(clips_a), batch_size)
    feats_b = encoder.features(_stack(clips_b), batch_size)
    return frechet_distance(feats_a, feats_b)


def _stack(clips: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return clips if isinstance(clips, torch.Tensor) else torch.stack(list(clips))
