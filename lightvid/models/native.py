"""`NativeNet`: a SpaceTimeUNet as one network for every task, told through its input channels what is given.

The conditioning (lightvid.conditioning.Conditioning) builds the input channels from the noisy frames, the given
frames and their mask, and reads the output back; this module folds p×p pixel patches into channels around the
UNet (space-to-depth, exact and invertible: the UNet then runs at 1/p the resolution with p² times the channels,
a free "autoencoder" that cuts the cost of the full-resolution levels by p²).
"""
import torch
from einops import rearrange
from torch import nn

from lightvid.conditioning import Conditioning, Hints

from .executorch_network import ExecutorchNetwork
from .mardini import MarDini
from .onnx_network import OnnxNetwork
from .unet import SpaceTimeUNet

# what computes the denoising network: a model family (PyTorch) or a SpaceTimeUNet's export, by runtime
Network = SpaceTimeUNet | MarDini | OnnxNetwork | ExecutorchNetwork


class NativeNet(nn.Module):
    """Adapts a native network (SpaceTimeUNet or MarDini) to the Denoiser signature `net(x_in, c_noise, given, mask)`.

    x_in, given: (b, f, c, h, w); mask: (b, f, 1, h, w) in {0, 1}. prediction: a name of
    lightvid.conditioning.PREDICTIONS, checked against the conditioning. unet: the PyTorch network or its export
    (`--runtime onnx|executorch`): everything around it is the same code."""

    def __init__(self, unet: Network, conditioning: Conditioning, prediction: str, patch: int = 1):
        super().__init__()
        conditioning.check_prediction(prediction)
        self.unet, self.conditioning, self.prediction, self.patch = unet, conditioning, prediction, patch
        self._last_hints = None  # (given, mask, Hints) of the last call, see hints()

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, given: torch.Tensor, mask: torch.Tensor,
                hints: Hints | None = None):
        """hints: the conditioning's hints when the caller computed them (over a longer clip than this window,
        lightvid.pipelines.native); None: from `given` and `mask`."""
        hints = hints if hints is not None else self.hints(given, mask)
        out = self.unet(self.unet_input(x_in, given, mask, hints), c_noise).float()
        out = rearrange(out, "b f (c p q) h w -> b f c (h p) (w q)", p=self.patch, q=self.patch)
        return self.conditioning.read_output(out, hints, self.prediction)

    def unet_input(self, x_in: torch.Tensor, given: torch.Tensor, mask: torch.Tensor,
                   hints: Hints | None = None) -> torch.Tensor:
        """The conditioning's input channels, p×p patches folded in: (b, f, c_in, h/p, w/p) in the UNet's dtype."""
        hints = hints if hints is not None else self.hints(given, mask)
        sample = self.conditioning.network_input(x_in, given, mask, hints)
        sample = rearrange(sample, "b f c (h p) (w q) -> b f (c p q) h w", p=self.patch, q=self.patch)
        return sample.to(self.network_dtype())

    def network_dtype(self) -> torch.dtype:
        """The dtype the network computes in: its parameters' (float32 or bfloat16), or an exported network's."""
        if isinstance(self.unet, nn.Module):
            return next(self.unet.parameters()).dtype
        return self.unet.dtype

    def start(self, given: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Where sampling starts before noise is added, (b, f, c, h, w) (Conditioning.start)."""
        return self.conditioning.start(self.hints(given, mask), self.prediction)

    def hints(self, given: torch.Tensor, mask: torch.Tensor) -> Hints:
        # A sampler calls the net many times with the same `given` and `mask` objects, and a flow hint's warps cost
        # tens of ms per clip: the last result is kept, keyed by tensor identity (a new batch is new tensors).
        cached = self._last_hints
        if cached is not None and cached[0] is given and cached[1] is mask:
            return cached[2]
        hints = self.conditioning.hints(given, mask)
        self._last_hints = (given, mask, hints)
        return hints
