"""Training: config checking, task masks, the loss, exact resume after a kill, and a 2-process accelerate run."""
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tolerances import EPS32

from lightvid.cli import main
from lightvid.errors import LightvidError
from lightvid.tasks import sample_given_frames, sample_training_masks
from lightvid.tasks.registry import FRAME_TASKS
from lightvid.train import config_from_dict, train
from native_fixtures import given_mask

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def tiny_config(tmp_path, **train_overrides) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    raw["output_dir"] = str(tmp_path)
    raw["train"].update(train_overrides)
    return raw


def final_weights(run_dir: Path) -> dict:
    last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return {**load_file(last / "unet" / "model.safetensors"), **{f"ema.{k}": v for k, v in
                                                                 load_file(last / "ema.safetensors").items()}}


@pytest.mark.parametrize("task", FRAME_TASKS)
def test_each_task_mask_leaves_frames_to_generate(task):
    g = torch.Generator().manual_seed(0)
    given = sample_given_frames(64, 5, {task: 1.0}, g)
    assert given.shape == (64, 5) and (~given).any(dim=1).all()
    if task == "interpolate":
        assert given[:, 0].all() and given[:, -1].all() and not given[:, 1:-1].any()
    if task == "unconditional":
        assert not given.any()
    if task == "animate":
        assert (given.sum(dim=1) == 1).all() and given[:, 0].any() and given[:, 1:].any()  # first, or anywhere


def test_training_masks_match_the_frame_tasks_and_draw_regions():
    # whole-frame tasks: the same masks, from the same generator stream, as sample_given_frames
    clips = torch.rand(16, 6, 3, 24, 32) * 2 - 1
    weights = {"animate": 1.0, "interpolate": 1.0, "random": 1.0}
    out, mask = sample_training_masks(clips, weights, torch.Generator().manual_seed(3))
    frames = sample_given_frames(16, 6, weights, torch.Generator().manual_seed(3))
    assert torch.equal(out, clips) and torch.equal(mask, given_mask(frames, clips))
    # inpaint: every frame given but a nonempty region, masks binary
    out, mask = sample_training_masks(clips, {"inpaint": 1.0}, torch.Generator().manual_seed(0))
    assert mask.shape == (16, 6, 1, 24, 32) and torch.equal(out, clips)
    assert set(mask.unique().tolist()) == {0.0, 1.0} and ((1 - mask).sum(dim=(2, 3, 4)) > 0).all()
    moved = (mask[:, 0] != mask[:, -1]).flatten(1).any(1)  # moving boxes change between frames, the others do not
    assert moved.any() and not moved.all()
    # cinemagraph: frame 0 whole, the same region after it, and the clip still outside the region
    out, mask = sample_training_masks(clips, {"cinemagraph": 1.0}, torch.Generator().manual_seed(0))
    assert (mask[:, 0] == 1).all() and (mask[:, 1:] == mask[:, -1:]).all()
    assert ((1 - mask[:, 1]).sum((1, 2, 3)) > 0).all()
    outside = mask[:, -1:].expand_as(out[:, :, :1]).bool().expand_as(out)
    assert torch.equal(out[outside], out[:, :1].expand_as(out)[outside])  # still outside: frame 0's values
    assert torch.equal(out[~outside], clips[~outside])  # the region keeps the clip's own motion


def test_loss_counts_generated_pixels_only():
    # a net that outputs zeros where a region is generated and 5 elsewhere: only the region's error counts
    from lightvid.diffusion import Denoiser
    from lightvid.train.objective import denoising_loss

    mask = torch.ones(1, 2, 1, 4, 4)
    mask[:, 1, :, :2] = 0  # frame 1: the top half generated
    denoiser = Denoiser(lambda x, c_noise, given, mask: 5 * mask.expand_as(x), prediction="x0", sigma_data=0.5)
    clean = torch.full((1, 2, 3, 4, 4), 0.5)
    loss = denoising_loss(denoiser, clean, mask, torch.Generator().manual_seed(0), p_mean=0.0, p_std=0.0)
    # the weight at σ = 1 times the region's error 0.25: float32 roundings of order-1 values; 8 eps
    assert loss.item() == pytest.approx((1 + 0.25) / 0.25 * 0.25, rel=8 * EPS32)


@pytest.mark.parametrize("sigma,weight", [(1e-3, 6 / 0.25), (1.0, (1 + 0.25) / 0.25)])
def test_x0_loss_weight_is_edm_capped_at_snr_5(sigma, weight):
    # a net that outputs zeros: with x0-prediction D = 0, so the loss is weight * mean(clean²) on generated frames
    from lightvid.diffusion import Denoiser
    from lightvid.train.objective import denoising_loss

    denoiser = Denoiser(lambda x, c_noise, given, mask: torch.zeros_like(x), prediction="x0", sigma_data=0.5)
    clean = torch.full((2, 3, 1, 4, 4), 0.5)
    given = torch.tensor([[True, False, False]] * 2)
    loss = denoising_loss(denoiser, clean, given_mask(given, clean), torch.Generator().manual_seed(0),
                          p_mean=math.log(sigma), p_std=0.0)
    # σ = exp(ln σ) and the weight (σ² + σ_d²) / (σ·σ_d)² (or its cap) in float32, times a mean of equal values:
    # a few roundings of order-1 values (measured: exact on AVX2 and AVX-512 kernels); 8 eps
    assert loss.item() == pytest.approx(weight * 0.25, rel=8 * EPS32)


@pytest.mark.parametrize("frame_weight", ["uniform", "hint_relative"])
def test_hint_relative_loss_weighs_each_frame_by_its_hint_error(frame_weight):
    # a net whose estimate is its hint, off by 0.1 on frame 1 and 0.01 on frame 2 (frame 0 given): uniform
    # weighting sees frame 2's error hardly at all, hint_relative counts each frame's error relative to the hint's
    from lightvid.diffusion import Denoiser
    from lightvid.train.objective import HINT_MSE_FLOOR, denoising_loss

    clean = torch.zeros(1, 3, 1, 4, 4)
    hint = clean + torch.tensor([0.0, 0.1, 0.01])[None, :, None, None, None]

    class HintCopy:
        def start(self, given, mask):
            return hint

        def __call__(self, x, c_noise, given, mask):
            return hint

    denoiser = Denoiser(HintCopy(), prediction="x0", sigma_data=0.5)
    loss = denoising_loss(denoiser, clean, given_mask(torch.tensor([[True, False, False]]), clean),
                          torch.Generator().manual_seed(0),
                          p_mean=0.0, p_std=0.0, frame_weight=frame_weight)
    errors = torch.tensor([0.1 ** 2, 0.01 ** 2])
    if frame_weight == "hint_relative":
        errors = errors / (errors + HINT_MSE_FLOOR)  # 0.990 and 0.5: a frame the hint nails still counts
    # float32 means over 16 pixels and 2 frames, weighted: a few roundings (measured 0.6 eps); 8 eps
    assert loss.item() == pytest.approx((1 + 0.25) / 0.25 * errors.mean().item(), rel=8 * EPS32)


def test_resume_check_accepts_fields_newer_than_the_run(tmp_path):
    import json
    from dataclasses import asdict

    from lightvid.train.loop import _check_same_run

    config = config_from_dict(tiny_config(tmp_path))
    saved = json.loads(json.dumps(asdict(config)))
    del saved["diffusion"]["frame_weight"]  # written before the field existed: it was at its default
    (tmp_path / "state.json").write_text(json.dumps({"config": saved}))
    _check_same_run(tmp_path, config)
    saved["diffusion"]["p_mean"] = 3.0
    (tmp_path / "state.json").write_text(json.dumps({"config": saved}))
    with pytest.raises(LightvidError, match=r"other settings \(diffusion.p_mean\)"):
        _check_same_run(tmp_path, config)


def test_config_errors_are_one_line(tmp_path):
    raw = tiny_config(tmp_path)
    with pytest.raises(LightvidError, match="unknown key"):
        config_from_dict({**raw, "learning_rate": 1})
    with pytest.raises(LightvidError, match="unknown key"):
        config_from_dict({**raw, "train": {**raw["train"], "stepz": 3}})
    with pytest.raises(LightvidError, match=r"model in/out channels 4/1 disagree .* need 3/1; leave them out"):
        config_from_dict({**raw, "model": {**raw["model"], "in_channels": 4}})
    nearest = {**raw["pipeline"], "conditioning": {"hint": "nearest"}}  # 2 more input channels, derived
    assert config_from_dict({**raw, "pipeline": nearest}).model.in_channels == 5
    with pytest.raises(LightvidError, match="hint 'svd' is not one of none, nearest, flow"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "conditioning": {"hint": "svd"}}})
    with pytest.raises(LightvidError, match="prediction 'eps' is not one of edm, x0, hint_residual"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "prediction": "eps"}})
    with pytest.raises(LightvidError, match=r"prediction 'hint_residual' needs a hint"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "prediction": "hint_residual"}})
    warps = {"hint": "flow", "warp_weights": "visible", "warp_inputs": True}
    with pytest.raises(LightvidError, match=r"warp_inputs needs prediction 'hint_residual'"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "conditioning": warps}})
    with pytest.raises(LightvidError, match=r"flow, warp_weights and warp_inputs apply to hint 'flow' only"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "conditioning": {"flow": "farneback_global"}}})
    with pytest.raises(LightvidError, match=r"pipeline \['num_frames'\] come from the data section"):
        config_from_dict({**raw, "pipeline": {**raw["pipeline"], "num_frames": 8}})
    with pytest.raises(LightvidError, match=r"'hint_relative' .*needs pipeline\.prediction hint_residual"):
        config_from_dict({**raw, "diffusion": {"frame_weight": "hint_relative"}})
    with pytest.raises(LightvidError, match="frame_weight 'psnr' is not one of uniform, hint_relative"):
        config_from_dict({**raw, "diffusion": {"frame_weight": "psnr"}})
    with pytest.raises(LightvidError, match="unknown task"):
        config_from_dict({**raw, "tasks": {"dance": 1.0}})
    with pytest.raises(LightvidError, match="task weights"):
        config_from_dict({**raw, "tasks": {"interpolate": -1.0, "extend": 2.0}})
    with pytest.raises(LightvidError, match="checkpoint_every"):
        config_from_dict({**raw, "train": {**raw["train"], "checkpoint_every": 0}})
    with pytest.raises(LightvidError, match="lr"):
        config_from_dict({**raw, "train": {**raw["train"], "lr": "fast"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "optimizer": "adam"}))
    assert main(["train", "--config", str(bad)]) == 2
    assert not (tmp_path / "checkpoints").exists()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(config_from_dict(tiny_config(straight)), progress=False)
    train(config_from_dict(tiny_config(stopped)), max_steps=3, progress=False)  # stops at checkpoint 3
    assert [p.name for p in (stopped / "checkpoints").iterdir()] == ["step_00000003"]
    train(config_from_dict(tiny_config(stopped)), progress=False)  # resumes 3 -> 6
    a, b = final_weights(straight), final_weights(stopped)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (stopped / "model").iterdir()]  # exported EMA model
    assert (stopped / "loss.png").stat().st_size > 0
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (stopped / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))  # log continues without duplicates


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL mid-run (after the first checkpoint), resume, compare with an uninterrupted run."""
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "killed", steps=6, checkpoint_every=2)))
    proc = subprocess.Popen([sys.executable, "-m", "lightvid.train", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "killed" / "checkpoints" / "step_00000002"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (tmp_path / "killed" / "checkpoints" / "step_00000006").exists(), \
        "the run was not interrupted mid-way; the test would prove nothing"
    with (tmp_path / "killed" / "log.jsonl").open("a") as log:
        log.write('{"step": 5, "lo')  # a record cut short by the kill
    leftovers = [p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()]
    assert all(name.startswith("step_") for name in leftovers), leftovers  # no half-written checkpoint
    assert main(["train", "--config", str(config)]) == 0
    train(config_from_dict(tiny_config(tmp_path / "straight", steps=6, checkpoint_every=2)), progress=False)
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
                    reason="accelerate CLI not installed")
def test_two_process_accelerate_run(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "ddp", steps=2, checkpoint_every=2)))
    launcher = Path(sys.executable).with_name("accelerate")
    result = subprocess.run([str(launcher), "launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lightvid.train",
                             "--config", str(config)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ddp" / "model" / "pipeline.json").exists()
    assert final_weights(tmp_path / "ddp")


CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path, tmp_path):
    from lightvid.train.config import read_yaml_config
    from lightvid.weights import EMBEDDED
    from native_fixtures import save_tiny_native

    raw = read_yaml_config(path)
    if raw.get("init_from", "photo") not in EMBEDDED:  # a later stage of a run: its output is not in a clean clone
        if raw["data"]["name"] == "camera_motion":  # photo's later stages: the embedded photo has their network
            raw["init_from"] = "photo"
        else:
            start = save_tiny_native(tmp_path / "start", raw["pipeline"]["data_channels"], raw["pipeline"]["patch"])
            raw["init_from"] = str(start)
            del raw["model"]  # the folder's network (here a tiny one)
    config = config_from_dict(raw)
    assert config.train.steps > 0
    if path.name == "stunet_mnist.yaml":  # the preset's architecture, mnist's pixel layout
        from lightvid.models import get_preset
        assert config.model == get_preset("stunet-mnist")


def test_finetuning_may_switch_a_hinted_model_to_flow_hints(tmp_path):  # and the hint's flow
    import json

    from native_fixtures import tiny_native

    start = tiny_native(1, conditioning="nearest", prediction="hint_residual")
    start.save_pretrained(tmp_path / "start", extra={"trained_steps": 0, "dataset": "moving_mnist"})
    raw = {**tiny_config(tmp_path / "run", steps=1), "init_from": str(tmp_path / "start"),
           "pipeline": {"data_channels": 1, "prediction": "hint_residual",
                        "conditioning": {"hint": "flow", "flow": "farneback_global"}}}
    del raw["model"]  # the folder's network
    train(config_from_dict(raw), progress=False)
    saved = json.loads((tmp_path / "run" / "model" / "pipeline.json").read_text())
    assert saved["conditioning"]["hint"] == "flow" and saved["conditioning"]["flow"] == "farneback_global"
    other = {**raw, "output_dir": str(tmp_path / "other"),
             "model": {**tiny_config(tmp_path)["model"], "heads": [2, 2]}}
    with pytest.raises(LightvidError, match="its network differs"):
        train(config_from_dict(other), progress=False)
    widened = {**raw, "output_dir": str(tmp_path / "wide"),
               "pipeline": {**raw["pipeline"], "conditioning": {**raw["pipeline"]["conditioning"],
                                                                "warp_inputs": True}}}
    # other channels: the folder's network does not fit them
    with pytest.raises(LightvidError, match=r"model in/out channels 5/1 disagree .* need 9/2"):
        config_from_dict(widened)


def test_a_config_may_build_on_a_base_config(tmp_path):
    from lightvid.train.config import load_config

    (tmp_path / "base.yaml").write_text(TINY.read_text())
    (tmp_path / "stage.yaml").write_text("base: base.yaml\noutput_dir: runs/stage\ntrain: {steps: 9}\n")
    config = load_config(tmp_path / "stage.yaml")
    assert config.output_dir == "runs/stage" and config.train.steps == 9 and config.train.batch_size == 2
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(LightvidError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")


def test_ranks_get_disjoint_slices_of_one_global_batch():
    from lightvid.train.loop import StepBatches

    class Indices(torch.utils.data.Dataset):
        def __len__(self):
            return 50

        def __getitem__(self, i):
            return torch.tensor([float(i)]), 8.0

    data = Indices()
    for step in (0, 7, 30):  # 30 crosses into a new epoch's permutation
        single = StepBatches(data, 4, seed=3, rank=0, world=1)[step]
        ranks = [StepBatches(data, 2, seed=3, rank=r, world=2)[step] for r in (0, 1)]
        assert torch.equal(torch.cat(ranks), single)
        assert not set(ranks[0].flatten().tolist()) & set(ranks[1].flatten().tolist())


def test_ema_decay_warms_up_then_caps():
    from lightvid.train.loop import ema_decay
    assert ema_decay(0, 0.999) == 0.1 and ema_decay(90, 0.999) == 91 / 100
    assert ema_decay(10**6, 0.995) == 0.995
    assert all(ema_decay(s, 0.999) <= ema_decay(s + 1, 0.999) for s in range(2000))


def test_a_finetune_changes_only_the_pipeline_settings_it_names(tmp_path):
    from native_fixtures import tiny_native

    tiny_native(1, conditioning="nearest", prediction="hint_residual").save_pretrained(
        tmp_path / "start", extra={"trained_steps": 0, "dataset": "moving_mnist"})
    raw = {**tiny_config(tmp_path / "run"), "init_from": str(tmp_path / "start"), "pipeline": {"steps": 4}}
    del raw["model"]
    pipeline = config_from_dict(raw).pipeline
    assert pipeline.steps == 4 and pipeline.conditioning.hint == "nearest" and pipeline.prediction == "hint_residual"


def test_training_checks_its_step_budget_and_the_datas_frame_size_before_it_starts(tmp_path):
    with pytest.raises(LightvidError, match="--max-steps must be an integer >= 1, got 0"):
        train(config_from_dict(tiny_config(tmp_path)), max_steps=0, progress=False)
    raw = tiny_config(tmp_path)
    raw["pipeline"] = {**raw["pipeline"], "patch": 3}  # the data's 32x32 frames do not fold into 3x3 patches
    with pytest.raises(LightvidError, match=r"the data's frames: height and width \(32x32\) must be multiples of"):
        train(config_from_dict(raw), progress=False)
    assert not (tmp_path / "checkpoints").exists()


def test_eval_patterns_are_fixed_and_leave_a_frame_to_generate():
    from lightvid.tasks import given_frames

    assert given_frames("interpolate", 2).tolist() == [True, False]  # both ends of 2 frames: the last is generated
    assert torch.equal(given_frames("keyframes", 9), given_frames("keyframes", 9))
