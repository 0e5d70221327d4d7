"""Tiny random native models for tests (seconds to sample on CPU)."""
from dataclasses import replace

import torch

from lightvid.conditioning import Conditioning
from lightvid.models import SpaceTimeUNet, UNetConfig
from lightvid.pipelines.native import NativePipeline, NativeSettings

# the conditionings tests use, by a short name
LAYOUTS = {"none": Conditioning(), "nearest": Conditioning("nearest"), "flow": Conditioning("flow"),
           "flow_warps": Conditioning("flow", warp_weights="visible", warp_inputs=True)}


def tiny_native(data_channels: int, patch: int = 1, size: int = 16, frames: int = 5,
                conditioning: str = "none", prediction: str = "edm") -> NativePipeline:
    """conditioning: a name of LAYOUTS."""
    torch.manual_seed(0)
    layout = LAYOUTS[conditioning]
    in_channels, out_channels = layout.channels(data_channels, patch)
    config = UNetConfig(in_channels=in_channels, out_channels=out_channels, channels=(32, 32),
                        layers_per_level=(1, 1), heads=(1, 1), transformer_depth=(1, 1), attention=(False, True),
                        temporal_attention=(False, True), temporal_conv=(True, True), temporal_downsample=(True, False),
                        cross_attention_dim=None, num_added_time_ids=0, down_eps=(1e-6, 1e-6))
    settings = NativeSettings(data_channels=data_channels, patch=patch, num_frames=frames, height=size, width=size,
                              steps=2, conditioning=layout, prediction=prediction)
    return NativePipeline(SpaceTimeUNet(config).eval(), settings)


def save_tiny_native(folder, data_channels: int = 3, patch: int = 2, size: int = 16, frames: int = 5,
                     dataset: str = "camera_motion"):
    tiny_native(data_channels, patch, size, frames).save_pretrained(folder, extra={"trained_steps": 0,
                                                                                   "dataset": dataset})
    return folder


def save_model_with_student(folder):
    """A tiny flow-hinted model (the conditioning `photo` has) with a 1-step student in folder/fast."""
    pipe = tiny_native(3, patch=2, size=16, frames=5, conditioning="flow_warps", prediction="hint_residual")
    pipe.save_pretrained(folder, extra={"trained_steps": 0, "dataset": "camera_motion", "student": "fast"})
    student = NativePipeline(pipe.unet, replace(pipe.settings, steps=1, sampler="renoise"))
    student.save_pretrained(folder / "fast", extra={"trained_steps": 0, "dataset": "camera_motion",
                                                    "distilled_from": str(folder), "student_steps": 1})
    return folder


def given_mask(given_frames: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(b, f) bool whole-frame masks -> (b, f, 1, h, w) float, broadcast to `like`'s frames and pixels (what the
    training loss takes)."""
    b, f, _, h, w = like.shape
    return given_frames[:, :, None, None, None].to(like).expand(b, f, 1, h, w)
