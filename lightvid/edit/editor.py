"""Instruction editors: a network that denoises an edited image given the source image and an instruction
(InstructPix2Pix, arXiv 2211.09800), in k-diffusion form (x = x0 + σ·ε, the network preconditioned inside).

Two folder kinds load:
  lightvid   pipeline.json {"kind": "lightvid-editor", ...} + unet/ (a diffusers UNet2DConditionModel) +
             text_encoder/ (lightvid.models.text_encoder): pixel space, the image folded into 2x2 patches;
  diffusers  an InstructPix2Pix folder as diffusers saves it (model_index.json, unet/, vae/, text_encoder/ (CLIP),
             tokenizer/, scheduler/): latent space, the image latent is the VAE's mode (unscaled, as diffusers'
             StableDiffusionInstructPix2PixPipeline gives it).
Both: a DDPM training schedule (betas scaled_linear or linear), x0 ("sample"), epsilon or v prediction, the UNet's
input the noisy image (scaled by 1/√(σ²+1)) concatenated with the image condition.
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn
from torch.nn import functional as F

from lightvid.errors import LightvidError

from .instructions import check_instruction, known_instructions, words

PREDICTION_TYPES = ("sample", "epsilon", "v_prediction")


@dataclass(frozen=True)
class EditorSettings:
    kind: str = "lightvid-editor"
    patch: int = 2  # pixel space: the image as (3·patch², h/patch, w/patch); 0 = latent space (a VAE)
    prediction_type: str = "sample"  # x0; or "epsilon", "v_prediction"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    train_timesteps: int = 1000
    size: int = 256  # the longer side edits are made at
    steps: int = 10
    guidance_text: float = 1.0
    guidance_image: float = 1.0
    anchors: int = 3

    def __post_init__(self):
        problems = [f"prediction_type {self.prediction_type!r} (one of {', '.join(PREDICTION_TYPES)})"
                    if self.prediction_type not in PREDICTION_TYPES else "",
                    f"beta_schedule {self.beta_schedule!r} (scaled_linear or linear)"
                    if self.beta_schedule not in ("scaled_linear", "linear") else "",
                    f"patch {self.patch} (0 for a VAE, else 1 or more)" if self.patch < 0 else "",
                    f"train_timesteps {self.train_timesteps} (2 or more)" if self.train_timesteps < 2 else "",
                    f"size {self.size} (16 or more)" if self.size < 16 else "",
                    f"steps {self.steps} (1 or more)" if self.steps < 1 else "",
                    f"anchors {self.anchors} (0 or more)" if self.anchors < 0 else ""]
        problems = [p for p in problems if p]
        if problems:
            raise LightvidError(f"editor settings: {'; '.join(problems)}")


def training_sigmas(s: EditorSettings) -> torch.Tensor:
    """σ_t = √((1 - ᾱ_t) / ᾱ_t) for t = 0 .. T-1 (float64)."""
    if s.beta_schedule == "scaled_linear":
        betas = torch.linspace(s.beta_start ** 0.5, s.beta_end ** 0.5, s.train_timesteps, dtype=torch.float64) ** 2
    elif s.beta_schedule == "linear":
        betas = torch.linspace(s.beta_start, s.beta_end, s.train_timesteps, dtype=torch.float64)
    else:
        raise LightvidError(f"beta schedule {s.beta_schedule!r}: lightvid reads scaled_linear and linear")
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def sampling_schedule(s: EditorSettings, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps (steps,), sigmas (steps + 1,)): timesteps evenly spaced from T-1 down to 0 and their σ
    interpolated from the training table, then σ = 0 (diffusers' "linspace" spacing)."""
    table = training_sigmas(s)
    t = torch.linspace(s.train_timesteps - 1, 0, steps, dtype=torch.float64)
    low = t.floor().long()
    high = (low + 1).clamp(max=s.train_timesteps - 1)
    sigmas = torch.lerp(table[low], table[high], t - low)
    return t.float(), torch.cat([sigmas, sigmas.new_zeros(1)]).float()


class Editor(nn.Module):
    """unet + text encoder (+ VAE), and the settings they were trained with."""

    def __init__(self, unet, text_encoder, settings: EditorSettings, vae=None, tokenizer=None):
        super().__init__()
        self.unet, self.text_encoder, self.vae, self.tokenizer = unet, text_encoder, vae, tokenizer
        self.settings = settings
        self.register_buffer("sigma_table", training_sigmas(settings).float(), persistent=False)

    # --- conditions -------------------------------------------------------------------------------------------

    def encode_text(self, instructions: list[str]) -> torch.Tensor:
        """Instructions -> (b, tokens, d) context; "" is the unconditional context."""
        if self.tokenizer is not None:  # CLIP
            ids = self.tokenizer(instructions, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            return self.text_encoder(ids)[0]
        from lightvid.models.text_encoder import UnknownWords
        try:
            ids = self.text_encoder.tokenize([words(i) for i in instructions])
        except UnknownWords as e:
            raise LightvidError(f"this editor cannot read the instruction ({e}); it knows: {known_instructions()} "
                                "(and paraphrases of them)") from None
        return self.text_encoder(ids)

    def check_instruction(self, instruction: str) -> None:
        """A clear error before any work for an instruction this editor cannot read."""
        check_instruction(instruction)
        self.encode_text([instruction])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(b, 3, h, w) in [-1, 1] -> the image condition (b, c, h', w')."""
        if self.vae is not None:
            return self.vae.encode(images).latent_dist.mode()
        return F.pixel_unshuffle(images, self.settings.patch)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Denoised samples -> (b, 3, h, w) in [-1, 1]."""
        if self.vae is not None:
            return self.vae.decode(x / self.vae.config.scaling_factor).sample.clamp(-1, 1)
        return F.pixel_shuffle(x, self.settings.patch).clamp(-1, 1)

    @property
    def pixel_multiple(self) -> int:
        """Frame sides must be multiples of this: the UNet's downsamplings times the patch / VAE factor."""
        down = 2 ** (len(self.unet.config.block_out_channels) - 1)
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else self.settings.patch
        return down * factor

    def sample_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(channels, h, w) of a sample for a (height, width) frame."""
        if self.vae is not None:
            f = 2 ** (len(self.vae.config.block_out_channels) - 1)
            return self.vae.config.latent_channels, height // f, width // f
        p = self.settings.patch
        return 3 * p * p, height // p, width // p

    # --- denoising --------------------------------------------------------------------------------------------

    def network_output(self, x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor, image: torch.Tensor,
                       context: torch.Tensor) -> torch.Tensor:
        """The UNet's raw output for noisy x = x0 + σ·ε (b, c, h, w); sigma, t: (b,)."""
        c_in = (sigma ** 2 + 1).rsqrt().view(-1, 1, 1, 1)
        return self.unet(torch.cat([x * c_in, image], dim=1), t, context).sample

    def to_x0(self, x: torch.Tensor, sigma: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        sigma = sigma.view(-1, 1, 1, 1)
        if self.settings.prediction_type == "sample":
            return output
        if self.settings.prediction_type == "epsilon":
            return x - sigma * output
        # v = α·ε - s·x0 in variance-preserving units (α = 1/√(σ²+1), s = σ·α): x0 = α·x_vp - s·v, x_vp = α·x
        alpha = (sigma ** 2 + 1).rsqrt()
        return alpha * alpha * x - sigma * alpha * output

    def target(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """What the UNet is trained to output for x = x0 + σ·noise."""
        if self.settings.prediction_type == "sample":
            return x0
        if self.settings.prediction_type == "epsilon":
            return noise
        sigma = sigma.view(-1, 1, 1, 1)
        alpha = (sigma ** 2 + 1).rsqrt()
        return alpha * noise - sigma * alpha * x0

    def denoise(self, x, sigma: float, t: float, image, context, guidance_text: float,
                guidance_image: float, null_context: torch.Tensor | None = None) -> torch.Tensor:
        """x0 for x (f, c, h, w), with InstructPix2Pix's two guidance scales. `context` (1, n, d) and `image`
        (f, c, h, w) are the full conditions; the other branches use "" (`null_context`, encoded if None) and a zero
        image. One branch when both scales are 1, else three, group-major [full, image only, neither] (see
        edit.anchor's batch layout)."""
        f = x.shape[0]
        one = x.new_ones(f)
        if guidance_text == 1.0 and guidance_image == 1.0:
            out = self.network_output(x, sigma * one, t * one, image, context.expand(f, -1, -1))
            return self.to_x0(x, sigma * one, out)
        null = self.encode_text([""]) if null_context is None else null_context
        contexts = torch.cat([context.expand(f, -1, -1), null.expand(2 * f, -1, -1)])
        images = torch.cat([image, image, torch.zeros_like(image)])
        ones = x.new_ones(3 * f)
        x0 = self.to_x0(x.repeat(3, 1, 1, 1), sigma * ones,
                        self.network_output(x.repeat(3, 1, 1, 1), sigma * ones, t * ones, images, contexts))
        full, image_only, neither = x0.chunk(3)
        return neither + guidance_image * (image_only - neither) + guidance_text * (full - image_only)

    # --- folders ----------------------------------------------------------------------------------------------

    def save_pretrained(self, folder: Path) -> None:
        if self.vae is not None:
            raise LightvidError("save_pretrained writes lightvid editors; a diffusers folder is saved by diffusers")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet")
        self.text_encoder.save_pretrained(folder / "text_encoder")
        (folder / "pipeline.json").write_text(json.dumps(asdict(self.settings), indent=1))

    @classmethod
    def from_pretrained(cls, folder: Path) -> "Editor":
        """A lightvid editor folder or an InstructPix2Pix folder in diffusers format; anything else, or a folder
        whose files do not load (from safetensors only), is a LightvidError."""
        folder = Path(folder)
        try:
            if (folder / "model_index.json").is_file():
                return _load_diffusers(folder)
            return _load_lightvid(folder)
        except LightvidError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, SafetensorError) as e:
            # a broken file in a folder of the right kind: JSON, safetensors, tensor shapes, config fields
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise LightvidError(f"{folder}: the editor does not load ({message})") from None


def _load_lightvid(folder: Path) -> Editor:
    settings_file = folder / "pipeline.json"
    raw = json.loads(settings_file.read_text()) if settings_file.is_file() else None
    if not isinstance(raw, dict) or raw.get("kind") != "lightvid-editor":
        raise LightvidError(f"{folder}: not an editor folder (a lightvid editor has pipeline.json with kind "
                            "lightvid-editor; an InstructPix2Pix folder in diffusers format has model_index.json)")
    from diffusers import UNet2DConditionModel

    from lightvid.models.text_encoder import TextEncoder
    settings = EditorSettings(**raw)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True)
    _check_channels(folder, unet, 3 * settings.patch ** 2)
    return Editor(unet, TextEncoder.from_pretrained(folder / "text_encoder"), settings).eval()


def _check_channels(folder: Path, unet, channels: int) -> None:
    """An editor's UNet reads the noisy sample and the image condition (2 x channels) and predicts one sample."""
    if (unet.config.in_channels, unet.config.out_channels) != (2 * channels, channels):
        raise LightvidError(f"{folder}: the UNet has {unet.config.in_channels} input and {unet.config.out_channels} "
                            f"output channels; an editor's has {2 * channels} (noisy + image) and {channels}")


def _load_diffusers(folder: Path) -> Editor:
    """An InstructPix2Pix folder in diffusers format, from safetensors only."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    missing = [p for p in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if not (folder / p).is_dir()]
    if missing:
        raise LightvidError(f"{folder}: an InstructPix2Pix folder needs {', '.join(missing)}/")
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    settings = EditorSettings(kind="diffusers", patch=0, prediction_type=scheduler.get("prediction_type", "epsilon"),
                              beta_start=scheduler.get("beta_start", 0.00085),
                              beta_end=scheduler.get("beta_end", 0.012),
                              beta_schedule=scheduler.get("beta_schedule", "scaled_linear"),
                              train_timesteps=scheduler.get("num_train_timesteps", 1000), size=512,
                              guidance_text=7.5, guidance_image=1.5)
    if settings.prediction_type not in PREDICTION_TYPES:
        raise LightvidError(f"{folder}: prediction type {settings.prediction_type!r}; lightvid reads "
                            f"{', '.join(PREDICTION_TYPES)}")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True)
    vae = AutoencoderKL.from_pretrained(folder / "vae", use_safetensors=True)
    _check_channels(folder, unet, vae.config.latent_channels)
    text = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    return Editor(unet, text, settings, vae, tokenizer).eval()
