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

# sampling
FRAMES = "Frames in the output video"
STEPS = "Sampling steps"
HEIGHT = "Frame height in pixels"
WIDTH = "Frame width in pixels"
SEED = "Random seed: the same seed and settings give the same video"
NATIVE_DEFAULT = "the native commands (animate, ...) default to the model's own"

Seed = Annotated[int, typer.Option(help=f"{SEED}.")]
Steps = Annotated[int | None, typer.Option(help=f"{STEPS} (default: the model's own, from its pipeline.json; a model "
                                           "that ships a few-step student, like mnist, samples with it unless "
                                           "--steps or --sampler is given, and then samples the model itself).")]
SAMPLER_NAMES = ("euler", "euler_ancestral", "heun", "dpmpp_2m", "renoise")  # lightvid.diffusion.SAMPLERS (tested)
Sampler = Annotated[str | None, typer.Option(help=f"{', '.join(SAMPLER_NAMES)} (default: the model's own, from its "
                                             "pipeline.json).")]
Guidance = Annotated[float, typer.Option(help="Classifier-free guidance scale; 1 = off (one model call per step).")]
Height = Annotated[int | None, typer.Option(help=f"{HEIGHT} (default: the model's, from its pipeline.json); a "
                                            "multiple of the model's patch size.")]
Width = Annotated[int | None, typer.Option(help=f"{WIDTH} (default: the model's, from its pipeline.json); a multiple "
                                           "of the model's patch size.")]
Bf16 = Annotated[bool, typer.Option("--bf16", help="Run the network in bfloat16 (float32 by default, the exact "
                                    "reference) where the CPU computes bf16 natively (AVX-512 BF16, AMX, Arm BF16): "
                                    "faster, slightly different frames (bench/RESULTS.md). On a CPU without it, "
                                    "where bf16 would be many times slower, it is ignored with a one-line notice "
                                    "and float32 runs (LIGHTVID_NATIVE_BF16=1 or 0 overrides the detection).")]
Gif = Annotated[bool, typer.Option("--gif", help="Also write a GIF preview next to the output.")]

# training runs
MaxSteps = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many more training steps (run "
                                              "the same command again to continue from the last checkpoint).")]
