"""MarDini's generator: a light DiT that renders every frame at high resolution from the planner's signal.

Tokens of generator_patch × generator_patch folded pixels (noisy frame and conditioning channels). Each block:
spatial self-attention within the frame, temporal self-attention along each token's track, cross-attention to the
frame's planning tokens, and an MLP whose input has the frame's planning signal added (upsampled from the planner's
grid to this one): MarDini's two paths for the plan. The noise level modulates every sub-layer through adaptive
LayerNorm (shift, scale, gate: DiT's adaLN-Zero, gates and output layer zero-initialised, so a fresh generator
outputs zeros — with a hint_residual prediction, exactly its hint). Reference tokens attend only to themselves.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .embeddings import MLPEmbedding, sinusoidal_embedding
from .mardini_config import MarDiniConfig
from .planner import grid_positions
from .transformer import Attention, axis_widths, rope_angles

SUBLAYERS = 4  # spatial attention, temporal attention, cross-attention, MLP


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class GeneratorBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6) for _ in range(SUBLAYERS))
        self.spatial, self.temporal = Attention(dim, heads), Attention(dim, heads)
        self.cross = Attention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Linear(dim, 3 * SUBLAYERS * dim)  # (shift, scale, gate) per sub-layer from the noise level
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, emb, plan, plan_added, frames, angles, reference):
        """x (b·f, n, d); emb (b, d); plan (b·f, m, d) planning tokens; plan_added (b·f, n, d) the plan on this
        grid; angles: dict of rotary angles; reference: the reference tokens in the spatial (b·f, n) and temporal
        (b·n, f) layouts, for identity attention (or None)."""
        mods = rearrange(self.ada(F.silu(emb)), "b (k d) -> k b 1 d", k=3 * SUBLAYERS)
        mods = mods.repeat_interleave(frames, dim=1)  # (3·S, b·f, 1, d): one set per clip, shared by its frames
        shift, scale, gate = mods[0::3], mods[1::3], mods[2::3]
        h = modulate(self.norms[0](x), shift[0], scale[0])
        x = x + gate[0] * self.spatial(h, q_angles=angles["space"], k_angles=angles["space"],
                                       reference=reference["space"])
        h = rearrange(modulate(self.norms[1](x), shift[1], scale[1]), "(b f) n d -> (b n) f d", f=frames)
        h = self.temporal(h, q_angles=angles["time"], k_angles=angles["time"], reference=reference["time"])
        x = x + gate[1] * rearrange(h, "(b n) f d -> (b f) n d", n=x.shape[1])
        h = modulate(self.norms[2](x), shift[2], scale[2])
        x = x + gate[2] * self.cross(h, plan, q_angles=angles["query"], k_angles=angles["plan"])
        h = modulate(self.norms[3](x), shift[3], scale[3]) + plan_added
        return x + gate[3] * self.mlp(h)


class Generator(nn.Module):
    """`generator(sample, timestep, plan, reference, plan_grid) -> out`: sample (b, f, in_channels, h, w) folded;
    timestep: c_noise, scalar or (b,); plan (b, f, m, planner_dim) on a plan_grid = (gh, gw) token grid; reference
    (b, f, h/g, w/g) bool, g = generator_patch. out (b, f, out_channels, h, w)."""

    def __init__(self, cfg: MarDiniConfig):
        super().__init__()
        self.cfg, dim, g = cfg, cfg.dim, cfg.generator_patch
        self.embed = nn.Conv2d(cfg.in_channels, dim, g, stride=g)
        self.time_embedding = MLPEmbedding(dim, 4 * dim, dim)
        self.plan_proj = nn.Linear(cfg.planner_dim, dim)  # the planning tokens, for cross-attention
        self.plan_add = nn.Linear(cfg.planner_dim, dim)  # the planning signal added in the MLP path
        self.blocks = nn.ModuleList(GeneratorBlock(dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, g * g * cfg.out_channels)
        for layer in (self.ada_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        head = dim // cfg.heads
        self.space_widths, self.time_widths = axis_widths(head, 2), (head,)
        self.gradient_checkpointing = False

    def _angles(self, frames: int, grid: tuple[int, int], plan_grid: tuple[int, int], device) -> dict:
        g, k = self.cfg.generator_patch, self.cfg.planner_patch
        space = rope_angles(grid_positions(1, *grid, g, device)[:, 1:], self.space_widths)
        plan = rope_angles(grid_positions(1, *plan_grid, k, device)[:, 1:], self.space_widths)
        time = rope_angles(torch.arange(frames, device=device, dtype=torch.float32)[:, None], self.time_widths)
        return {"space": space, "query": space, "plan": plan, "time": time}

    def forward(self, sample, timestep, plan, reference, plan_grid):
        b, f = sample.shape[:2]
        g = self.cfg.generator_patch
        x = self.embed(rearrange(sample, "b f c h w -> (b f) c h w"))  # (b·f, dim, h/g, w/g)
        grid = tuple(x.shape[-2:])
        x = rearrange(x, "bf d h w -> bf (h w) d")
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
        emb = self.time_embedding(sinusoidal_embedding(t, self.cfg.dim).to(x.dtype))  # (b, dim)
        plan = rearrange(plan, "b f m d -> (b f) m d")
        plan_added = rearrange(self.plan_add(plan), "bf (h w) d -> bf d h w", h=plan_grid[0])
        plan_added = rearrange(F.interpolate(plan_added, size=grid, mode="nearest"), "bf d h w -> bf (h w) d")
        plan = self.plan_proj(plan)
        angles = self._angles(f, grid, plan_grid, sample.device)
        identity = {"space": None, "time": None}
        if self.cfg.identity_attention:
            identity = {"space": rearrange(reference, "b f h w -> (b f) (h w)"),
                        "time": rearrange(reference, "b f h w -> (b h w) f")}
        for block in self.blocks:
            args = (x, emb, plan, plan_added, f, angles, identity)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
            else:
                x = block(*args)
        shift, scale = rearrange(self.ada_out(F.silu(emb)), "b (k d) -> k b 1 d", k=2).repeat_interleave(f, dim=1)
        x = self.out(modulate(self.norm_out(x), shift, scale))  # (b·f, n, g·g·c_out)
        return rearrange(x, "(b f) (h w) (p q c) -> b f c (h p) (w q)", b=b, h=grid[0], p=g, q=g)
