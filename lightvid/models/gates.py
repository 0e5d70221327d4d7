"""Gates on temporal blocks, learned while temporal-block pruning is finetuned (MobileVD).

Temporal block i (a ResBlock's temporal half, or a transformer's temporal blocks) gets a gate g_i that scales
its contribution to the network (1 = as trained, 0 = removed). Two ways to learn which blocks matter:

- "topk", MobileVD's method with an explicit budget: learnable importance logits s_i, and every training step
  keeps exactly `keep` blocks, the k largest of s_i + Gumbel noise — a sample of k blocks without replacement
  with probabilities ∝ exp(s_i). Gates are hard 0/1 in the forward pass, so the network is always trained in
  the state it will be pruned to; gradients reach s through a sigmoid relaxation around the threshold between
  the k-th and (k+1)-th perturbed score (straight-through estimator). In eval mode the gates are the top-k of s.
- "l1", the baseline MobileVD compares against: continuous gates g_i (initialised to 1) under an L1 penalty
  λ·Σ g_i added to the loss, kept in [0, 1] by `project` after every optimizer step (a gate is the fraction of
  its block that is kept); afterwards the k largest g_i survive.
"""
import torch
from torch import nn

GATE_METHODS = ("topk", "l1")


class TemporalGates(nn.Module):
    def __init__(self, count: int, method: str, keep: int, temperature: float = 0.5):
        super().__init__()
        if method not in GATE_METHODS:
            raise ValueError(f"gate method '{method}' is not one of {', '.join(GATE_METHODS)}")
        self.method, self.keep, self.temperature = method, min(max(keep, 0), count), temperature
        # topk: importance logits (equal = uniform sampling); l1: the gate values themselves.
        self.scores = nn.Parameter(torch.zeros(count) if method == "topk" else torch.ones(count))
        self.generator = torch.Generator().manual_seed(0)  # reseeded per step by the trainer (exact resume)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def ranking(self) -> torch.Tensor:
        """Block indices, most important first."""
        return torch.argsort(self.scores.detach(), descending=True, stable=True)

    @torch.no_grad()
    def project(self) -> None:
        """After an optimizer step: L1 gates back into [0, 1]."""
        if self.method == "l1":
            self.scores.clamp_(0.0, 1.0)

    def forward(self) -> torch.Tensor:
        """Gate values (count,)."""
        if self.method == "l1":
            return self.scores
        n, k = self.scores.numel(), self.keep
        if not self.training or k in (0, n):
            hard = torch.zeros(n, device=self.scores.device)
            hard[self.ranking()[:k]] = 1.0
            # zero gradient, but the scores stay in the graph (DDP expects every parameter to get one)
            return hard.to(self.scores.dtype) + 0.0 * self.scores
        uniform = torch.rand(n, generator=self.generator).clamp(1e-9, 1 - 1e-9).to(self.scores.device)
        perturbed = self.scores - torch.log(-torch.log(uniform))  # (n,) scores + Gumbel(0, 1)
        ordered = perturbed.detach().sort(descending=True).values
        threshold = (ordered[k - 1] + ordered[k]) / 2
        soft = torch.sigmoid((perturbed - threshold) / self.temperature)
        hard = (perturbed.detach() > threshold).to(soft.dtype)
        return hard + (soft - soft.detach())  # value exactly 0/1, gradient of the relaxation

    def penalty(self) -> torch.Tensor:
        """The L1 term Σ|g_i| (zero for top-k gates, whose budget is enforced by sampling)."""
        return self.scores.abs().sum() if self.method == "l1" else self.scores.new_zeros(())
