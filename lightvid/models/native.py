"""Native conditioning: one network for every task, told through its input channels which frames are given.

Input of a native SpaceTimeUNet, per frame: [noisy frame (c) ‖ given frame, zeros where not given (c) ‖ mask (1)],
so `in_channels = 2c + 1`. The mask is 1 where pixels are given (whole frames, or parts of frames for
inpainting). Tasks differ only in the mask: image-to-video, interpolation, extension, loops (MarDini's
any-frames masking, Lumiere's (noisy, masked video, mask) conditioning).

Pixel-space models may fold p×p pixel patches into channels first (space-to-depth, exact and invertible): the
UNet then runs at 1/p the resolution with p² times the channels — a free "autoencoder" that cuts the cost of the
full-resolution levels by p².
"""
import torch
from einops import rearrange
from torch import nn

from .unet import SpaceTimeUNet


class NativeNet(nn.Module):
    """Adapts a native SpaceTimeUNet to the Denoiser signature `net(x_in, c_noise, given, mask)`."""

    def __init__(self, unet: SpaceTimeUNet, patch: int = 1):
        super().__init__()
        self.unet, self.patch = unet, patch

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, given: torch.Tensor, mask: torch.Tensor):
        # x_in, given: (b, f, c, h, w); mask: (b, f, 1, h, w) in {0, 1}. Given pixels come in clean through
        # `given`; their noisy copy is zeroed so training and sampling see the same input whatever the sampler
        # state holds there (it is never trained and is replaced by the given pixels at the end).
        out = self.unet(self.unet_input(x_in, given, mask), c_noise).float()
        p = self.patch
        return rearrange(out, "b f (c p q) h w -> b f c (h p) (w q)", p=p, q=p)

    def unet_input(self, x_in: torch.Tensor, given: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[noisy (given pixels zeroed) ‖ given ‖ mask], p×p patches folded into channels: (b, f, c_in, h/p, w/p)."""
        sample = torch.cat([x_in * (1 - mask), given, mask], dim=2)
        p = self.patch
        sample = rearrange(sample, "b f c (h p) (w q) -> b f (c p q) h w", p=p, q=p)
        return sample.to(next(self.unet.parameters()).dtype)


def native_channels(data_channels: int, patch: int = 1) -> tuple[int, int]:
    """(in_channels, out_channels) of a native UNet for `data_channels`-channel frames and p×p patches."""
    return (2 * data_channels + 1) * patch ** 2, data_channels * patch ** 2
