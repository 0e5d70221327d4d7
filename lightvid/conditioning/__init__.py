"""Conditioning: what a native network reads besides its noisy frames (hints from the given frames, the optical flow
behind them) and how its output is read back. `Conditioning` names the choices and derives the channel counts."""
from .flows import FLOWS, FlowWarp, farneback_warps, global_motion_flow
from .hints import flow_hint, nearest_given
from .layout import HINTS, OFFSET_FRAMES, PREDICTIONS, WARP_WEIGHTS, Conditioning, Hints

__all__ = ["FLOWS", "HINTS", "OFFSET_FRAMES", "PREDICTIONS", "WARP_WEIGHTS", "Conditioning", "FlowWarp", "Hints",
           "farneback_warps", "flow_hint", "global_motion_flow", "nearest_given"]
