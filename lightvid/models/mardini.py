"""`MarDini`: a heavy planner at low resolution + a light generator at high resolution (Liu et al. 2024, MarDini).

A native model family: `net(sample, timestep) -> out` on the same folded conditioning channels as a native
SpaceTimeUNet (lightvid.models.native), so every task, hint, prediction and sampler works unchanged. The planner
reads the conditioning channels only (given frames, their hints and mask; never the noisy frames), so within one
generated clip its plan is the same at every sampling step: it is computed once and reused while the conditioning
is unchanged (exactly, compared element by element). The generator reads everything and the plan.

Classifier-free guidance over the plan: in training a clip's plan is swapped for a learned null plan with
probability `null_probability` (drawn from a generator the trainer reseeds every step, `reseed`, so a resumed run
draws the same); at sampling, `guidance` s gives null + s·(plan − null) (1: the plan alone, one generator pass).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from lightvid.errors import LightvidError

from .generator import Generator
from .mardini_config import MarDiniConfig
from .planner import Planner, reference_tokens


class MarDini(nn.Module):
    def __init__(self, config: MarDiniConfig):
        super().__init__()
        self.config = cfg = config
        self.planner, self.generator = Planner(cfg), Generator(cfg)
        self.null_plan = nn.Parameter(torch.randn(cfg.planner_dim) * 0.02)
        self.temporal_gates = None  # the trainer's pruning hook: MarDini has no temporal-block gates
        self.guidance = 1.0
        self._null_generator: torch.Generator | None = None
        self._cached_plan = None  # (conditioning channels, plan) of the last evaluation without gradients

    @property
    def multiple(self) -> int:
        """Folded height and width are padded to a multiple of this (both token grids must tile the frame)."""
        return math.lcm(self.config.planner_patch, self.config.generator_patch)

    def reseed(self, seed: int) -> None:
        """The null-plan draws of the next training forward pass come from this seed."""
        self._null_generator = torch.Generator().manual_seed(seed)

    def plan(self, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """cond (b, f, c_cond, h, w) conditioning channels, mask (b, f, h, w) -> (b, f, m, planner_dim), reused
        while `cond` is unchanged and no gradient is being recorded."""
        cached = self._cached_plan
        reuse = not torch.is_grad_enabled() and cached is not None
        if reuse and cached[0].shape == cond.shape and cached[0].dtype == cond.dtype and torch.equal(cached[0], cond):
            return cached[1]
        plan = self.planner(cond, reference_tokens(mask, self.config.planner_patch))
        self._cached_plan = None if torch.is_grad_enabled() else (cond, plan)
        return plan

    def forward(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        """sample (b, f, in_channels, h, w) folded channels; timestep: c_noise, scalar or (b,).
        Returns (b, f, out_channels, h, w)."""
        cfg = self.config
        b, (h, w) = sample.shape[0], sample.shape[-2:]
        m = self.multiple
        pad_h, pad_w = -h % m, -w % m  # padded pixels have mask 0: generated, never reference
        if pad_h or pad_w:
            sample = F.pad(sample, (0, pad_w, 0, pad_h))
        mask = sample[:, :, cfg.mask_channels].amin(dim=2)  # (b, f, H, W): 1 where the pixel is given
        plan = self.plan(sample[:, :, cfg.noisy_channels:], mask)
        plan_grid = (sample.shape[-2] // cfg.planner_patch, sample.shape[-1] // cfg.planner_patch)
        null = self.null_plan.to(plan.dtype).expand_as(plan)
        if self.training and cfg.null_probability > 0:
            dropped = torch.rand(b, generator=self._null_generator) < cfg.null_probability  # (b,)
            plan = torch.where(dropped.to(plan.device)[:, None, None, None], null, plan)
        reference = reference_tokens(mask, cfg.generator_patch)
        if self.training or self.guidance == 1:
            out = self.generator(sample, timestep, plan, reference, plan_grid)
        else:  # both plans in one batch: [null, plan]
            t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
            pair = self.generator(torch.cat([sample, sample]), torch.cat([t, t]), torch.cat([null, plan]),
                                  torch.cat([reference, reference]), plan_grid)
            unguided, planned = pair.chunk(2)
            out = unguided + self.guidance * (planned - unguided)
        return out[..., :h, :w].contiguous()

    def set_gradient_checkpointing(self, enabled: bool = True) -> "MarDini":
        self.planner.gradient_checkpointing = self.generator.gradient_checkpointing = enabled
        return self

    @classmethod
    def from_pretrained(cls, path, dtype: torch.dtype | None = None, device="cpu") -> "MarDini":
        from .checkpoint import load_network
        network = load_network(path, dtype=dtype, device=device)
        if not isinstance(network, cls):
            raise LightvidError(f"{path}: holds a {type(network).__name__} network, not a MarDini one")
        return network

    def save_pretrained(self, path) -> None:
        from .checkpoint import save_network
        save_network(self, path)
