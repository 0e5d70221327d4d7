"""Every task with one native lightvid model: the FrameSpec's given frames become conditioning channels.

A native model folder holds the UNet (config.json + model.safetensors) and `pipeline.json`: the frame format
it was trained on and its sampling defaults. Pixel-space models (Moving MNIST, small photo models) need no VAE.
"""
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from lightvid.diffusion import Denoiser, cfg_model, get_sampler, karras_sigmas, student_sigmas
from lightvid.errors import LightvidError
from lightvid.io import atomic_write
from lightvid.models import SpaceTimeUNet
from lightvid.models.native import NATIVE_MODES, PREDICTIONS, NativeNet
from lightvid.tasks import FrameSpec

PIPELINE_FILE = "pipeline.json"


def _read_pipeline_file(folder: Path) -> dict:
    if not (folder / PIPELINE_FILE).exists():
        raise LightvidError(f"{folder}: not a native lightvid model folder (no {PIPELINE_FILE})")
    try:
        saved = json.loads((folder / PIPELINE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LightvidError(f"{folder / PIPELINE_FILE}: not a valid pipeline file ({e})") from None
    if not isinstance(saved, dict):
        raise LightvidError(f"{folder / PIPELINE_FILE}: not a valid pipeline file (not a JSON object)")
    return saved


@dataclass
class NativeSettings:
    """What a native model was trained on, and how to sample it by default."""
    data_channels: int = 3
    patch: int = 1  # p×p pixels folded into channels before the UNet (see models/native.py)
    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: float = 8.0
    sigma_data: float = 0.5
    prediction: str = "edm"  # what the network outputs: edm, x0 or hint_residual (see models/native.py)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    steps: int = 25
    sampler: str = "heun"

    @classmethod
    def from_dict(cls, d: dict) -> "NativeSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class NativePipeline:
    def __init__(self, unet: SpaceTimeUNet, settings: NativeSettings, facts: dict | None = None):
        if unet.config.conditioning not in NATIVE_MODES:
            raise LightvidError(f"this model is not a native lightvid model (conditioning "
                                f"'{unet.config.conditioning}', not one of {', '.join(NATIVE_MODES)})")
        self.unet, self.settings = unet, settings
        self.facts = facts or {}  # what pipeline.json says beyond the settings: trained_steps, dataset
        if settings.prediction not in PREDICTIONS:
            raise LightvidError(f"{PIPELINE_FILE}: prediction '{settings.prediction}' is not one of "
                                f"{', '.join(PREDICTIONS)}")
        net = NativeNet(unet, settings.patch, hint_skip=settings.prediction == "hint_residual")
        self.denoiser = Denoiser(net, prediction=PREDICTIONS[settings.prediction], sigma_data=settings.sigma_data)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype = torch.float32) -> "NativePipeline":
        folder = Path(folder)
        saved = _read_pipeline_file(folder)
        try:
            settings = NativeSettings.from_dict(saved)
        except (TypeError, AttributeError) as e:
            raise LightvidError(f"{folder / PIPELINE_FILE}: not a valid pipeline file ({e})") from None
        facts = {k: v for k, v in saved.items() if k not in asdict(settings)}
        return cls(SpaceTimeUNet.from_pretrained(folder, dtype=dtype), settings, facts)

    @classmethod
    def for_sampling(cls, model: str | Path, steps: int | None = None, sampler: str | None = None,
                     dtype: torch.dtype = torch.float32) -> tuple["NativePipeline", str, str | None]:
        """What a command samples for `--model model --steps steps --sampler sampler`: (pipeline, the name of
        what was loaded, a note for the user when that is not `model` itself, else None). dtype: the network's
        (float32, the exact reference, or bfloat16, the fast path of `--bf16`).

        A model whose pipeline.json names a `student` (a few-step model distilled from it, kept in that subfolder)
        samples with the student unless the user chose --steps or --sampler: those mean the model itself. A
        student is trained for its own step count and sampler only, so a student folder asked for other ones
        hands over to its teacher (`distilled_from`).
        """
        from lightvid.weights import model_folder
        folder = model_folder(model)
        saved = _read_pipeline_file(folder)
        student, teacher = saved.get("student"), saved.get("distilled_from")
        chosen = steps is not None or sampler is not None
        if student is not None and not chosen:
            if not isinstance(student, str) or not (folder / student / PIPELINE_FILE).exists():
                raise LightvidError(f"{folder / PIPELINE_FILE} names the student {student!r}, which is not a "
                                    f"model folder in {folder}")
            pipe, used = cls.from_pretrained(folder / student, dtype), f"{model}/{student}"
            return pipe, used, (f"sampling with {used}, the {pipe.settings.steps}-step student distilled from "
                                f"{model} (--steps N samples {model} itself)")
        own = (saved.get("steps"), saved.get("sampler"))
        if teacher is not None and chosen and (steps or own[0], sampler or own[1]) != own:
            teacher_pipe = cls.from_pretrained(model_folder(teacher), dtype)
            return teacher_pipe, str(teacher), f"sampling with the teacher {teacher}"
        return cls.from_pretrained(folder, dtype), str(model), None

    def save_pretrained(self, folder, extra: dict | None = None) -> None:
        """UNet files + pipeline.json (plus `extra` facts such as training steps, kept for the model card)."""
        self.unet.save_pretrained(folder)
        with atomic_write(Path(folder) / PIPELINE_FILE) as tmp:
            Path(tmp).write_text(json.dumps({**asdict(self.settings), **self.facts, **(extra or {})}, indent=2))

    @torch.no_grad()
    def __call__(self, spec: FrameSpec, steps: int | None = None, sampler: str | None = None,
                 guidance: float = 1.0, generator: torch.Generator | None = None,
                 progress: bool | None = None) -> torch.Tensor:
        """Generate the frames `spec` does not give: returns (output_frames, 3, H, W) in [-1, 1]."""
        s = self.settings
        given, mask = spec.conditioning()  # (F, 3, H, W), (F, 1, H, W)
        if given.shape[-2] % s.patch or given.shape[-1] % s.patch:
            raise LightvidError(f"this model needs height and width divisible by {s.patch}, "
                                f"got {given.shape[-2]}x{given.shape[-1]}")
        if s.data_channels == 1:  # grayscale models (Moving MNIST) see luminance; output is repeated to RGB
            given = given.mean(dim=1, keepdim=True)
        cond = {"given": given[None], "mask": mask[None]}
        guided = cfg_model(self.denoiser, cond=cond, uncond={k: torch.zeros_like(v) for k, v in cond.items()},
                           scale=guidance)

        def model(x, sigma):  # given pixels are known exactly: the sampler state there stays given + σ·noise
            return cond["mask"] * cond["given"] + (1 - cond["mask"]) * guided(x, sigma)

        sampler = sampler or s.sampler
        schedule = student_sigmas if sampler == "renoise" else karras_sigmas  # few-step students: their own levels
        sigmas = schedule(steps or s.steps, s.sigma_min, s.sigma_max)
        start = self.denoiser.net.start(cond["given"], cond["mask"])  # (1, F, c, H, W)
        x = start + torch.randn((1, *given.shape), generator=generator) * sigmas[0]
        out = get_sampler(sampler)(model, x, sigmas, generator=generator, disable=progress is False)
        frames = out[0].clamp(-1, 1).expand(-1, 3, -1, -1)
        return spec.compose(frames)
