"""The options several commands share: one name, one meaning, one help text (typing.Annotated aliases).

Every command module imports its repeated options from here. Where a command's default differs from the one a
shared text states (generate's SVD defaults), that command builds its option from the same text constant and
says so in its help. The model lists come from lightvid.weights.EMBEDDED, so a new embedded model shows up in
every `--help` by itself.
"""
from pathlib import Path
from typing import Annotated

import typer

from lightvid.weights import EMBEDDED

NATIVE_MODELS = (f"an embedded model ({', '.join(EMBEDDED)}) or a native model folder (e.g. runs/NAME/model "
                 "from `lightvid train`, or the folder `lightvid compress` / `lightvid distill` wrote)")
SVD_FOLDER = ("a local Stable Video Diffusion folder in diffusers format (model_index.json, unet/, vae/, "
              "image_encoder/, feature_extractor/)")

# the models
Model = Annotated[str, typer.Option("--model", help=f"The model to use: {NATIVE_MODELS}.")]
AnyModel = Annotated[str, typer.Option("--model", help=f"The model to read: {NATIVE_MODELS}, or {SVD_FOLDER} "
                                       "or just its unet/ folder.")]
SvdModel = Annotated[Path, typer.Option("--model", help=f"The model: {SVD_FOLDER}. The embedded models "
                                        f"({', '.join(EMBEDDED)}) and native model folders run with animate, "
                                        "interpolate, extend and loop.")]

# what a command writes: always -o/--output
Output = Annotated[str, typer.Option("-o", "--output", help="The video to write: .mp4 (H.264), .gif, .webm, or a "
                                     "folder path ending in '/' for lossless PNG frames.")]
ModelOutput = Annotated[Path, typer.Option("-o", "--output", help="The model folder to write: a normal model "
                                           "folder that every command loads with --model OUTPUT.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the text (for scripts).")]

# Limits: every command checks its options against these before it loads a model or reads an input (app.py's
# checks), and its --help states them. Past a SLOW_ value a command warns in one line on stderr and goes on.
MAX_FRAMES = 1024  # frames of one output video: lightvid.tasks.framespec.MAX_FRAMES (tests/test_fuzz.py checks)
MAX_STEPS = 1000  # sampling steps
MAX_SIDE = 4096  # --height / --width, pixels
MAX_FRAME_PIXELS = 2048 * 2048  # height x width of one frame
MAX_VIDEO_PIXELS = 1024 * 512 * 512  # frames x height x width: 3.2 GB as float32 RGB
MAX_CLIPS = 1000  # eval --clips (Moving MNIST's test split)
MAX_TRAIN_STEPS = 10_000_000  # --max-steps, --finetune-steps
MAX_FPS = 240  # generate --fps
MAX_MOTION_BUCKET = 1023  # generate --motion-bucket
SEED_LIMIT = 2**63  # seeds are in [0, SEED_LIMIT)
MAX_ANCHORS, MAX_WORKERS, MAX_BATCH = 16, 64, 64  # edit --anchors, --workers, --batch
SLOW_STEPS, SLOW_FRAMES, SLOW_CLIPS = 100, 256, 100

# sampling
FRAMES = "Frames in the output video"
STEPS = f"Sampling steps (1 to {MAX_STEPS}; more than {SLOW_STEPS} takes long)"
SIZE_LIMIT = (f"at most {MAX_SIDE}, height x width at most {MAX_FRAME_PIXELS:,} and frames x height x width at most "
              f"{MAX_VIDEO_PIXELS:,}")
HEIGHT = f"Frame height in pixels ({SIZE_LIMIT})"
WIDTH = f"Frame width in pixels ({SIZE_LIMIT})"
SEED = "Random seed, 0 to 2^63 - 1: the same seed and settings give the same video"
NATIVE_DEFAULT = "the native commands (animate, ...) default to the model's own"

Seed = Annotated[int, typer.Option(help=f"{SEED}.")]
Steps = Annotated[int | None, typer.Option(help=f"{STEPS} (default: the model's own, from its pipeline.json; a model "
                                           "that ships a few-step student, like mnist, samples with it unless "
                                           "--steps or --sampler is given, and then samples the model itself).")]
SAMPLER_NAMES = ("euler", "euler_ancestral", "heun", "dpmpp_2m", "renoise")  # lightvid.diffusion.SAMPLERS (tested)
Sampler = Annotated[str | None, typer.Option(help=f"{', '.join(SAMPLER_NAMES)} (default: the model's own, from its "
                                             "pipeline.json).")]
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale, a finite number; 1 = off (one model "
                                         "call per step).")]
Height = Annotated[int | None, typer.Option(help=f"{HEIGHT} (default: the model's, from its pipeline.json); a "
                                            "multiple of the model's patch size.")]
Width = Annotated[int | None, typer.Option(help=f"{WIDTH} (default: the model's, from its pipeline.json); a multiple "
                                           "of the model's patch size.")]
Bf16 = Annotated[bool, typer.Option("--bf16", help="Run the network in bfloat16 (float32 by default, the exact "
                                    "reference) where the CPU computes bf16 natively (AVX-512 BF16, AMX, Arm BF16): "
                                    "faster, slightly different frames (bench/RESULTS.md). On a CPU without it, "
                                    "where bf16 would be many times slower, it is ignored with a one-line notice "
                                    "and float32 runs (LIGHTVID_NATIVE_BF16=1 or 0 overrides the detection).")]
RUNTIME_NAMES = ("torch", "onnx", "executorch")  # lightvid.pipelines.native.RUNTIMES (tested)
Runtime = Annotated[str, typer.Option(help="Who runs the denoising network: torch (PyTorch, the exact reference), "
                                      "onnx (onnxruntime) or executorch (the ExecuTorch runtime, up to the model's "
                                      "window and size), with that export in the --model folder: make one with "
                                      "`lightvid export MODEL --format onnx|executorch -o DIR`; the flow hints and "
                                      "the sampler stay in PyTorch/NumPy.")]
WINDOW_MODE_NAMES = ("chain", "multidiffusion")  # lightvid.pipelines.windows.WINDOW_MODES (tested)
Windows = Annotated[str, typer.Option(help="How frames beyond the model's window are made: chain (one window at a "
                                      "time, each continuing the frames made so far; the default) or "
                                      "multidiffusion (the whole clip sampled at once, every step averaged over "
                                      "windows overlapping by half a window; bench/RESULTS.md compares them).")]
Gif = Annotated[bool, typer.Option("--gif", help="Also write a GIF preview next to the output.")]

# training runs
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many more training steps (run "
                                              "the same command again to continue from the last checkpoint; 1 to "
                                              f"{MAX_TRAIN_STEPS:,}).")]
