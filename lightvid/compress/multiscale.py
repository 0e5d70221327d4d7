"""Temporal (and spatial) multiscaling: run the coarse levels of a trained UNet on fewer frames (or pixels).

`add_multiscale` inserts, where level i hands over to level i+1, a temporal 2× downsampler (initialised to keep
every 2nd frame) and its mirror upsampler (initialised to repeat every frame), and/or an extra 2× spatial
subsampler (initialised to keep every 2nd pixel; the up path's nearest resize follows the skip sizes).

What "unchanged at insertion" means: the inserted layers start as exact subsampling / repetition, and every
existing weight is kept. So a network without temporal layers (an image model run per frame) gives a clip that is
constant in time exactly the same output as before (tested). Otherwise the function does change, and finetuning
(MobileVD: a full finetune) absorbs it: the coarse levels see every 2nd frame, and temporal layers below the
inserted level see half the frames (other zero-padded ends, other frame-position embeddings).
"""
from dataclasses import replace

from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.rebuild import rebuild


def add_multiscale(unet: SpaceTimeUNet, temporal_levels=(), spatial_levels=()) -> SpaceTimeUNet:
    """Insert temporal 2× resampling after each level in `temporal_levels` and spatial 2× subsampling after each
    level in `spatial_levels` (level indices from 0, the finest; the coarsest level cannot hand over)."""
    cfg = unet.config
    handovers = range(cfg.num_levels - 1)
    bad = [i for i in (*temporal_levels, *spatial_levels) if i not in handovers]
    if bad:
        raise LightvidError(f"multiscaling levels {bad} out of range: this UNet hands over after levels "
                            f"{list(handovers)}")
    spatial_before = cfg.spatial_downsample or (False,) * cfg.num_levels
    temporal = tuple(flag or i in temporal_levels for i, flag in enumerate(cfg.temporal_downsample))
    spatial = tuple(flag or i in spatial_levels for i, flag in enumerate(spatial_before))
    new = replace(cfg, temporal_downsample=temporal, spatial_downsample=spatial if any(spatial) else ())
    return rebuild(unet, new, unet.state_dict(), fresh=("temporal_downsample.", "temporal_upsample.",
                                                         "spatial_subsample."))
