"""Image-to-video with a diffusers-format Stable Video Diffusion folder, running lightvid's own UNet.

Folder layout (what `StableVideoDiffusionPipeline.save_pretrained` writes): model_index.json, unet/, vae/,
image_encoder/, feature_extractor/, scheduler/. Same seed and settings give diffusers' frames (to 1e-3):
the same random draws in the same order, the same EDM v-prediction Euler steps.
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lightvid.diffusion import cfg_model, get_sampler, svd_denoiser, svd_guidance_ramp, svd_sigmas
from lightvid.errors import LightvidError
from lightvid.models import SpaceTimeUNet, read_config, unet_folder
from lightvid.models.checkpoint import read_json_object, validate_index
from lightvid.models.config import check_fields, short_repr
from lightvid.models.fold import fold_cross_attention
from lightvid.tasks import FrameSpec

from .decode import decode_in_chunks
from .image_ops import antialiased_resize

REQUIRED = ("model_index.json", "unet", "vae", "image_encoder", "feature_extractor")
PIPELINE_CLASS = "StableVideoDiffusionPipeline"
_MEAN_STD = ("list", ("number", -math.inf, math.inf), 1)
# The fields lightvid reads from the components' config files (diffusers / transformers read the rest themselves).
EXTRACTOR_RULES = {"image_mean": _MEAN_STD, "image_std": _MEAN_STD}
VAE_RULES = {"block_out_channels": ("list", ("int", 1, 2 ** 16), 1), "latent_channels": ("int", 1, 2 ** 16),
             "scaling_factor": ("number", 0, 1e6)}
ENCODER_RULES = {"projection_dim": ("int", 1, 2 ** 16)}


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
        index = read_json_object(folder / "model_index.json", "pipeline index")
        if index.get("_class_name", PIPELINE_CLASS) != PIPELINE_CLASS:
            kind = short_repr(index["_class_name"])
            raise LightvidError(f"{folder / 'model_index.json'}: pipeline class {kind} is not "
                                f"supported (accepted: {PIPELINE_CLASS})")
        for name in REQUIRED[1:]:
            if not (folder / name).is_dir():
                raise LightvidError(f"{folder / name}: not a folder (an SVD pipeline folder has {', '.join(REQUIRED)})")
        # Every config lightvid reads, and the UNet's weights, are checked before the (slower) components load.
        extractor = _checked(folder / "feature_extractor" / "preprocessor_config.json", EXTRACTOR_RULES, required=True)
        for name in ("image_mean", "image_std"):  # one per RGB channel; a std divides
            if len(extractor[name]) != 3 or (name == "image_std" and min(extractor[name]) <= 0):
                raise LightvidError(f"{folder / 'feature_extractor' / 'preprocessor_config.json'}: '{name}' must be 3 "
                                    f"numbers{' > 0' if name == 'image_std' else ''}, "
                                    f"got {short_repr(extractor[name])}")
        vae_config = _checked(folder / "vae" / "config.json", VAE_RULES)
        encoder_config = _checked(folder / "image_encoder" / "config.json", ENCODER_RULES)
        config = read_config(folder / "unet")
        _check_components(folder, config, vae_config, encoder_config)
        frames = read_json_object(unet_folder(folder / "unet") / "config.json").get("num_frames", 14)  # checked
        validate_index(folder / "vae", "diffusion_pytorch_model.safetensors")
        validate_index(folder / "image_encoder", "model.safetensors")
        unet = fold_cross_attention(SpaceTimeUNet.from_pretrained(folder / "unet", dtype=unet_dtype))  # exact
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from diffusers import AutoencoderKLTemporalDecoder
        from transformers import CLIPVisionModelWithProjection
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        components = {}
        for name, kind in (("vae", AutoencoderKLTemporalDecoder), ("image_encoder", CLIPVisionModelWithProjection)):
            try:
                components[name] = kind.from_pretrained(folder / name, use_safetensors=True,
                                                        torch_dtype=torch.float32).eval()
            except Exception as e:  # noqa: BLE001 - any failure of a third-party loader on a bad folder: one line
                message = " ".join(str(e).split())[:200] or type(e).__name__
                raise LightvidError(f"{folder / name}: cannot load it ({message})") from None
            for key, value in components[name].state_dict().items():
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise LightvidError(f"{folder / name}: tensor {short_repr(key)} holds NaN or infinite values")
        vae, encoder = components["vae"], components["image_encoder"]
        if compile:
            unet = torch.compile(unet)
        return cls(unet, vae, encoder,
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


def _checked(path: Path, rules: dict, required: bool = False) -> dict:
    """A component's config file, its fields that lightvid reads checked (all present when `required`)."""
    config = read_json_object(path, "component config")
    absent = [name for name in rules if name not in config]
    if required and absent:
        raise LightvidError(f"{path}: lacks {', '.join(absent)}")
    check_fields(config, rules, f"{path}: ")
    return config


def _check_components(folder: Path, unet, vae: dict, encoder: dict) -> None:
    """The UNet must fit the VAE's latents and the image encoder's token, and take SVD's 3 added time ids."""
    latent = vae.get("latent_channels", 4)
    if (unet.in_channels, unet.out_channels) != (2 * latent, latent):
        raise LightvidError(f"{folder / 'unet'}: the UNet takes {unet.in_channels} channels in and "
                            f"{unet.out_channels} out; the VAE's {latent} latent channels need {2 * latent} "
                            f"and {latent}")
    token = encoder.get("projection_dim", 512)
    if unet.cross_attention_dim != token:
        raise LightvidError(f"{folder / 'unet'}: cross_attention_dim {unet.cross_attention_dim} does not match the "
                            f"image encoder's projection_dim {token}")
    if unet.num_added_time_ids != 3:
        raise LightvidError(f"{folder / 'unet'}: SVD's UNet takes 3 added time ids (fps, motion bucket, noise "
                            f"augmentation), this one {unet.num_added_time_ids}")
