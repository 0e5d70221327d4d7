"""Image-to-video with a diffusers-format Stable Video Diffusion folder, running lightvid's own UNet.

Folder layout (what `StableVideoDiffusionPipeline.save_pretrained` writes): model_index.json, unet/, vae/,
image_encoder/, feature_extractor/, scheduler/. Same seed and settings give diffusers' frames (to 1e-3):
the same random draws in the same order, the same EDM v-prediction Euler steps.
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lightvid.diffusion import cfg_model, get_sampler, svd_denoiser, svd_guidance_ramp, svd_sigmas
from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet
from lightvid.models.fold import fold_cross_attention
from lightvid.tasks import FrameSpec

from .decode import decode_in_chunks
from .image_ops import antialiased_resize

REQUIRED = ("model_index.json", "unet", "vae", "image_encoder", "feature_extractor")


@dataclass
class SVDSettings:
    """Generation settings, with SVD's defaults (diffusers' `StableVideoDiffusionPipeline.__call__`)."""
    steps: int = 25
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    decode_chunk_size: int | None = None  # None: all frames at once (SVD's temporal decoder sees the clip)
    sampler: str = "euler"


class SVDPipeline:
    def __init__(self, unet: SpaceTimeUNet, vae, image_encoder, clip_mean, clip_std, default_frames: int = 14):
        self.unet, self.vae, self.image_encoder = unet, vae, image_encoder
        self.clip_mean = torch.tensor(clip_mean).view(1, 3, 1, 1)
        self.clip_std = torch.tensor(clip_std).view(1, 3, 1, 1)
        self.default_frames = default_frames
        self.latent_scale = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, folder, unet_dtype: torch.dtype = torch.float32, compile: bool = False) -> "SVDPipeline":
        """Load every component from a local folder (never the network).

        `unet_dtype=torch.bfloat16` runs the UNet (the bulk of the work) in bf16; the sampler state, the VAE and
        the image encoder stay float32. `compile` wraps the UNet in `torch.compile` (slow first call).
        Both fast paths have their error against the float32 eager path bounded in tests.
        """
        folder = Path(folder)
        missing = [name for name in REQUIRED if not (folder / name).exists()]
        if missing:
            raise LightvidError(f"{folder}: not an SVD pipeline folder (missing {', '.join(missing)})")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from diffusers import AutoencoderKLTemporalDecoder
        from transformers import CLIPVisionModelWithProjection
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            vae = AutoencoderKLTemporalDecoder.from_pretrained(folder / "vae", use_safetensors=True,
                                                               torch_dtype=torch.float32)
            encoder = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", use_safetensors=True,
                                                                    torch_dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise LightvidError(f"{folder}: cannot load the VAE / image encoder ({str(e).splitlines()[0]})") from None
        extractor = _read_json(folder / "feature_extractor" / "preprocessor_config.json")
        if not {"image_mean", "image_std"} <= set(extractor):
            raise LightvidError(f"{folder}/feature_extractor: preprocessor_config.json lacks image_mean/image_std")
        frames = _read_json(folder / "unet" / "config.json").get("num_frames", 14)
        unet = fold_cross_attention(SpaceTimeUNet.from_pretrained(folder / "unet", dtype=unet_dtype))  # exact
        if compile:
            unet = torch.compile(unet)
        return cls(unet, vae.eval(), encoder.eval(),
                   extractor["image_mean"], extractor["image_std"], default_frames=frames)

    # -- conditioning -------------------------------------------------------------------------------

    def encode_image_token(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [-1, 1] -> CLIP image embedding as one context token (1, 1, d)."""
        pixels = (antialiased_resize(image, (224, 224)) + 1) / 2
        pixels = (pixels - self.clip_mean) / self.clip_std
        return self.image_encoder(pixels).image_embeds.unsqueeze(1)

    def encode_latents(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.mode()

    def decode(self, latents: torch.Tensor, chunk: int | None) -> torch.Tensor:
        """(f, c, h, w) latents -> (f, 3, H, W) frames in [-1, 1], `chunk` frames per decoder call."""
        latents = latents / self.vae.config.scaling_factor
        return decode_in_chunks(lambda z: self.vae.decode(z, num_frames=z.shape[0]).sample, latents, chunk)

    # -- generation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, spec: FrameSpec, settings: SVDSettings = SVDSettings(),
                 generator: torch.Generator | None = None, progress: bool | None = None) -> torch.Tensor:
        """Generate `spec.num_frames` frames from the image at frame 0: returns (f, 3, H, W) in [-1, 1]."""
        image = self._check_spec(spec)[None]  # (1, 3, H, W)
        f = spec.num_frames
        dtype = next(self.unet.parameters()).dtype
        context = self.encode_image_token(image)
        # Noise augmentation of the conditioning image, then its latent: the draw order matches diffusers'.
        noisy_image = image + settings.noise_aug_strength * torch.randn(image.shape, generator=generator)
        image_latents = self.encode_latents(noisy_image)[:, None].expand(-1, f, -1, -1, -1)
        time_ids = torch.tensor([[spec.fps - 1, settings.motion_bucket_id, settings.noise_aug_strength]])

        def net(x_in, c_noise, image_latents, context, time_ids):  # the UNet in its dtype, the sampler in fp32
            sample = torch.cat([x_in, image_latents], dim=2).to(dtype)
            return self.unet(sample, c_noise, context.to(dtype), time_ids).float()

        model = cfg_model(svd_denoiser(net),
                          cond=dict(image_latents=image_latents, context=context, time_ids=time_ids),
                          uncond=dict(image_latents=torch.zeros_like(image_latents),
                                      context=torch.zeros_like(context), time_ids=time_ids),
                          # diffusers turns guidance off entirely when max_guidance <= 1
                          scale=svd_guidance_ramp(f, settings.min_guidance, settings.max_guidance)
                          if settings.max_guidance > 1 else 1.0)
        sigmas = svd_sigmas(settings.steps)
        latent_hw = (image.shape[-2] // self.latent_scale, image.shape[-1] // self.latent_scale)
        shape = (1, f, image_latents.shape[2], *latent_hw)
        # diffusers scales SVD's first noise by sqrt(σ_max² + 1) ("leading" spacing); keep it for parity.
        x = torch.randn(shape, generator=generator) * (sigmas[0] ** 2 + 1) ** 0.5
        latents = get_sampler(settings.sampler)(model, x, sigmas, generator=generator, disable=progress is False)
        return self.decode(latents[0], settings.decode_chunk_size).clamp(-1, 1)

    def _check_spec(self, spec: FrameSpec) -> torch.Tensor:
        if sorted(spec.given) != [0] or spec.masks:
            raise LightvidError("SVD checkpoints do image-to-video only (one given image at frame 0); "
                                f"this task gives frames {sorted(spec.given)} — use a native lightvid model for it")
        image = spec.given[0]
        h, w = image.shape[-2:]
        if h % self.latent_scale or w % self.latent_scale:
            raise LightvidError(f"SVD needs height and width divisible by {self.latent_scale}, got {h}x{w}")
        return image


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LightvidError(f"{path}: unreadable ({e})") from None
