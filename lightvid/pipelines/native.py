"""Every task with one native lightvid model: the FrameSpec's given frames become conditioning channels.

A native model folder holds the UNet (config.json + model.safetensors) and `pipeline.json`: the frame format it
was trained on, its conditioning (lightvid.conditioning.Conditioning), what the network predicts, and its sampling
defaults (`NativeSettings`). Pixel-space models (Moving MNIST, small photo models) need no VAE.
"""
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from lightvid.conditioning import PREDICTIONS, Conditioning
from lightvid.diffusion import SAMPLERS, Denoiser, cfg_model, get_sampler, karras_sigmas, student_sigmas
from lightvid.errors import LightvidError
from lightvid.io import atomic_write
from lightvid.models import MarDini, MarDiniConfig, load_network, read_config
from lightvid.models.checkpoint import read_json_object
from lightvid.models.config import check_fields, short_repr
from lightvid.models.executorch_network import ExecutorchNetwork
from lightvid.models.native import NativeNet, Network
from lightvid.models.onnx_network import OnnxNetwork
from lightvid.tasks import FrameSpec
from lightvid.tasks.framespec import MAX_FRAMES

from .multidiffusion import average_over_windows, temporal_windows

PIPELINE_FILE = "pipeline.json"
MAX_SIZE = 16384  # frame height / width: far above what runs on a CPU, low enough that a fuzzed file cannot OOM
MAX_STEPS = 10000
# who runs the denoising network: PyTorch (the exact reference), onnxruntime or the ExecuTorch runtime (the
# exported network in the model folder, lightvid.export)
RUNTIMES = ("torch", "onnx", "executorch")
# the types of a conditioning's values (Conditioning checks the choices); a list would not even be comparable
_CONDITIONING_TYPES = {"hint": ("str", None), "flow": ("str", None), "warp_weights": ("str", None),
                       "warp_inputs": ("bool",)}


def _read_pipeline_file(folder: Path) -> dict:
    if not (folder / PIPELINE_FILE).exists():
        raise LightvidError(f"{folder}: not a native lightvid model folder (no {PIPELINE_FILE})")
    saved = read_json_object(folder / PIPELINE_FILE, "pipeline file")
    for name in ("student", "distilled_from"):  # facts that name other models: see NativePipeline.for_sampling
        value = saved.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or "\n" in value):
            raise LightvidError(f"{folder / PIPELINE_FILE}: '{name}' must be a model's name or folder, got "
                                f"{short_repr(value)}")
    student = saved.get("student")
    if student is not None and (Path(student).name != student or student in (".", "..")):
        raise LightvidError(f"{folder / PIPELINE_FILE}: 'student' must be the name of a subfolder of {folder}, got "
                            f"{short_repr(student)}")
    return saved


@dataclass
class NativeSettings:
    """What a native model was trained on, what its network reads and predicts, and how to sample it by default:
    the contents of pipeline.json (less facts such as trained_steps), and the `pipeline:` section of a training
    config. Every value is checked on construction."""
    data_channels: int = 3  # 3 (RGB) or 1 (grayscale models, e.g. Moving MNIST: they see luminance)
    patch: int = 1  # p×p pixels folded into channels before the UNet (see models/native.py)
    num_frames: int = 16  # the window the model was trained on
    height: int = 64
    width: int = 64
    fps: float = 8.0
    conditioning: Conditioning = field(default_factory=Conditioning)
    prediction: str = "edm"  # what the network outputs (lightvid.conditioning.PREDICTIONS)
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    steps: int = 25
    sampler: str = "heun"

    def __post_init__(self):
        if isinstance(self.conditioning, dict):
            check_fields(self.conditioning, _CONDITIONING_TYPES, "conditioning: ")
            self.conditioning = Conditioning.from_dict(self.conditioning)
        if not isinstance(self.conditioning, Conditioning):
            raise LightvidError(f"conditioning must be a mapping, got {short_repr(self.conditioning)}")
        highest = {"patch": 64, "num_frames": MAX_FRAMES, "height": MAX_SIZE, "width": MAX_SIZE, "steps": MAX_STEPS}
        for name, high in highest.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise LightvidError(f"{name} must be an integer >= 1 (at most {high}), got {short_repr(value)}")
        if self.data_channels not in (1, 3) or not isinstance(self.data_channels, int) \
                or isinstance(self.data_channels, bool):
            raise LightvidError(f"data_channels must be 1 or 3, got {short_repr(self.data_channels)}")
        for name in ("prediction", "sampler"):
            if not isinstance(getattr(self, name), str):
                raise LightvidError(f"{name} must be a string, got {short_repr(getattr(self, name))}")
        numbers = {"fps": self.fps, "sigma_data": self.sigma_data, "sigma_min": self.sigma_min,
                   "sigma_max": self.sigma_max}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise LightvidError(f"{name} must be a finite number > 0, got {short_repr(value)}")
        if self.sigma_min >= self.sigma_max:
            raise LightvidError(f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")
        if self.sampler not in SAMPLERS:
            raise LightvidError(f"sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}")
        self.conditioning.check_prediction(self.prediction)

    @classmethod
    def from_dict(cls, d: dict) -> "NativeSettings":
        """Settings from a mapping that may hold other keys too (pipeline.json's facts); a wrong type is one line."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except (TypeError, AttributeError) as e:
            raise LightvidError(str(e)) from None

    def to_dict(self) -> dict:
        return {**asdict(self), "conditioning": self.conditioning.to_dict()}

    def check_frame_size(self) -> None:
        """height and width must be multiples of patch (a training config's settings take them from its data, so
        this is checked where they are known: on load and when training starts)."""
        if self.height % self.patch or self.width % self.patch:
            raise LightvidError(f"height and width ({self.height}x{self.width}) must be multiples of patch "
                                f"{self.patch}")


def read_settings(folder: Path) -> tuple[NativeSettings, dict]:
    """A native model folder's (settings, facts: what pipeline.json says beyond the settings).

    An older folder keeps its conditioning in config.json (`conditioning` mode and `flow`, see
    Conditioning.from_legacy): it is translated here, on load."""
    saved = _read_pipeline_file(folder)
    if "conditioning" not in saved:
        legacy = read_json_object(folder / "config.json", "model config")
        if "conditioning" not in legacy:
            raise LightvidError(f"{folder / PIPELINE_FILE}: no 'conditioning' (and config.json names none)")
        mode, flow = legacy["conditioning"], legacy.get("flow", "farneback")
        if not isinstance(mode, str) or not isinstance(flow, str):
            raise LightvidError(f"{folder / 'config.json'}: 'conditioning' and 'flow' must be strings, got "
                                f"{short_repr(mode)} and {short_repr(flow)}")
        try:
            conditioning = Conditioning.from_legacy(mode, flow)
        except LightvidError as e:
            raise LightvidError(f"{folder}: {e}") from None
        saved = {**saved, "conditioning": conditioning}
    try:
        settings = NativeSettings.from_dict(saved)
        settings.check_frame_size()
    except LightvidError as e:
        raise LightvidError(f"{folder / PIPELINE_FILE}: {e}") from None
    return settings, {k: v for k, v in saved.items() if k not in settings.to_dict()}


def check_runtime(runtime: str, dtype: torch.dtype = torch.float32) -> None:
    if runtime not in RUNTIMES:
        raise LightvidError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime != "torch" and dtype != torch.float32:
        raise LightvidError(f"the {runtime} runtime runs the network as exported (float32, or int8 when exported "
                            "with --quantize int8); --bf16 applies to the torch runtime only")


def restyle_sigma(strength: float, sigma_min: float, sigma_max: float, rho: float = 7.0) -> float:
    """The noise level at `strength` in (0, 1] of the way from sigma_min up to sigma_max, in Karras' rho-ramp (the
    spacing the samplers step in): 1 gives sigma_max, values near 0 a level just above sigma_min."""
    if not 0 < strength <= 1:
        raise LightvidError(f"strength must be in (0, 1], got {strength}")
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return max((low + strength * (high - low)) ** rho, sigma_min * (1 + 1e-3))  # above sigma_min: a real step


class NativePipeline:
    def __init__(self, unet: Network, settings: NativeSettings, facts: dict | None = None):
        expected = settings.conditioning.channels(settings.data_channels, settings.patch)
        if (unet.config.in_channels, unet.config.out_channels) != expected:
            raise LightvidError(f"the network takes {unet.config.in_channels} channels in and "
                                f"{unet.config.out_channels} out; this model's conditioning needs {expected[0]} "
                                f"and {expected[1]} (data_channels {settings.data_channels}, patch {settings.patch})")
        self.unet, self.settings = unet, settings
        self.facts = facts or {}  # what pipeline.json says beyond the settings: trained_steps, dataset
        net = NativeNet(unet, settings.conditioning, settings.prediction, settings.patch)
        self.denoiser = Denoiser(net, prediction=PREDICTIONS[settings.prediction], sigma_data=settings.sigma_data)

    @classmethod
    def from_pretrained(cls, folder, dtype: torch.dtype = torch.float32, runtime: str = "torch") -> "NativePipeline":
        """The model in `folder`; runtime: "torch" (the exact reference, the network in `dtype`), "onnx" or
        "executorch" (the folder's export of the network, from `lightvid export --format onnx|executorch`, run by
        onnxruntime or the ExecuTorch runtime as exported)."""
        folder = Path(folder)
        check_runtime(runtime, dtype)
        settings, facts = read_settings(folder)
        if runtime != "torch" and isinstance(read_config(folder), MarDiniConfig):
            raise LightvidError(f"{folder}: a MarDini model (planner + generator) runs with the torch runtime only; "
                                "the onnx and executorch exports cover SpaceTimeUNet models")
        if runtime == "onnx":
            unet = OnnxNetwork(folder, read_config(folder))
        elif runtime == "executorch":
            unet = ExecutorchNetwork(folder, read_config(folder))
        else:
            unet = load_network(folder, dtype=dtype)
        try:
            return cls(unet, settings, facts)
        except LightvidError as e:  # config.json and pipeline.json disagree
            raise LightvidError(f"{folder / PIPELINE_FILE}: {e}") from None

    @classmethod
    def for_sampling(cls, model: str | Path, steps: int | None = None, sampler: str | None = None,
                     dtype: torch.dtype = torch.float32, runtime: str = "torch"
                     ) -> tuple["NativePipeline", str, str | None]:
        """What a command samples for `--model model --steps steps --sampler sampler`: (pipeline, the name of
        what was loaded, a note for the user when that is not `model` itself, else None). dtype: the network's
        (float32, the exact reference, or bfloat16, the fast path of `--bf16`); runtime: see from_pretrained.

        A model whose pipeline.json names a `student` (a few-step model distilled from it, kept in that subfolder)
        samples with the student unless the user chose --steps or --sampler: those mean the model itself. A
        student is trained for its own step count and sampler only, so a student folder asked for other ones
        hands over to its teacher (`distilled_from`).
        """
        from lightvid.weights import model_folder
        folder = model_folder(model)
        saved = _read_pipeline_file(folder)
        read_settings(folder)  # the folder's own settings are checked even when its student samples
        student, teacher = saved.get("student"), saved.get("distilled_from")
        chosen = steps is not None or sampler is not None
        if student is not None and not chosen:
            if not (folder / student / PIPELINE_FILE).exists():
                raise LightvidError(f"{folder / PIPELINE_FILE} names the student {student!r}, which is not a "
                                    f"model folder in {folder}")
            pipe, used = cls.from_pretrained(folder / student, dtype, runtime), f"{model}/{student}"
            return pipe, used, (f"sampling with {used}, the {pipe.settings.steps}-step student distilled from "
                                f"{model} (--steps N samples {model} itself)")
        own = (saved.get("steps"), saved.get("sampler"))
        if teacher is not None and chosen and (steps or own[0], sampler or own[1]) != own:
            teacher_pipe = cls.from_pretrained(model_folder(teacher), dtype, runtime)
            return teacher_pipe, str(teacher), f"sampling with the teacher {teacher}"
        return cls.from_pretrained(folder, dtype, runtime), str(model), None

    def save_pretrained(self, folder, extra: dict | None = None) -> None:
        """UNet files + pipeline.json (plus `extra` facts such as training steps, kept for the model card)."""
        if not isinstance(self.unet, torch.nn.Module):
            raise LightvidError("a pipeline running an exported network cannot be saved: load the model with "
                                "runtime='torch'")
        self.unet.save_pretrained(folder)
        with atomic_write(Path(folder) / PIPELINE_FILE) as tmp:
            Path(tmp).write_text(json.dumps({**self.settings.to_dict(), **self.facts, **(extra or {})}, indent=2))

    def _start(self, cond: dict) -> torch.Tensor:
        """Where sampling starts for this conditioning (a window's, with its hints, or the whole clip's)."""
        net = self.denoiser.net
        if "hints" not in cond:
            return net.start(cond["given"], cond["mask"])
        return net.conditioning.start(cond["hints"], net.prediction)

    def _window_conditioning(self, given: torch.Tensor, mask: torch.Tensor, windows: list[slice], guided: bool
                             ) -> tuple[list[slice], list[dict], list[dict]]:
        """(cond, uncond) of every window that has frames to make, for MultiDiffusion. The hints come from the whole
        clip, sliced per window: a window with no given frame still gets its hint (the nearest given frame, or the
        flow interpolation between two), as the network was trained to have one. Offsets are clamped to the
        window's length, the farthest the network saw in training. Windows of given frames only are dropped (the
        windows kept are returned first): their frames are pinned to the given ones whatever the network says.
        guided: whether classifier-free guidance needs the unconditional ones (else the conditional ones, unused)."""
        window = self.settings.num_frames
        hints = self.denoiser.net.hints(given, mask)
        hints = hints._replace(offset=hints.offset.clamp(1 - window, window - 1))
        conds, unconds, kept = [], [], []
        for w in windows:
            if bool(mask[:, w].all()):
                continue
            cond = {"given": given[:, w], "mask": mask[:, w]}
            conds.append({**cond, "hints": type(hints)(*(t[:, w] if t is not None else None for t in hints))})
            zeros = {k: torch.zeros_like(v) for k, v in cond.items()}
            unconds.append({**zeros, "hints": self.denoiser.net.hints(zeros["given"], zeros["mask"])} if guided
                           else conds[-1])
            kept.append(w)
        return kept, conds, unconds

    @torch.no_grad()
    def __call__(self, spec: FrameSpec, steps: int | None = None, sampler: str | None = None,
                 guidance: float = 1.0, generator: torch.Generator | None = None,
                 progress: bool | None = None, overlap: int | None = None, init: torch.Tensor | None = None,
                 strength: float = 1.0) -> torch.Tensor:
        """Generate the frames `spec` does not give: returns (output_frames, 3, H, W) in [-1, 1].

        init, strength: SDEdit (Meng et al. 2022). init (F, 3, H, W) in [-1, 1], a clip of the spec's size, is
        noised to the level `strength` of the way up the model's schedule (restyle_sigma) and denoised from there
        in `steps` steps: strength 1 is generation from pure noise, lower keeps more of init.

        overlap: None, the network sees every frame of the spec at once; an int O, a spec longer than the model's
        window is sampled by temporal MultiDiffusion (lightvid.pipelines.multidiffusion) over windows of the
        model's frame count overlapping by O frames (with as many frames as the window or fewer, the same as None).
        """
        s = self.settings
        if isinstance(self.unet, MarDini):  # its guidance is over the plan (a learned null plan), inside the network
            self.unet.guidance, guidance = guidance, 1.0
        given, mask = spec.conditioning()  # (F, 3, H, W), (F, 1, H, W)
        if given.shape[-2] % s.patch or given.shape[-1] % s.patch:
            raise LightvidError(f"this model needs height and width divisible by {s.patch}, "
                                f"got {given.shape[-2]}x{given.shape[-1]}")
        if s.data_channels == 1:  # grayscale models (Moving MNIST) see luminance; output is repeated to RGB
            given = given.mean(dim=1, keepdim=True)
        frames = given.shape[0]
        windows = [slice(0, frames)] if overlap is None else temporal_windows(frames, s.num_frames, overlap)
        full_given, full_mask = given[None], mask[None]  # (1, F, c, H, W), (1, F, 1, H, W)
        if len(windows) == 1:
            conds = [{"given": full_given, "mask": full_mask}]
            uncond = [{k: torch.zeros_like(v) for k, v in conds[0].items()}]
        else:
            windows, conds, uncond = self._window_conditioning(full_given, full_mask, windows, guidance != 1)
        guided = [cfg_model(self.denoiser, cond=c, uncond=u, scale=guidance) for c, u in zip(conds, uncond)]

        def model(x, sigma):  # given pixels are known exactly: the sampler state there stays given + σ·noise
            estimate = average_over_windows(x, windows, [lambda x_w, g=g: g(x_w, sigma) for g in guided])
            return full_mask * full_given + (1 - full_mask) * estimate

        sampler = sampler or s.sampler
        schedule = student_sigmas if sampler == "renoise" else karras_sigmas  # few-step students: their own levels
        top = s.sigma_max if init is None else restyle_sigma(strength, s.sigma_min, s.sigma_max)
        sigmas = schedule(steps or s.steps, s.sigma_min, top)
        if init is None:
            start = average_over_windows(full_given, windows, [lambda _, c=c: self._start(c) for c in conds])
        else:
            if init.shape != (frames, 3, *given.shape[-2:]):
                raise LightvidError(f"the clip to restyle is {tuple(init.shape)}, the spec needs "
                                    f"{(frames, 3, *given.shape[-2:])}")
            start = (init.mean(dim=1, keepdim=True) if s.data_channels == 1 else init)[None]
        x = start + torch.randn((1, *given.shape), generator=generator) * sigmas[0]
        out = get_sampler(sampler)(model, x, sigmas, generator=generator, disable=progress is False)
        frames = out[0].clamp(-1, 1).expand(-1, 3, -1, -1)
        return spec.compose(frames)
