"""Editing a video with anchor attention (Fairy): the anchor pass, then every frame against the anchor cache.

Sampling is Euler ancestral (Fairy's; 10 steps by default) with ONE noise image per step shared by every frame (the
initial noise and each step's fresh noise), so equal frames follow equal paths. Frames are edited in chunks of
`batch` frames; a chunk's result depends only on its frames, the cache and the plan, never on which process runs
it or what ran before (lightvid.edit.workers relies on this).
"""
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from lightvid.diffusion.samplers import ancestral_step
from lightvid.errors import LightvidError

from .anchor import AnchorCache, install_anchor_attention
from .editor import Editor, sampling_schedule


@dataclass(frozen=True)
class EditPlan:
    instruction: str
    steps: int = 10
    guidance_text: float = 1.0
    guidance_image: float = 1.0
    anchors: int = 3  # 0: every frame edited on its own (no cross-frame attention)
    seed: int = 0
    batch: int = 4  # frames per chunk

    @property
    def groups(self) -> int:
        """Guidance branches per frame in the network's batch."""
        return 1 if self.guidance_text == 1.0 and self.guidance_image == 1.0 else 3


def anchor_indices(num_frames: int, anchors: int) -> list[int]:
    """`anchors` frames evenly spaced over the video, first and last included (fewer if the video is shorter)."""
    if anchors <= 0:
        return []
    return sorted({int(i + 0.5) for i in np.linspace(0, num_frames - 1, min(anchors, num_frames))})


def editing_size(height: int, width: int, longer: int, multiple: int) -> tuple[int, int]:
    """(h, w) with the longer side `longer` and the aspect kept, both rounded to a multiple of `multiple`."""
    scale = longer / max(height, width)
    return tuple(max(multiple, round(s * scale / multiple) * multiple) for s in (height, width))


def prepare_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (f, h, w, 3) -> (f, 3, H, W) in [-1, 1], resized (antialiased bilinear) to `size`."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return F.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def sampling_noise(editor: Editor, height: int, width: int, plan: EditPlan) -> torch.Tensor:
    """(steps + 1, c, h, w): the initial noise, then each step's ancestral noise; the same for every frame."""
    generator = torch.Generator().manual_seed(plan.seed)
    return torch.randn((plan.steps + 1, *editor.sample_shape(height, width)), generator=generator)


@contextmanager
def one_thread():
    """Run torch on one CPU thread: a result then does not depend on how many threads the process has."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FrameEditor:
    """An editor with anchor attention installed, and one plan's conditions: call `record_anchors` once, then
    `edit_chunk` on any frames, in any order, in any process that holds the same cache."""

    def __init__(self, editor: Editor, plan: EditPlan, height: int, width: int):
        self.editor, self.plan = editor, plan
        self.cache = AnchorCache()
        install_anchor_attention(editor.unet, self.cache)
        self.timesteps, self.sigmas = sampling_schedule(editor.settings, plan.steps)
        self.noise = sampling_noise(editor, height, width, plan)
        with torch.no_grad(), one_thread():  # the context must not depend on the process's thread count
            self.context = editor.encode_text([plan.instruction])  # (1, n, d)
            self.null_context = editor.encode_text([""]) if plan.groups > 1 else None  # guidance's "no instruction"

    @torch.no_grad()
    def _sample(self, images: torch.Tensor, mode: str, progress: bool = False) -> torch.Tensor:
        # images (f, 3, H, W) in [-1, 1] -> edited (f, 3, H, W)
        condition = self.editor.encode_image(images)
        x = (self.noise[0] * self.sigmas[0]).expand(images.shape[0], -1, -1, -1)
        for i in tqdm(range(self.plan.steps), desc="anchor frames", unit="step", disable=not progress):
            sigma, sigma_next = self.sigmas[i].item(), self.sigmas[i + 1].item()
            self.cache.set(mode, i, self.plan.groups)
            x0 = self.editor.denoise(x, sigma, self.timesteps[i].item(), condition, self.context,
                                     self.plan.guidance_text, self.plan.guidance_image, self.null_context)
            sigma_down, sigma_up = ancestral_step(sigma, sigma_next)
            x = x0 + (x - x0) * (sigma_down / sigma)  # Euler to sigma_down: x + (x - x0)/σ · (σ_down - σ)
            if sigma_up > 0:
                x = x + self.noise[i + 1] * sigma_up
        self.cache.set("off")
        return self.editor.decode(x)

    def record_anchors(self, anchors: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Edit the anchor frames together (f_a, 3, H, W), filling the cache; returns their edits."""
        return self._sample(anchors, "record", progress)

    def edit_chunk(self, images: torch.Tensor) -> torch.Tensor:
        """Edit frames (f, 3, H, W) against the cache (on their own if the plan has no anchors)."""
        return self._sample(images, "replay" if self.plan.anchors > 0 else "off")


def check_plan(plan: EditPlan) -> None:
    if plan.steps < 1:
        raise LightvidError(f"--steps must be at least 1, got {plan.steps}")
    if plan.anchors < 0:
        raise LightvidError(f"--anchors must be 0 (no anchors) or more, got {plan.anchors}")
    if plan.batch < 1:
        raise LightvidError(f"--batch must be at least 1, got {plan.batch}")


def chunks(num_frames: int, batch: int) -> list[range]:
    return [range(s, min(s + batch, num_frames)) for s in range(0, num_frames, batch)]
