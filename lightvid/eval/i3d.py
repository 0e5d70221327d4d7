"""Inception-I3D (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?") for FVD, from safetensors.

lightvid ships no I3D weights. Users who have the Kinetics-400 RGB I3D of the widely used PyTorch port
(`rgb_imagenet.pt`, parameter names like `Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1a.bn.running_mean`,
`logits.conv3d.bias`) convert it once to safetensors and load that; pickle files are never opened
here, since unpickling runs arbitrary code. The conversion (run it only on a file you trust):

    import safetensors.torch, torch
    state = torch.load("rgb_imagenet.pt", map_location="cpu", weights_only=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, "i3d.safetensors")

FVD convention followed (Unterthiner et al. 2018, the TF-Hub "i3d-kinetics-400" module the FVD
paper used): frames resized to 224×224 (bilinear), values in [-1, 1], RGB; the feature is the
400-d output of the logits layer (pre-softmax), averaged over the remaining time steps. Compute FVD
as `frechet_distance(i3d_features(model, real), i3d_features(model, fake))` on 16-frame clips.
Known small departures from the TF reference: resizing uses half-pixel centres (TF1's legacy
`resize_bilinear` did not), and the port's weights differ from TF-Hub's by conversion rounding, so
numbers agree with published FVDs only approximately.

Padding is TensorFlow's "SAME" (computed from the input size, possibly asymmetric), as the port
does; max pools pad with zeros, which equals TF's -inf padding because their inputs are post-ReLU.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from lightvid.errors import LightvidError
from lightvid.models.checkpoint import PICKLE_SUFFIXES

I3D_SIZE = 224
LOGITS_POOL = (2, 7, 7)  # average pool before the logits (stride 1, no padding): 7×7 is the 224-px map

# Inception modules: name -> (in channels, (b0 1×1, b1a 1×1, b1b 3×3×3, b2a 1×1, b2b 3×3×3, b3b 1×1 after max pool)).
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """TensorFlow "SAME" padding of (b, c, t, h, w): output size ceil(size / stride), extra pixel at the end."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):  # F.pad lists w, h, t
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (SAME padding, no bias) -> BatchNorm3d (eps 1e-3, TF's) -> ReLU; the logits unit has bias only."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), relu=True, batch_norm=True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=not batch_norm)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1×1 | 1×1 -> 3×3×3 | 1×1 -> 3×3×3 | max pool -> 1×1."""

    def __init__(self, cin: int, widths: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, widths[0])
        self.b1a, self.b1b = Unit3D(cin, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


class I3D(nn.Module):
    """Inception-I3D, RGB stream: (b, 3, t, h, w) in [-1, 1] -> (b, num_classes) time-averaged logits.

    Module names follow the PyTorch port, so its state_dict loads as is. Dropout before the logits is
    left out (inference only). The pre-logits average pool is LOGITS_POOL, shrunk to the feature map
    where the input is smaller than 224 px / 16 frames; the logits are averaged over what remains.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        layers = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPoolSame((1, 3, 3), (1, 2, 2)),
            "Mixed_3b": InceptionModule(*MIXED["Mixed_3b"]),
            "Mixed_3c": InceptionModule(*MIXED["Mixed_3c"]),
            "MaxPool3d_4a_3x3": MaxPoolSame((3, 3, 3), (2, 2, 2)),
            **{name: InceptionModule(*MIXED[name]) for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e")},
            "Mixed_4f": InceptionModule(*MIXED["Mixed_4f"]),
            "MaxPool3d_5a_2x2": MaxPoolSame((2, 2, 2), (2, 2, 2)),
            "Mixed_5b": InceptionModule(*MIXED["Mixed_5b"]),
            "Mixed_5c": InceptionModule(*MIXED["Mixed_5c"]),
        }
        for name, layer in layers.items():
            self.add_module(name, layer)  # top-level names, as in the port's state_dict
        self.layer_names = list(layers)
        self.logits = Unit3D(1024, num_classes, relu=False, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.layer_names:
            x = getattr(self, name)(x)
        # (b, 1024, t/8, h/32, w/32)
        kernel = tuple(min(k, s) for k, s in zip(LOGITS_POOL, x.shape[2:]))
        x = self.logits(F.avg_pool3d(x, kernel, stride=1))  # (b, num_classes, t', h', w')
        return x.mean(dim=(2, 3, 4))


def _is_pickle(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES


def load_i3d(path, device: str | torch.device = "cpu") -> I3D:
    """An I3D from a .safetensors state_dict in the PyTorch port's naming; eval mode.

    A pickle file (.pt/.pth/...) is refused without being opened: convert it with the snippet in this
    module's docstring. Missing or unexpected parameters or wrong shapes raise a LightvidError naming
    a few. BatchNorm `num_batches_tracked` counters are optional (old checkpoints lack them).
    """
    path = Path(path)
    if _is_pickle(path):
        raise LightvidError(f"{path}: lightvid loads I3D weights from .safetensors only (unpickling runs code); "
                            "convert it once with torch.load(..., weights_only=True) and safetensors' save_file "
                            "(see lightvid.eval.i3d)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise LightvidError(f"{path}: not a readable safetensors file ({e})") from None
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if "logits.conv3d.bias" not in state:
        raise LightvidError(f"{path}: not an I3D state_dict in the PyTorch port's naming "
                            f"(no 'logits.conv3d.bias'; first keys: {sorted(state)[:3]})")
    model = I3D(num_classes=state["logits.conv3d.bias"].shape[0])
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    problems = [f"{label} ({len(keys)}): {', '.join(keys[:4])}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise LightvidError(f"{path}: weights do not fit Inception-I3D; " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


@torch.no_grad()
def i3d_features(model: I3D, clips: torch.Tensor, size: int = I3D_SIZE, batch_size: int = 8) -> torch.Tensor:
    """FVD features: clips (b, f, c, h, w) in [-1, 1], c = 1 or 3 -> (b, num_classes) float32 logits.

    Frames are resized to size×size (bilinear, no antialiasing: FVD upsamples) and grey is repeated
    to RGB. `size` other than 224 is for tests and quick looks only: such features are not FVD's.
    """
    if clips.ndim != 5 or clips.shape[2] not in (1, 3) or min(clips.shape) == 0:
        raise LightvidError(f"expected clips (b, f, c, h, w) with c = 1 or 3, got {tuple(clips.shape)}")
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in clips.split(batch_size):
        b, f = chunk.shape[:2]
        frames = rearrange(chunk.float().to(device), "b f c h w -> (b f) c h w").expand(-1, 3, -1, -1)
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        out.append(model(rearrange(frames, "(b f) c h w -> b c f h w", b=b, f=f)).float().cpu())
    return torch.cat(out)
