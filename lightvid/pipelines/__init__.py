"""Pipelines: a FrameSpec in, frames out."""
from .decode import decode_in_chunks
from .svd import SVDPipeline, SVDSettings

__all__ = ["SVDPipeline", "SVDSettings", "decode_in_chunks"]
