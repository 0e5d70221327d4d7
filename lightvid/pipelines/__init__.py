"""Pipelines: a FrameSpec in, frames out."""
from .decode import decode_in_chunks
from .slowmo import slow_motion, slowmo_plan
from .svd import SVDPipeline, SVDSettings

__all__ = ["SVDPipeline", "SVDSettings", "decode_in_chunks", "slow_motion", "slowmo_plan"]
