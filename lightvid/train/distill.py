"""Adversarial distillation of a native model to 1 or k fixed sampling steps (MobileVD, SnapGen-V, SF-V).

Student: initialised from the teacher. It is trained on exactly the inputs it will meet when sampled with
`sample_renoise` at the k noise levels student_sigmas(k)[:-1]: a clip's generated frames at clean + σ_i·noise
(given frames clean in the conditioning channels, as for every task), and predicts the clean clip in one call.
Its generator loss is
    s · (−D(fake))                                                   adversarial
    + reconstruction_weight · pseudo-Huber(fake − real)              reconstruction
    + teacher_weight · pseudo-Huber(fake − sg(T(fake + σ_t·noise)))  teacher (score distillation, ADD)
over the generated frames, with s set at every step so that the adversarial gradient at the sample is
adversarial_weight times the reconstruction gradient in norm (see Distillation.generator_loss).
The reconstruction target is the real clip, not the teacher's multi-step samples: on a 2-core CPU one teacher
sample costs 2·25 − 1 UNet evaluations, ~25 times a training step, while the real clips are free and are what
the teacher itself was trained to match. From pure noise (1 step) the reconstruction alone gives the blurry
posterior mean; the adversarial term is what makes samples sharp (SF-V, MobileVD). The teacher term (ADD,
Sauer et al. 2023) costs one teacher call per step: the frozen teacher denoises the student's own sample,
re-noised to σ_t ~ LogNormal(teacher_p_mean, teacher_p_std), and the student is pulled to that denoised clip,
i.e. towards where the teacher puts its samples rather than towards the mean of the real ones.

Discriminator (SF-V / SnapGen-V): the teacher's encoder (conv_in, down levels, mid), frozen, sees a clip
re-noised to σ_d ~ LogNormal(discriminator_p_mean, discriminator_p_std) (by default lower than the training
distribution: fine detail is what separates a 1-step sample from a real clip) with the task's given frames and mask in
its conditioning channels, and its timestep embedding of σ_d. After every down level and the mid level sit two
small trainable heads: a spatial one (frames folded into the batch: norm, 3×3 conv, FiLM by the embedding, 1×1
conv to a logit map) and a temporal one (pixels folded into the batch: the same with convolutions over time).
Hinge loss (non-saturating as an option), averaged over each head's logits and summed over heads.
"""
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from lightvid.diffusion import Denoiser, student_sigmas
from lightvid.models.native import NativeNet
from lightvid.pipelines.native import NativePipeline

from .config import DistillConfig


class _Head(nn.Module):
    """norm -> SiLU -> conv (k taps) -> FiLM(embedding) -> SiLU -> 1×1 conv to one logit per position."""

    def __init__(self, ch: int, hidden: int, emb_dim: int, conv: type, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.conv = conv(ch, hidden, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * hidden)
        self.out = conv(hidden, 1, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # x: (n, c, *positions); emb: (n, emb_dim), one row per x row
        h = self.conv(F.silu(self.norm(x)))
        scale, shift = self.film(F.silu(emb)).chunk(2, dim=1)
        trailing = (1,) * (h.ndim - 2)
        h = h * (1 + scale.view(*scale.shape, *trailing)) + shift.view(*shift.shape, *trailing)
        return self.out(F.silu(h))


class Discriminator(nn.Module):
    """Frozen teacher encoder + a spatial and a temporal head per level. Only the heads train."""

    def __init__(self, teacher: NativeNet, sigma_data: float, hidden: int = 64):
        super().__init__()
        cfg = teacher.unet.config
        self.encoder = teacher.requires_grad_(False).eval()
        self.preconditioning = Denoiser(self.encoder, prediction="edm", sigma_data=sigma_data).preconditioning
        channels = [*cfg.channels, cfg.channels[-1]]  # every down level's output, then the mid level's
        groups = cfg.norm_groups
        self.spatial = nn.ModuleList(_Head(c, hidden, cfg.emb_dim, nn.Conv2d, groups) for c in channels)
        self.temporal = nn.ModuleList(_Head(c, hidden, cfg.emb_dim, nn.Conv1d, groups) for c in channels)

    def train(self, mode: bool = True) -> "Discriminator":
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout / norm statistics to update, whatever the mode
        return self

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor, given: torch.Tensor,
                mask: torch.Tensor) -> list[torch.Tensor]:
        """noisy, given: (b, f, c, h, w); sigma: (b,); mask: (b, f, 1, h, w). Returns each head's logits."""
        _, _, c_in, c_noise = self.preconditioning(sigma)
        sample = self.encoder.unet_input(noisy * c_in.view(-1, 1, 1, 1, 1), given, mask)
        _, _, emb, _, levels = self.encoder.unet.encode(sample, c_noise)
        emb = emb.float()
        logits = []
        for (x, frames), spatial, temporal in zip(levels, self.spatial, self.temporal):
            x = x.float()
            height, width = x.shape[-2:]
            logits.append(spatial(x, emb.repeat_interleave(frames, dim=0)))  # (b·f, 1, h, w)
            seq = rearrange(x, "(b f) c h w -> (b h w) c f", f=frames)
            logits.append(temporal(seq, emb.repeat_interleave(height * width, dim=0)))  # (b·h·w, 1, f)
        return logits


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor], kind: str) -> torch.Tensor:
    if kind == "hinge":
        return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake))
    return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real, fake))


def generator_adversarial_loss(fake: list[torch.Tensor], kind: str) -> torch.Tensor:
    if kind == "hinge":
        return sum(-f.mean() for f in fake)
    return sum(F.softplus(-f).mean() for f in fake)


def pseudo_huber(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, c: float) -> torch.Tensor:
    """Mean of sqrt(d² + c²) − c over the positions where `weight` is 1 (the generated frames)."""
    d = torch.sqrt((prediction - target) ** 2 + c * c) - c
    return (d * weight).sum() / (weight.expand_as(d).sum()).clamp(min=1.0)


class Distillation:
    """One generator (student) loss and one discriminator update per training step; see the module docstring."""

    def __init__(self, cfg: DistillConfig, teacher: NativePipeline, sigma_min: float, sigma_max: float):
        self.cfg = cfg
        s = teacher.settings
        self.teacher = teacher.denoiser.requires_grad_(False).eval()  # shares its UNet with the discriminator
        self.discriminator = Discriminator(NativeNet(teacher.unet, s.conditioning, s.prediction, s.patch),
                                           s.sigma_data, cfg.head_channels)
        heads = [p for p in self.discriminator.parameters() if p.requires_grad]
        # β1 = 0: the usual GAN choice (momentum makes the two-player game oscillate)
        self.optimizer = torch.optim.AdamW(heads, lr=cfg.discriminator_lr, betas=(0.0, 0.99), weight_decay=0.0)
        self.student_sigmas = student_sigmas(cfg.student_steps, sigma_min, sigma_max)[:-1]  # (k,), as sampled

    def prepare(self, accelerator) -> None:
        self.discriminator, self.optimizer = accelerator.prepare(self.discriminator, self.optimizer)

    def _discriminator_sigma(self, b: int, g: torch.Generator) -> torch.Tensor:
        return torch.exp(self.cfg.discriminator_p_mean + self.cfg.discriminator_p_std * torch.randn(b, generator=g))

    def _teacher_target(self, sample: torch.Tensor, given: torch.Tensor, mask: torch.Tensor,
                        g: torch.Generator) -> torch.Tensor:
        """The frozen teacher's denoising of `sample` (b, f, c, h, w) re-noised to σ_t: the teacher term's target."""
        b = sample.shape[0]
        sigma = torch.exp(self.cfg.teacher_p_mean + self.cfg.teacher_p_std * torch.randn(b, generator=g)).to(sample)
        noisy = sample + sigma.view(-1, 1, 1, 1, 1) * torch.randn(sample.shape, generator=g).to(sample)
        with torch.no_grad():
            return self.teacher(noisy, sigma, given=given, mask=mask).float()

    def generator_loss(self, student: Denoiser, clips: torch.Tensor, mask: torch.Tensor,
                       g: torch.Generator) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """clips: (b, f, c, h, w) real; mask: (b, f, 1, h, w), 1 = given. Returns (loss, logs, fake detached).

        The terms are balanced where they meet, at the student's sample: the adversarial gradient there is
        rescaled to adversarial_weight × the (unweighted) reconstruction gradient's norm, the weighted
        reconstruction and teacher gradients are added, and the sum goes through the student in one backward
        pass. A fixed weight cannot do this: on mnist the adversarial gradient's norm grew ~60x in the heads'
        first 100 updates (bench/RESULTS.md), and with a fixed weight it swamped reconstruction.
        The returned loss has that gradient and the value adversarial_scale·adversarial + reconstruction_weight·
        reconstruction + teacher_weight·teacher.
        """
        b = clips.shape[0]
        mask = mask.to(clips)
        given = clips * mask
        sigma = self.student_sigmas[torch.randint(len(self.student_sigmas), (b,), generator=g)].to(clips)
        noisy = clips + sigma.view(-1, 1, 1, 1, 1) * torch.randn(clips.shape, generator=g).to(clips)
        fake = mask * clips + (1 - mask) * student(noisy, sigma, given=given, mask=mask)  # (b, f, c, h, w)
        at = fake.detach().float().requires_grad_()
        sigma_d = self._discriminator_sigma(b, g).to(clips)
        renoised = at + sigma_d.view(-1, 1, 1, 1, 1) * torch.randn(clips.shape, generator=g).to(clips)
        # the unwrapped module: this pass only needs gradients at `at`, none for the heads (no DDP reduction)
        adversarial = generator_adversarial_loss(self._core()(renoised, sigma_d, given, mask),
                                                 self.cfg.discriminator_loss)
        reconstruction = pseudo_huber(at, clips, 1 - mask, self.cfg.huber_c)
        (adversarial_grad,) = torch.autograd.grad(adversarial, at)
        adversarial_grad = adversarial_grad * (1 - mask)  # given frames are not the student's: they don't count
        (reconstruction_grad,) = torch.autograd.grad(reconstruction, at)
        anchor = self.cfg.reconstruction_weight * reconstruction_grad  # the non-adversarial gradient at the sample
        value = self.cfg.reconstruction_weight * reconstruction.detach()
        logs = {}
        if self.cfg.teacher_weight > 0:
            teacher = pseudo_huber(at, self._teacher_target(at.detach(), given, mask, g), 1 - mask, self.cfg.huber_c)
            (teacher_grad,) = torch.autograd.grad(teacher, at)
            anchor = anchor + self.cfg.teacher_weight * teacher_grad
            value = value + self.cfg.teacher_weight * teacher.detach()
            logs.update(teacher=teacher.item(), teacher_grad=teacher_grad.norm().item())
        a_norm, r_norm = adversarial_grad.norm(), reconstruction_grad.norm()
        scale = self.cfg.adversarial_weight * r_norm / a_norm.clamp(min=1e-12)
        direction = scale * adversarial_grad + anchor
        value = value + scale * adversarial.detach()
        surrogate = (fake * direction.to(fake.dtype)).sum()  # d/d fake = direction
        loss = surrogate - surrogate.detach() + value
        logs.update(adversarial=adversarial.item(), reconstruction=reconstruction.item(),
                    adversarial_grad=a_norm.item(), reconstruction_grad=r_norm.item(),
                    adversarial_scale=scale.item())
        return loss, logs, fake.detach()

    def discriminator_step(self, clips: torch.Tensor, mask: torch.Tensor, fake: torch.Tensor,
                           g: torch.Generator, accelerator) -> dict:
        """One update of the heads on real vs fake clips, both re-noised to the same σ_d (one batched call)."""
        b = clips.shape[0]
        mask = mask.to(clips)
        sigma_d = self._discriminator_sigma(b, g).to(clips).repeat(2)
        both = torch.cat([clips, fake])
        noisy = both + sigma_d.view(-1, 1, 1, 1, 1) * torch.randn(both.shape, generator=g).to(clips)
        with accelerator.autocast():
            logits = self.discriminator(noisy, sigma_d, torch.cat([clips, clips]) * mask.repeat(2, 1, 1, 1, 1),
                                        mask.repeat(2, 1, 1, 1, 1))
            loss = discriminator_loss([x[: x.shape[0] // 2] for x in logits], [x[x.shape[0] // 2:] for x in logits],
                                      self.cfg.discriminator_loss)
        self.optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        self.optimizer.step()
        return {"discriminator": loss.item()}

    def _core(self) -> Discriminator:
        """The discriminator itself, unwrapped from DDP when the run has several processes."""
        return self.discriminator.module if hasattr(self.discriminator, "module") else self.discriminator

    def heads(self) -> nn.Module:
        """What a checkpoint keeps of the discriminator (the encoder is the frozen teacher)."""
        core = self._core()
        return nn.ModuleDict({"spatial": core.spatial, "temporal": core.temporal})
