"""animate / interpolate / extend / loop / eval on tiny random native models: outputs, given frames kept
unchanged, windows for long clips, and bad inputs (one line, exit code 2, no partial output)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_run import run
from PIL import Image

from lightvid.io import read_video, write_video
from lightvid.pipelines.windows import continue_video
from lightvid.tasks import given_frames
from native_fixtures import save_tiny_native, tiny_native


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_native(tmp_path_factory.mktemp("model") / "tiny")  # 3 channels, patch 2, 16x16, window 5


def picture(path, height=24, width=40, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path)
    return path


def png_frames(folder):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def resized(path, size=16):
    from lightvid.io import load_image, resize_and_crop
    return np.asarray(resize_and_crop(load_image(path), size, size))


def test_animate_keeps_the_image_and_makes_long_videos_in_windows(capsys, tmp_path, model):
    image = picture(tmp_path / "in.png")
    code, _out, err = run(capsys, "animate", image, "-o", f"{tmp_path}/out/", "--model", model, "--frames", 12)
    assert code == 0, err
    frames = png_frames(tmp_path / "out")
    assert frames.shape == (12, 16, 16, 3)
    assert np.array_equal(frames[0], resized(image))  # any input size: resized to cover, center-cropped
    # 12 frames with a 5-frame window: 1 given + 4 new, 2 + 3, 2 + 3, then 4 + 1 (the last window keeps its length)
    assert "window 4: 4 frames given, 1 new (12/12)" in err


def test_animate_puts_the_image_at_any_index(capsys, tmp_path, model):
    image = picture(tmp_path / "in.png")
    code, _, err = run(capsys, "animate", image, "-o", f"{tmp_path}/mid/", "--model", model, "--index", 2)
    assert code == 0, err
    frames = png_frames(tmp_path / "mid")
    assert frames.shape == (5, 16, 16, 3) and np.array_equal(frames[2], resized(image))
    assert not np.array_equal(frames[0], frames[2])
    code, _, err = run(capsys, "animate", image, "-o", f"{tmp_path}/long/", "--model", model, "--index", 7,
                       "--frames", 9, "--windows", "multidiffusion")
    assert code == 0, err
    assert np.array_equal(png_frames(tmp_path / "long")[7], resized(image))
    for extra, message in (((), "--index must be a frame of the 5-frame output, 0 to 4; got 5"),
                           (("--frames", 9), "needs --windows multidiffusion")):
        code, _, err = run(capsys, "animate", image, "-o", f"{tmp_path}/bad/", "--model", model,
                           "--index", 5 if not extra else 3, *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()


def test_continue_video_keeps_given_frames_and_is_seeded():
    pipe = tiny_native(3, 2)
    given = torch.rand(3, 3, 16, 16) * 2 - 1
    run_once = lambda: continue_video(pipe, given, 11, 8.0, progress=False,  # noqa: E731
                                      generator=torch.Generator().manual_seed(3))
    video = run_once()
    assert video.shape == (11, 3, 16, 16) and torch.equal(video[:3], given)
    assert torch.equal(video, run_once())


def test_interpolate_extend_loop(capsys, tmp_path, model):
    first, last = picture(tmp_path / "a.png", seed=1), picture(tmp_path / "b.png", seed=2)
    code, _, err = run(capsys, "interpolate", first, last, "-o", f"{tmp_path}/i/", "--model", model, "--frames", 4)
    assert code == 0, err
    frames = png_frames(tmp_path / "i")
    assert len(frames) == 4 and np.array_equal(frames[0], resized(first)) and np.array_equal(frames[-1], resized(last))

    clip = torch.rand(6, 3, 16, 16) * 2 - 1
    write_video(clip, f"{tmp_path}/clip/", fps=8)
    code, _, err = run(capsys, "extend", tmp_path / "clip", "-o", tmp_path / "e.mp4", "--model", model,
                       "--new-frames", 7, "--gif", "--seed", 5)
    assert code == 0, err
    video, fps = read_video(tmp_path / "e.mp4")
    assert video.shape[0] == 13 and fps == 8 and (tmp_path / "e.gif").exists()
    code, _, err = run(capsys, "extend", tmp_path / "clip", "-o", f"{tmp_path}/e/", "--model", model, "--new-frames", 3)
    assert code == 0, err
    extended = png_frames(tmp_path / "e")
    assert len(extended) == 9 and np.array_equal(extended[:6], png_frames(tmp_path / "clip"))  # given: unchanged

    code, out, err = run(capsys, "loop", first, "-o", f"{tmp_path}/l/", "--model", model)
    assert code == 0, err
    assert len(png_frames(tmp_path / "l")) == 4 and "loop seam: last->first step" in out  # window 5 = 4 + repeat
    assert "gray levels" in out


def test_same_seed_same_video_other_seed_other_video(capsys, tmp_path, model):
    image = picture(tmp_path / "in.png")
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run(capsys, "animate", image, "-o", f"{tmp_path}/{name}/", "--model", model, "--seed", seed)[0] == 0
    a, b, c = (png_frames(tmp_path / n) for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("args,message", [
    (["animate", "{missing}", "-o", "{out}"], "no such file"),
    (["animate", "{tiny_image}", "-o", "{out}"], "at least 8x8"),
    (["animate", "{image}", "-o", "{out}", "--frames", "10000"], "--frames must be at most 1024"),
    (["animate", "{image}", "-o", "{out}", "--frames", "0"], "--frames must be at least 2, got 0"),
    (["animate", "{image}", "-o", "{out}", "--steps", "0"], "--steps"),
    (["animate", "{image}", "-o", "{out}", "--seed", str(2**70)], "--seed must be in [0, 2^63)"),
    (["animate", "{image}", "-o", "{out}", "--guidance", "nan"], "--guidance must be a finite number"),
    (["animate", "{image}", "-o", "{out}", "--sampler", "magic"], "magic"),
    (["animate", "{image}", "-o", "{out}", "--height", "15"], "multiples of 2"),
    (["animate", "{image}", "-o", "{out}", "--height", "0"], "--height must be in [1, 4096]"),
    (["animate", "{image}", "-o", "{out}", "--model", "nonexistent"], "not an embedded model"),
    (["animate", "{image}", "-o", "{out}", "--model", "{broken_model}"], "not a valid pipeline file"),
    (["interpolate", "{image}", "{image}", "-o", "{out}", "--frames", "10000"], "--frames must be at most 1024"),
    (["interpolate", "{image}", "{image}", "-o", "{out}", "--frames", "6"], "--frames must be in [3, 5]"),
    (["interpolate", "{image}", "{image}", "-o", "{out}", "--frames", "6"], "window is 5 frames; --windows multi"),
    (["interpolate", "{image}", "{image}", "-o", "{out}", "--frames", "2"], "--frames must be at least 3, got 2"),
    (["extend", "{corrupt}", "-o", "{out}"], "corrupt"),
    (["extend", "{missing}", "-o", "{out}"], "no such file"),
    (["extend", "{corrupt}", "-o", "{out}", "--new-frames", "10000"], "--new-frames must be at most 1023"),
    (["loop", "{image}", "-o", "{out}", "--frames", "10000"], "--frames must be at most 1024"),
    (["loop", "{image}", "-o", "{out}", "--frames", "1024"], "--frames must be in [3, 1023] for a loop"),
    (["loop", "{image}", "-o", "{out}", "--windows", "magic"], "--windows must be one of chain, multidiffusion"),
    (["loop", "{image}", "-o", "{out}", "--frames", "2"], "--frames must be at least 3, got 2"),
    (["animate", "{image}", "-o", "{tmp}/out.xyz"], "xyz"),
    (["eval", "--task", "dance", "--model", "{model}"], "dance"),
    (["eval", "--task", "animate", "--model", "{mnist_model}", "--clips", "1"], "--clips must be in [2, 1000]"),
    (["eval", "--task", "animate", "--model", "{mnist_model}", "-o", "{tmp}/r/"], "ending in .json"),
    (["eval", "--task", "animate", "--model", "{mnist_model}", "--split", "val"], "--split 'val'; accepted: test"),
])
def test_bad_input_one_line_exit_2_no_output(capsys, tmp_path, model, mnist_model, args, message):
    paths = {"missing": tmp_path / "missing.png", "tiny_image": picture(tmp_path / "tiny.png", 1, 1),
             "image": picture(tmp_path / "in.png"), "out": tmp_path / "out.mp4", "tmp": tmp_path, "model": model,
             "mnist_model": mnist_model, "broken_model": tmp_path / "broken"}
    shutil.copytree(model, tmp_path / "broken")
    (tmp_path / "broken" / "pipeline.json").write_text("{not json")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    paths["corrupt"] = tmp_path / "corrupt.mp4"
    args = [a.format(**paths) for a in args]
    if "--model" not in args:
        args += ["--model", str(model)]
    code, _out, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("lightvid: error:"), err
    assert message in err, err
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob("*.gif"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]  # no temp leftovers
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):  # 1 channel, 32x32, window 6
    return save_tiny_native(tmp_path_factory.mktemp("mnist") / "m", data_channels=1, patch=2, size=32, frames=6,
                            dataset="moving_mnist")


@pytest.mark.parametrize("task,rows", [
    ("interpolate", ("model", "copy_nearest", "linear_blend", "farneback", "farneback_visible", "farneback_global")),
    ("keyframes", ("model", "copy_nearest", "linear_blend", "farneback", "farneback_visible", "farneback_global")),
    ("extend", ("model", "copy_nearest")),
    ("animate", ("model", "copy_nearest")),
    ("loop", ("model", "copy_nearest")),
])
def test_eval_reports_model_and_baselines(capsys, tmp_path, mnist_model, task, rows):
    code, out, err = run(capsys, "eval", "--model", mnist_model, "--task", task, "--clips", 2, "--no-fd",
                         "-o", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert tuple(report["results"]) == rows and report["clips"] == 2
    for method in rows:
        assert f"| {method} |" in out
        assert {"psnr", "ssim", "mse_per_frame"} <= set(report["results"][method])
        loop_metrics = {"seam_ratio", "seam_levels", "step_levels"}
        assert (loop_metrics <= set(report["results"][method])) == (task == "loop")
    if task == "loop":
        still, model = report["results"]["copy_nearest"], report["results"]["model"]
        assert still["seam_levels"] == still["step_levels"] == 0 and still["seam_ratio"] == 1  # a still video
        assert model["step_levels"] > 0 and model["seam_levels"] > 0  # random weights: a loop that moves


def test_eval_split_chooses_the_clips(capsys, tmp_path, mnist_model):
    psnr = {}
    for split in ("test", "train"):
        code, out, err = run(capsys, "eval", "--model", mnist_model, "--task", "interpolate", "--clips", 2, "--no-fd",
                             "--split", split, "-o", tmp_path / f"{split}.json")
        assert code == 0 and f"moving_mnist {split} split" in out, err
        report = json.loads((tmp_path / f"{split}.json").read_text())
        assert report["split"] == split
        psnr[split] = report["results"]["farneback"]["psnr"]  # a deterministic function of the clips
    assert psnr["test"] != psnr["train"]


def test_eval_on_rgb_camera_motion(capsys, tmp_path):
    model = save_tiny_native(tmp_path / "m", data_channels=3, patch=2, size=32, frames=5, dataset="camera_motion")
    code, out, err = run(capsys, "eval", "--model", model, "--task", "keyframes", "--clips", 2, "--no-fd",
                         "-o", tmp_path / "r.json", "--json")
    assert code == 0 and f"wrote {tmp_path / 'r.json'}" in err, err
    report = json.loads(out)  # --json: stdout is one JSON object, the report -o wrote
    assert report == json.loads((tmp_path / "r.json").read_text()) and report["task"] == "keyframes"
    results = report["results"]
    assert set(results) == {"model", "copy_nearest", "linear_blend", "farneback", "farneback_visible",
                            "farneback_global"}
    assert "mse_per_frame" not in results["model"] and 0 < results["farneback"]["psnr"] < 100


def test_task_patterns():
    assert given_frames("interpolate", 6).tolist() == [True, False, False, False, False, True]
    assert given_frames("keyframes", 10).tolist() == [True, False, False, False, True, False, False, False, True, True]
    assert given_frames("extend", 20).tolist() == [True] * 10 + [False] * 10
    assert given_frames("animate", 3).tolist() == [True, False, False]


def test_eval_fd_lightvid_with_an_encoder_file(capsys, tmp_path, mnist_model):
    from lightvid.eval.video_encoder import VideoEncoder, VideoEncoderConfig
    torch.manual_seed(0)
    VideoEncoder(VideoEncoderConfig(channels=(8, 8, 16, 16), size=32)).save(tmp_path / "enc.safetensors")
    code, _, err = run(capsys, "eval", "--model", mnist_model, "--task", "interpolate", "--clips", 3,
                       "--encoder", tmp_path / "enc.safetensors", "-o", tmp_path / "r.json")
    assert code == 0, err
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    fds = [results[m]["fd_lightvid"] for m in ("model", "copy_nearest", "linear_blend", "farneback")]
    assert all(np.isfinite(fd) and fd >= 0 for fd in fds) and len(set(fds)) == 4


@pytest.mark.parametrize("model,params", [("mnist", 9_642_690), ("mnist-mobilevd", 5_609_941)])
def test_embedded_mnist_models_interpolate_held_out_digits(capsys, tmp_path, model, params):
    from lightvid.data import MovingMNIST
    from lightvid.weights import model_folder
    assert (model_folder(model) / "model.safetensors").stat().st_size <= 25_000_000  # shipped-size limit
    clip, _ = MovingMNIST(split="test")[3]
    for name, frame in (("a", clip[0]), ("b", clip[4])):
        Image.fromarray(((frame[0] + 1) * 127.5).round().byte().numpy()).save(tmp_path / f"{name}.png")
    code, _, err = run(capsys, "interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o", f"{tmp_path}/out/",
                       "--model", model, "--frames", 5, "--steps", 2)
    assert code == 0, err
    frames = png_frames(tmp_path / "out")
    assert frames.shape == (5, 64, 64, 3)
    assert np.array_equal(frames[0][..., 0], np.asarray(Image.open(tmp_path / "a.png")))
    assert np.array_equal(frames[4][..., 0], np.asarray(Image.open(tmp_path / "b.png")))
    code, out, _ = run(capsys, "flops", "--model", model, "--frames", 20, "--height", 64, "--width", 64, "--json")
    assert code == 0 and json.loads(out)["params"] == params  # the figure its model card states


def test_embedded_mnist_samples_its_1step_student_by_default(capsys, tmp_path):
    from lightvid.data import MovingMNIST
    from lightvid.eval import psnr
    from lightvid.weights import model_folder
    student = model_folder("mnist") / "1step"
    assert (student / "model.safetensors").stat().st_size <= 25_000_000  # shipped-size limit
    clip, _ = MovingMNIST(split="test")[3]  # (20, 1, 64, 64) in [-1, 1]
    for name, frame in (("a", clip[0]), ("b", clip[8])):
        Image.fromarray(((frame[0] + 1) * 127.5).round().byte().numpy()).save(tmp_path / f"{name}.png")
    videos = {}
    for label, extra in (("student", ()), ("teacher", ("--steps", 8)), ("teacher_1", ("--steps", 1))):
        code, _, err = run(capsys, "interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o",
                           f"{tmp_path}/{label}/", "--model", "mnist", "--frames", 9, *extra)
        assert code == 0, err
        assert ("1-step student" in err) == (label == "student")  # the student by default, --steps: the teacher
        videos[label] = png_frames(tmp_path / label)[..., 0]  # (9, 64, 64) uint8
        assert np.array_equal(videos[label][0], np.asarray(Image.open(tmp_path / "a.png")))
        assert np.array_equal(videos[label][8], np.asarray(Image.open(tmp_path / "b.png")))
    # the same sampler, seed and step count: equal videos would mean the student folder holds the teacher's weights
    assert not np.array_equal(videos["student"], videos.pop("teacher_1"))
    truth = clip[1:8]  # (7, 1, 64, 64): the frames between
    scores = {label: psnr(torch.from_numpy(v[1:8, None]).float() / 127.5 - 1, truth).mean().item()
              for label, v in videos.items()}
    # measured on this clip: student 15.74 dB, teacher (8 steps) 17.36, linear blend 14.61, copying 13.73;
    # random or misloaded weights give noise, far below all of them. 15 dB sits between the student and the linear
    # blend, 16 dB between the teacher and the student
    assert scores["student"] > 15.0 and scores["teacher"] > 16.0 and not np.array_equal(*videos.values())


def test_embedded_photo_interpolates_a_held_out_camera_move(capsys, tmp_path):
    from lightvid.data.camera_motion import CameraMotion
    from lightvid.eval import psnr
    from lightvid.eval.baselines import farneback
    clip, _ = CameraMotion(split="test", num_frames=16, size=128)[0]  # (16, 3, 128, 128): a held-out photo
    quantised = ((clip + 1) * 127.5).round()  # what the PNGs hold
    for name, frame in (("a", quantised[0]), ("b", quantised[15])):
        Image.fromarray(frame.permute(1, 2, 0).byte().numpy()).save(tmp_path / f"{name}.png")
    given = torch.zeros(16, dtype=torch.bool)
    given[[0, 15]] = True
    scores = {"farneback": psnr(farneback(quantised / 127.5 - 1, given)[1:15], clip[1:15]).mean().item()}
    for label, extra in (("default", ()), ("4 steps", ("--steps", 4))):
        code, _, err = run(capsys, "interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o",
                           f"{tmp_path}/{label}/", "--frames", 16, *extra)  # the defaults: photo, seed 0
        assert code == 0, err
        video = torch.from_numpy(png_frames(tmp_path / label)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (16, 3, ..)
        assert torch.equal(video[[0, 15]], quantised[[0, 15]] / 127.5 - 1)  # the given frames, unchanged
        scores[label] = psnr(video[1:15], clip[1:15]).mean().item()
    # measured on this clip (a slow camera move, an easy one): 1 step (the default) 46.19 dB, 4 steps 44.87
    # (stage 6 on its farneback_global hint; on the plain visible-flow hint 41.66 at 4 steps),
    # farneback_global 46.72, Farneback 42.58, farneback_visible 42.52, linear blend 32.00. The bounds keep 0.87 dB
    # below the worse setting and ask for 1.5 of its 2.29 dB lead over Farneback
    assert min(scores["default"], scores["4 steps"]) > max(44, scores["farneback"] + 1.5), scores
    assert scores["default"] != scores["4 steps"]  # --steps 4 samples differently from the 1-step default


def test_bf16_sampling_stays_close_to_the_float32_reference(capsys, monkeypatch, tmp_path, model):
    monkeypatch.setenv("LIGHTVID_NATIVE_BF16", "1")  # --bf16 runs bf16 below even on a CPU without native bf16
    from lightvid.data.camera_motion import CameraMotion
    from lightvid.eval.metrics import psnr
    from lightvid.pipelines.native import NativePipeline
    from lightvid.tasks import task_spec

    clip, _ = CameraMotion(split="test", num_frames=16, size=128)[0]
    fast = NativePipeline.for_sampling("photo", dtype=torch.bfloat16)[0]
    assert {p.dtype for p in fast.unet.parameters()} == {torch.bfloat16}
    exact = NativePipeline.for_sampling("photo")[0]
    spec = task_spec("interpolate", clip, 8.0)
    out = {name: pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
           for name, pipe in (("bf16", fast), ("fp32", exact))}
    # at the default 1 step, measured 64.9 dB between the two (held-out clips 0, 3, 5: 64.7-64.9; at 4 steps 67.3-67.4,
    # about what rounding the frames to bf16 once costs, 66.7 dB), and 46.37 vs 46.42 dB against the real clip:
    # the network only adds a small change to its float32 hint (bf16 keeps 8 significant bits: 2^-8 relative per
    # rounding). 58 dB, 7 dB below the measurement, leaves room for other CPUs' bf16 kernels
    assert psnr(out["bf16"][1:15], out["fp32"][1:15]).mean() > 58
    image = picture(tmp_path / "in.png")
    code, _, err = run(capsys, "loop", image, "-o", f"{tmp_path}/l/", "--model", model, "--bf16")
    assert code == 0 and len(png_frames(tmp_path / "l")) == 4, err
    code, _, err = run(capsys, "loop", image, "-o", f"{tmp_path}/l32/", "--model", model)  # float32
    assert code == 0 and not np.array_equal(png_frames(tmp_path / "l"), png_frames(tmp_path / "l32")), err


def test_embedded_photo_model_animates_a_held_out_photo(capsys, tmp_path):
    from lightvid.io import load_image, pil_to_tensor, resize_and_crop
    from lightvid.weights import model_folder
    assert sum(f.stat().st_size for f in model_folder("photo").iterdir()) <= 25_000_000  # shipped-size limit
    rocket = Path(__file__).parent.parent / "examples" / "rocket.jpg"  # a test photo: never seen in training
    code, _, err = run(capsys, "animate", rocket, "-o", f"{tmp_path}/out/")  # the defaults: photo, 1 step
    assert code == 0, err
    frames = png_frames(tmp_path / "out").astype(np.float64) / 255  # (16, 128, 128, 3)
    assert frames.shape == (16, 128, 128, 3)
    photo = ((pil_to_tensor(resize_and_crop(load_image(rocket), 128, 128)) + 1) / 2).permute(1, 2, 0).numpy()
    # the given frame, unchanged up to rounding: the PNG holds it rounded to 8 bits (½ level) and photo is float32
    # (~1e-7 off); one level bounds both, 1e-9 keeps float64's rounding of 1/255 from failing an exact level
    assert np.abs(frames[0] - photo).max() <= 1 / 255 + 1e-9

    def psnr_to_first(i):
        return -10 * np.log10(((frames[i] - frames[0]) ** 2).mean())
    # measured 43.5 and 24.4 dB (stage 6 at 1 step; at 4 steps 44.7 and 23.6; stage 2: 37.5 and 24.5): the photo
    # stays recognisable and changes with distance; random or misloaded weights give noise (about 10 dB), a still
    # video would give 100 dB
    assert 30 < psnr_to_first(1) < 60 and 18 < psnr_to_first(15) < psnr_to_first(1)
    code, out, _ = run(capsys, "flops", "--model", "photo", "--frames", 16, "--height", 128, "--width", 128, "--json")
    assert code == 0 and json.loads(out)["params"] == 10_263_695  # the figure its model card states
