"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a denoiser.

    D_cfg(x; sigma) = D_uncond + scale * (D_cond - D_uncond)

applied to the denoised estimate. For any Denoiser this equals guiding the raw network output (as
diffusers' SVD pipeline does), because D = c_skip * x + c_out * net(...) is affine in the output with
the same x in both halves.
"""

from collections.abc import Callable

import torch

Model = Callable[..., torch.Tensor]


def svd_guidance_ramp(num_frames: int, min_scale: float, max_scale: float) -> torch.Tensor:
    """SVD's per-frame guidance: linspace(min_scale, max_scale, num_frames), shape (f,), float32.

    The first frame (the conditioning image) gets the weakest guidance, the last one the strongest.
    """
    return torch.linspace(min_scale, max_scale, num_frames, dtype=torch.float32)


def _is_one(scale: float | torch.Tensor) -> bool:
    if isinstance(scale, torch.Tensor):
        return bool(torch.all(scale == 1.0))
    return scale == 1.0


def _batch_pair(uncond: dict, cond: dict) -> dict:
    """Concatenate matching conditioning kwargs as [uncond, cond] along dim 0 (uncond first, as diffusers).

    Tensors are concatenated, and so are the fields of named tuples of tensors (precomputed hints); anything else
    (None, flags) must be equal in both and passes through.
    """
    if uncond.keys() != cond.keys():
        raise ValueError(f"cond and uncond need the same keys, got {sorted(cond)} and {sorted(uncond)}")
    return {key: _pair(key, uncond[key], value) for key, value in cond.items()}


def _pair(key: str, other, value):
    if isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor):
        return torch.cat([other, value])  # (2b, ...)
    if isinstance(value, tuple) and hasattr(value, "_fields") and type(other) is type(value):
        return type(value)(*(_pair(f"{key}.{name}", o, v) for name, o, v in zip(value._fields, other, value)))
    if value is other or value == other:
        return value
    raise ValueError(f"conditioning {key!r} differs between cond and uncond but is not a tensor")


def _frame_scale(scale: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A (f,) per-frame scale -> (1, f, 1, ..., 1) so it broadcasts over a (b, f, c, h, w) video."""
    if not isinstance(scale, torch.Tensor) or scale.ndim == 0:
        return scale
    if scale.ndim != 1 or like.ndim < 2 or scale.shape[0] != like.shape[1]:
        raise ValueError(
            f"a tensor guidance scale must be 0-d or per frame (f,) = ({like.shape[1]},), "
            f"got {tuple(scale.shape)}"
        )
    return scale.to(like).view(1, -1, *(1,) * (like.ndim - 2))


def cfg_model(model: Model, cond: dict, uncond: dict, scale: float | torch.Tensor) -> Model:
    """Wrap ``model(x, sigma, **kwargs)`` into a guided ``guided(x, sigma)`` for the samplers.

    Args:
        model: a denoiser returning x0 estimates, e.g. ``Denoiser``.
        cond, uncond: conditioning kwargs for the model, dicts of tensors with batch dim 0 (the batch of
            x); tensors are concatenated [uncond, cond] so both run in ONE model call on a 2b batch.
            None values (and other non-tensors) must match and pass through unchanged.
        scale: a float, a 0-d tensor, or a per-frame (f,) tensor for videos x of shape (b, f, c, h, w)
            (broadcast as (1, f, 1, 1, 1), e.g. ``svd_guidance_ramp``). A scale that is 1 everywhere
            skips the uncond pass entirely: ``guided(x, sigma) == model(x, sigma, **cond)``.
    """
    if _is_one(scale):

        def conditional_only(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
            return model(x, sigma, **cond)

        return conditional_only

    paired = _batch_pair(uncond, cond)

    def guided(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        x_in = torch.cat([x, x])  # (2b, ...)
        if isinstance(sigma, torch.Tensor) and sigma.ndim > 0:
            sigma = torch.cat([sigma, sigma])  # (2b,)
        denoised_uncond, denoised_cond = model(x_in, sigma, **paired).chunk(2)  # each (b, ...)
        s = _frame_scale(scale, denoised_cond)
        return denoised_uncond + s * (denoised_cond - denoised_uncond)

    return guided
