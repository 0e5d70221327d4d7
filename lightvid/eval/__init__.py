"""Measurement: FLOPs and parameters (`flops`), per-frame quality metrics (`metrics`), and non-learned
interpolation baselines (`baselines`) that fill the frames a FrameSpec does not give.

`flops` is not imported here (it pulls in the models); cv2 is imported only when `farneback` runs.
"""

from lightvid.eval.baselines import (
    BASELINES,
    copy_nearest,
    farneback,
    farneback_global,
    farneback_visible,
    linear_blend,
)
from lightvid.eval.metrics import loop_seam, mnist_frame_mse, psnr, ssim

__all__ = ["BASELINES", "copy_nearest", "farneback", "farneback_global", "farneback_visible", "linear_blend",
           "loop_seam", "mnist_frame_mse", "psnr", "ssim"]
