"""The Denoiser: a network plus the preconditioning that turns it into D(x; sigma) ~ E[x0 | x].

Following EDM (Karras et al. 2022, eq. 7 and Table 1), every parameterisation is written as

    D(x; sigma) = c_skip(sigma) * x + c_out(sigma) * net(c_in(sigma) * x, c_noise(sigma), **cond)

so samplers only ever see D, and networks never see sigma-dependent scalings. Here
x = x0 + sigma * noise (variance exploding), except for ``prediction="flow"`` where
x = (1 - t) * x0 + t * noise and the "sigma" argument is the time t.
"""

from collections.abc import Callable

import torch
from torch import nn

from lightvid.errors import LightvidError

PREDICTIONS = ("v", "eps", "x0", "edm", "flow")
NOISE_CONDITIONINGS = ("log4", "sigma")


class Denoiser(nn.Module):
    """Wrap ``net(x_in, c_noise, **cond) -> raw_output`` into D(x; sigma).

    Args:
        net: the network. ``x_in`` has the shape of x, ``c_noise`` is (b,). Conditioning kwargs
            (image latents, embeddings, ...) are passed through untouched; a net that concatenates
            image latents to its input (SVD) does so itself, after the c_in scaling.
        prediction: what the network predicts.
            "v"    v = (sigma_data * noise - sigma * x0 / sigma_data) / sqrt(sigma^2 + sigma_data^2),
                   i.e. alpha_t * noise - sigma_t * x0 for sigma_data = 1 (Salimans & Ho 2022; SVD);
            "eps"  the noise;
            "x0"   the clean sample;
            "edm"  EDM's F_theta (Karras et al. 2022, Table 1, "ours"), which equals -v;
            "flow" the rectified-flow velocity noise - x0; sigma means the time t in [0, 1].
        sigma_data: standard deviation of the data (1.0 for SVD latents; EDM uses 0.5 for pixels).
        noise_conditioning: how sigma is fed to the net: "log4" = 0.25 * ln(sigma) (EDM, SVD),
            "sigma" = sigma itself. Default: "sigma" for flow, else "log4".
    """

    def __init__(
        self,
        net: Callable[..., torch.Tensor],
        prediction: str = "v",
        sigma_data: float = 1.0,
        noise_conditioning: str | None = None,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise LightvidError(f"unknown prediction {prediction!r}; accepted: {', '.join(PREDICTIONS)}")
        if noise_conditioning is None:
            noise_conditioning = "sigma" if prediction == "flow" else "log4"
        if noise_conditioning not in NOISE_CONDITIONINGS:
            raise LightvidError(
                f"unknown noise_conditioning {noise_conditioning!r}; accepted: {', '.join(NOISE_CONDITIONINGS)}"
            )
        if not sigma_data > 0:
            raise LightvidError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.prediction = prediction
        self.sigma_data = float(sigma_data)
        self.noise_conditioning = noise_conditioning

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``(c_skip, c_out, c_in, c_noise)``, each with the shape of ``sigma``."""
        sd = self.sigma_data
        ones = torch.ones_like(sigma)
        if self.prediction == "flow":  # x0 = x_t - t * v
            c_skip, c_out, c_in = ones, -sigma, ones
        elif self.prediction == "eps":  # x0 = x - sigma * eps
            c_skip, c_out, c_in = ones, -sigma, 1.0 / (sigma**2 + 1.0) ** 0.5
        else:
            total = (sigma**2 + sd**2) ** 0.5  # std of x = x0 + sigma * noise
            c_in = 1.0 / total
            if self.prediction == "x0":
                c_skip, c_out = torch.zeros_like(sigma), ones
            elif self.prediction == "v":
                c_skip, c_out = sd**2 / total**2, -sigma * sd / total
            else:  # "edm"
                c_skip, c_out = sd**2 / total**2, sigma * sd / total
        if self.noise_conditioning == "sigma":
            c_noise = sigma
        else:  # "log4"
            c_noise = 0.25 * torch.log(sigma)
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """EDM training weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2.

        It makes the effective loss on the raw network output unit-weighted (Karras et al. 2022, eq. 8).
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, **cond) -> torch.Tensor:
        """D(x; sigma): the estimate of x0. x is (b, ...), sigma a float, 0-d or (b,) tensor."""
        coef_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        sigma = torch.as_tensor(sigma, dtype=coef_dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])  # (b,)
        if sigma.shape != (x.shape[0],):
            raise ValueError(
                f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}"
            )
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)  # each (b,)
        trailing = (1,) * (x.ndim - 1)
        c_skip, c_out, c_in = (c.view(-1, *trailing) for c in (c_skip, c_out, c_in))  # (b, 1, ..., 1)
        raw = self.net((c_in * x).to(x.dtype), c_noise, **cond)  # shape of x
        return (c_skip * x + c_out * raw).to(x.dtype)


def svd_denoiser(net: Callable[..., torch.Tensor]) -> Denoiser:
    """Stable Video Diffusion's preconditioning: v-prediction, sigma_data = 1, c_noise = 0.25 ln(sigma)."""
    return Denoiser(net, prediction="v", sigma_data=1.0, noise_conditioning="log4")
