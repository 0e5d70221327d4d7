"""Decoding latents to frames a few at a time, so peak memory is bounded by the chunk, not the clip."""
from collections.abc import Callable

import torch


def decode_in_chunks(decode: Callable[[torch.Tensor], torch.Tensor], latents: torch.Tensor,
                     chunk: int | None) -> torch.Tensor:
    """Apply `decode` to consecutive slices of `chunk` frames of (f, c, h, w) latents and concatenate.

    For a per-frame decoder the result is independent of `chunk`. SVD's temporal decoder mixes frames
    inside each call (temporal convolutions and clip-wide GroupNorm), so there the chunk size is part of
    the result, exactly as in diffusers' `decode_chunk_size`; None decodes the whole clip in one call.
    """
    if chunk is None or chunk >= latents.shape[0]:
        return decode(latents)
    if chunk < 1:
        raise ValueError(f"decode chunk size must be >= 1, got {chunk}")
    return torch.cat([decode(latents[i:i + chunk]) for i in range(0, latents.shape[0], chunk)])
