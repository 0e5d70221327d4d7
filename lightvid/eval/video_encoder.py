"""A small 3D-conv video encoder that lightvid trains itself, for FD-lightvid.

FD-lightvid is the Fréchet distance (`lightvid.eval.frechet`) between features of this encoder on two
sets of clips. It is NOT FVD: FVD uses an I3D network trained on Kinetics-400 (`lightvid.eval.i3d`),
and its numbers are comparable across papers; FD-lightvid numbers are comparable only between runs
that use the same encoder file (report its name with the number). Its use is to rank lightvid's own
models and settings on a dataset without downloading anything: the encoder trains on the dataset's
train split in minutes on a CPU.

Architecture: clips (b, f, c, h, w) in [-1, 1] are resized to 64×64 (bilinear, antialiased; the frame
count is kept) and 1-channel clips are repeated to 3 channels, so one network serves every dataset;
then four Conv3d 3×3×3 blocks (GroupNorm, SiLU), each halving height and width, the last two also
halving time; a global average pool gives the 256-d feature. About 1.2M parameters, ~25 ms per
16×64×64 clip on one CPU thread.

Training is self-supervised, so it needs no labels, with two heads on the pooled feature:
  (a) arrangement: classify a clip's frame order among forward, reversed, shuffled and frozen (one
      frame repeated). Shuffled and frozen clips look like a real clip frame by frame, so only
      features that see motion can tell them apart: generated videos with jitter, stutter or no
      motion at all land away from real ones.
  (b) InfoNCE (van den Oord et al. 2018; SimCLR's two-view form): two views of one clip (different
      temporal windows, spatial crops and brightness) must match each other and not the other clips
      of the batch. This makes the features describe what is in the clip (digits, scenes), so that
      blurry or wrong-looking content moves the features too.
A Fréchet distance is only as sensitive as its features: with (a) alone it would ignore appearance,
with (b) alone it could ignore motion (two windows of one clip share content, not necessarily order).
Both views of a clip get the same arrangement, so the two objectives do not pull against each other.
Note: bouncing digits and camera pans reversed in time are still plausible clips, so the forward and
reversed classes stay partly confused on such data; the other classes carry the motion signal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lightvid.errors import LightvidError
from lightvid.eval.frechet import fd_lightvid  # re-exported: FD-lightvid of two clip sets
from lightvid.io.atomic import atomic_write
from lightvid.models.checkpoint import PICKLE_SUFFIXES

__all__ = [
    "ARRANGEMENTS",
    "VideoEncoder",
    "VideoEncoderConfig",
    "arrangement_order",
    "encoder_loss",
    "fd_lightvid",
    "make_batch",
    "resize_clips",
    "train_video_encoder",
]

FILE_FORMAT = "lightvid-video-encoder"
ARRANGEMENTS = ("forward", "reversed", "shuffled", "frozen")
MIN_FRAMES = 4  # a training window needs a shuffle that is neither the identity nor the reversal


@dataclass(frozen=True)
class VideoEncoderConfig:
    channels: tuple[int, ...] = (32, 64, 128, 256)  # per block; the last is the feature size
    temporal_strides: tuple[int, ...] = (1, 1, 2, 2)  # per block; every block has spatial stride 2
    size: int = 64  # frames are resized to size×size
    groups: int = 8  # GroupNorm groups
    projection_dim: int = 128  # InfoNCE projection head output
    temperature: float = 0.1  # InfoNCE temperature


def resize_clips(clips: torch.Tensor, size: int) -> torch.Tensor:
    """(b, f, c, h, w) in [-1, 1], c in {1, 3} -> (b, f, 3, size, size), bilinear with antialiasing."""
    if clips.ndim != 5 or clips.shape[2] not in (1, 3) or min(clips.shape) == 0:
        raise LightvidError(f"expected clips (b, f, c, h, w) with c = 1 or 3, got {tuple(clips.shape)}")
    b, f = clips.shape[:2]
    clips = clips.float().expand(-1, -1, 3, -1, -1)  # grey -> RGB; a no-op for 3 channels
    if clips.shape[-2:] != (size, size):
        frames = F.interpolate(clips.reshape(b * f, 3, *clips.shape[-2:]), size=(size, size), mode="bilinear",
                               align_corners=False, antialias=True)
        clips = frames.reshape(b, f, 3, size, size)
    return clips


class VideoEncoder(nn.Module):
    """Conv3d blocks + global average pool -> (b, feature_dim) features; two training heads."""

    def __init__(self, config: VideoEncoderConfig | None = None):
        super().__init__()
        self.config = config = config or VideoEncoderConfig()
        self.train_info: dict[str, str] = {}  # how it was trained; saved in the file's metadata
        blocks, width = [], 3
        for out, t_stride in zip(config.channels, config.temporal_strides, strict=True):
            conv = nn.Conv3d(width, out, kernel_size=3, stride=(t_stride, 2, 2), padding=1, bias=False)
            blocks.append(nn.Sequential(conv, nn.GroupNorm(config.groups, out), nn.SiLU()))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.arrangement_head = nn.Linear(width, len(ARRANGEMENTS))
        self.projection = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, config.projection_dim))

    @property
    def feature_dim(self) -> int:
        return self.config.channels[-1]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(b, f, c, h, w) in [-1, 1] -> (b, feature_dim) pooled features (with gradients)."""
        x = rearrange(resize_clips(clips, self.config.size), "b f c h w -> b c f h w")
        return self.blocks(x).mean(dim=(2, 3, 4))  # (b, feature_dim)

    @torch.no_grad()
    def features(self, clips: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """(b, f, c, h, w) in [-1, 1] -> (b, feature_dim) float32, in eval mode, batch by batch."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(chunk) for chunk in clips.split(batch_size)])
        finally:
            self.train(was_training)

    def save(self, path) -> None:
        """One safetensors file: weights, with the config (and `train_info`) in its metadata; atomic."""
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        metadata = {"format": FILE_FORMAT, "config": json.dumps(asdict(self.config)),
                    "train_info": json.dumps(self.train_info)}
        with atomic_write(path) as tmp:
            save_file(state, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path) -> VideoEncoder:
        """The encoder saved by `save`; LightvidError for a pickle, a non-safetensors or a foreign file."""
        path = Path(path)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise LightvidError(f"{path}: pickle files are not loaded (they can run code); expected a .safetensors "
                                "file written by VideoEncoder.save")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata, state = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as e:
            raise LightvidError(f"{path}: not a readable safetensors file ({e})") from None
        if metadata.get("format") != FILE_FORMAT:
            raise LightvidError(f"{path}: not a lightvid video encoder (metadata format is "
                                f"{metadata.get('format')!r}, expected {FILE_FORMAT!r})")
        try:
            raw = json.loads(metadata["config"])
            config = VideoEncoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
            model = cls(config)
            model.train_info = json.loads(metadata.get("train_info", "{}"))
        except (KeyError, TypeError, ValueError) as e:
            raise LightvidError(f"{path}: unusable encoder config in the metadata ({e})") from None
        expected = model.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        if missing or unexpected or wrong:
            raise LightvidError(f"{path}: weights do not match the config (missing {missing[:3]}, unexpected "
                                f"{unexpected[:3]}, wrong shape {wrong[:3]})")
        model.load_state_dict(state)
        return model.eval()


# ---------------------------------------------------------------- training views


def arrangement_order(kind: str, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """Frame indices (num_frames,) that rearrange a clip: forward, reversed, shuffled or frozen.

    shuffled is a random permutation other than the identity and the reversal; frozen repeats one
    random frame.
    """
    forward = torch.arange(num_frames)
    if kind == "forward":
        return forward
    if kind == "reversed":
        return forward.flip(0)
    if kind == "frozen":
        return torch.randint(num_frames, (1,), generator=generator).expand(num_frames).clone()
    if kind == "shuffled":
        if num_frames < 3:
            raise LightvidError(f"a shuffled arrangement needs at least 3 frames, got {num_frames}")
        while True:
            order = torch.randperm(num_frames, generator=generator)
            if not (torch.equal(order, forward) or torch.equal(order, forward.flip(0))):
                return order
    raise LightvidError(f"unknown arrangement {kind!r}; accepted: {', '.join(ARRANGEMENTS)}")


def training_window(num_frames: int) -> int:
    """Frames per training view: 3/4 of the clip (at least MIN_FRAMES), so the two views' windows differ."""
    if num_frames < MIN_FRAMES:
        raise LightvidError(f"training the video encoder needs clips of at least {MIN_FRAMES} frames, "
                            f"got {num_frames}")
    return max(MIN_FRAMES, math.ceil(0.75 * num_frames))


def _view(clip: torch.Tensor, order: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """One view of (F, C, H, W): a random window rearranged by `order`, a random crop, brightness jitter."""
    num_frames, _, h, w = clip.shape
    start = int(torch.randint(num_frames - len(order) + 1, (1,), generator=g))
    scale = 0.7 + 0.3 * float(torch.rand((), generator=g))  # crop side / frame side
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = int(torch.randint(h - ch + 1, (1,), generator=g)), int(torch.randint(w - cw + 1, (1,), generator=g))
    view = clip[start + order, :, top : top + ch, left : left + cw]  # (window, C, ch, cw)
    view = resize_clips(view.unsqueeze(0), size)[0]  # (window, 3, size, size)
    brightness = 0.2 * float(torch.rand((), generator=g)) - 0.1
    return (view + brightness).clamp(-1.0, 1.0)


def make_batch(dataset: Dataset, batch_size: int, size: int, g: torch.Generator):
    """Two views of `batch_size` random clips: (views_a, views_b) each (b, window, 3, size, size); labels (b,)."""
    indices = torch.randint(len(dataset), (batch_size,), generator=g).tolist()
    labels = torch.randint(len(ARRANGEMENTS), (batch_size,), generator=g)
    views_a, views_b = [], []
    for index, label in zip(indices, labels.tolist()):
        clip = dataset[index][0]  # (F, C, H, W)
        order = arrangement_order(ARRANGEMENTS[label], training_window(clip.shape[0]), g)
        views_a.append(_view(clip, order, size, g))
        views_b.append(_view(clip, order, size, g))
    return torch.stack(views_a), torch.stack(views_b), labels


def encoder_loss(model: VideoEncoder, views_a, views_b, labels) -> tuple[torch.Tensor, dict[str, float]]:
    """Arrangement cross-entropy (on both views) + symmetric InfoNCE between the views; and the parts."""
    feats = model(torch.cat([views_a, views_b]))  # (2b, D)
    arrangement = F.cross_entropy(model.arrangement_head(feats), torch.cat([labels, labels]))
    z_a, z_b = F.normalize(model.projection(feats), dim=-1).chunk(2)  # (b, P) each
    logits = z_a @ z_b.T / model.config.temperature  # (b, b): the diagonal holds the positive pairs
    target = torch.arange(len(labels))
    infonce = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    loss = arrangement + infonce
    return loss, {"loss": loss.item(), "arrangement": arrangement.item(), "infonce": infonce.item()}


def train_video_encoder(
    dataset: Dataset,
    steps: int,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    lr: float = 1e-3,
    config: VideoEncoderConfig | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> VideoEncoder:
    """Train a VideoEncoder on a map-style dataset of `(frames, fps)` items; deterministic given `seed`.

    Initial weights, clip indices, arrangements and views all come from generators seeded by `seed`
    (the global RNG is left as it was). AdamW, linear warm-up then cosine decay, gradients clipped at
    1. `callback(step, {"loss", "arrangement", "infonce"})` is called after every step.
    """
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise LightvidError("train_video_encoder needs a map-style dataset (with len() and indexing)")
    if steps < 1 or batch_size < 2:
        raise LightvidError(f"need steps >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoEncoder(config)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, min(100, steps // 10))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    bar = tqdm(range(steps), desc="video encoder", disable=not progress)
    for step in bar:
        loss, parts = encoder_loss(model, *make_batch(dataset, batch_size, model.config.size, g))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        if callback is not None:
            callback(step, parts)
    model.train_info = {"steps": str(steps), "batch_size": str(batch_size), "seed": str(seed), "lr": str(lr)}
    return model.eval()
