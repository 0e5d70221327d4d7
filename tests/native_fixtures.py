"""Tiny random native models for tests (seconds to sample on CPU)."""
import torch

from lightvid.models import SpaceTimeUNet, UNetConfig
from lightvid.models.native import native_channels
from lightvid.pipelines.native import NativePipeline, NativeSettings


def tiny_native(data_channels: int, patch: int = 1, size: int = 16, frames: int = 5,
                conditioning: str = "native", prediction: str = "edm") -> NativePipeline:
    torch.manual_seed(0)
    in_channels, out_channels = native_channels(data_channels, patch, conditioning)
    config = UNetConfig(in_channels=in_channels, out_channels=out_channels, channels=(32, 32),
                        layers_per_level=(1, 1), heads=(1, 1), transformer_depth=(1, 1), attention=(False, True),
                        temporal_attention=(False, True), temporal_conv=(True, True), temporal_downsample=(True, False),
                        cross_attention_dim=None, num_added_time_ids=0, down_eps=(1e-6, 1e-6),
                        conditioning=conditioning)
    settings = NativeSettings(data_channels=data_channels, patch=patch, num_frames=frames, height=size, width=size,
                              steps=2, prediction=prediction)
    return NativePipeline(SpaceTimeUNet(config).eval(), settings)


def save_tiny_native(folder, data_channels: int = 3, patch: int = 2, size: int = 16, frames: int = 5,
                     dataset: str = "camera_motion"):
    tiny_native(data_channels, patch, size, frames).save_pretrained(folder, extra={"trained_steps": 0,
                                                                                   "dataset": dataset})
    return folder
