"""Adversarial few-step distillation: losses, the frozen-encoder discriminator, the renoise sampler, and
`lightvid distill` end to end on a tiny model (finite losses, exact resume, a student that runs every task)."""
import importlib.util
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from cli_run import run
from PIL import Image
from safetensors.torch import load_file
from tolerances import EPS32, relative_error

from lightvid.diffusion import karras_sigmas, sample_renoise, student_sigmas
from lightvid.pipelines.native import NativePipeline
from lightvid.train.config import DistillConfig
from lightvid.train.distill import (
    Discriminator,
    Distillation,
    discriminator_loss,
    generator_adversarial_loss,
    pseudo_huber,
)
from native_fixtures import given_mask, save_tiny_native, tiny_native


def test_losses():
    real, fake = [torch.tensor([2.0, 0.0])], [torch.tensor([-2.0, 0.5])]
    # float32 losses of small exact numbers: exact or an ulp off; approx's default 1e-6 relative is 8 eps
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    assert generator_adversarial_loss(fake, "hinge").item() == pytest.approx(0.75)
    # softplus(0) = ln 2, a float32 log within an ulp or two
    assert generator_adversarial_loss([torch.zeros(3)], "nonsaturating").item() == pytest.approx(math.log(2),
                                                                                                rel=4 * EPS32)
    d = torch.tensor([0.0, 0.001, 3.0])
    weight = torch.tensor([1.0, 1.0, 0.0])  # the last position is a given frame: not counted
    expected = (torch.sqrt(d[:2] ** 2 + 0.03**2) - 0.03).mean()
    # the loss's own formula in the same float32 ops (measured: equal; approx's default 1e-6 relative): another
    # order would differ more, since sqrt(d² + c²) - c cancels 0.03 down to 1.7e-5
    assert pseudo_huber(d, torch.zeros(3), weight, 0.03).item() == pytest.approx(expected.item())


def test_renoise_sampler_one_step_is_the_denoiser():
    x = torch.randn(1, 3, 4, 4) * 80

    def model(v, sigma):
        return torch.tanh(v / sigma.view(-1, 1, 1, 1))

    one = sample_renoise(model, x, karras_sigmas(1, 0.002, 80.0), disable=True)
    assert torch.equal(one, model(x, torch.tensor([80.0])))
    levels = student_sigmas(2, 0.002, 80.0)
    assert levels[0] == 80 and 0.1 < levels[1] < 80 and levels[2] == 0  # two real steps, none wasted at sigma_min
    seen = []
    sample_renoise(lambda v, sigma: seen.append(sigma[0].item()) or v * 0, x, levels, disable=True,
                   generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx(levels[:2].tolist())  # the same float32 levels read back: equal


def test_discriminator_trains_heads_only():
    pipe = tiny_native(data_channels=1, patch=2, size=16, frames=4)
    disc = Discriminator(pipe.denoiser.net, sigma_data=0.5, hidden=16).train()
    clips = torch.randn(2, 4, 1, 16, 16)
    mask = torch.zeros(2, 4, 1, 16, 16)
    mask[:, 0] = 1
    logits = disc(clips, torch.tensor([0.5, 3.0]), clips * mask, mask)
    levels = len(pipe.unet.config.channels) + 1  # every down level and the mid level
    assert len(logits) == 2 * levels and all(torch.isfinite(x).all() for x in logits)
    sum(x.mean() for x in logits).backward()
    assert all(p.grad is None for p in disc.encoder.parameters())
    assert all(p.grad is not None for p in disc.spatial.parameters()) and not disc.encoder.training


def test_discriminator_noise_levels_follow_the_distill_config():
    pipe = tiny_native(data_channels=1, patch=2, size=16, frames=4)
    cfg = DistillConfig(teacher="t", discriminator_p_mean=-2.0, discriminator_p_std=0.0, head_channels=16)
    distill = Distillation(cfg, pipe, sigma_min=0.002, sigma_max=80.0)
    # exp(-2) by a float32 exp (within an ulp or two) against float64's rounded to float32 (½ ulp)
    assert torch.allclose(distill._discriminator_sigma(3, torch.Generator()), torch.full((3,), math.exp(-2.0)),
                          rtol=4 * EPS32, atol=0)
    spread = replace(cfg, discriminator_p_std=1.0)
    sigma = Distillation(spread, pipe, 0.002, 80.0)._discriminator_sigma(4000, torch.Generator())
    # 4000 normal draws: the standard error is 0.016 for the mean and 0.011 for the std; 0.1 is 6-9 of those
    # (seeded, so not flaky), and a wrong p_mean or p_std would be off by far more
    assert sigma.log().mean().item() == pytest.approx(-2.0, abs=0.1)
    assert sigma.log().std().item() == pytest.approx(1.0, abs=0.1)


def _toy_batch():
    """clips (2, 4, 1, 16, 16), which frames are given, the generated-frame weight, a toy student's output."""
    torch.manual_seed(0)
    clips = torch.rand(2, 4, 1, 16, 16) * 2 - 1
    given = torch.tensor([[True, False, False, True], [True, False, False, False]])
    generated = (~given).float().view(2, 4, 1, 1, 1)
    sample = torch.randn(2, 4, 1, 16, 16) * 0.5
    return clips, given, generated, sample


def _sample_gradient(pipe, clips, given, sample, teacher_target=None, calls=None, **weights):
    """d(generator loss)/d(sample) for a toy student whose output is `sample`, and the logs. With teacher_target,
    the teacher's denoising is replaced by it (checked against the teacher itself separately) and each call's
    arguments are appended to `calls`."""
    cfg = DistillConfig(teacher="t", head_channels=16, **weights)
    torch.manual_seed(1)  # the same discriminator heads every time
    distill = Distillation(cfg, pipe, sigma_min=0.002, sigma_max=80.0)
    if teacher_target is not None:
        distill._teacher_target = lambda *args: calls.append(args) or teacher_target
    leaf = sample.clone().requires_grad_()
    loss, logs, _ = distill.generator_loss(lambda *args, **kwargs: leaf, clips, given_mask(given, clips),
                                           torch.Generator())
    loss.backward()
    expected = logs["adversarial_scale"] * logs["adversarial"] + cfg.reconstruction_weight * logs["reconstruction"]
    expected += cfg.teacher_weight * logs.get("teacher", 0.0)
    # the loss is the float32 sum of the logged terms; recomputed here in float64 from them: a few eps apart
    assert loss.item() == pytest.approx(expected, rel=8 * EPS32)
    return leaf.grad, logs


def test_generator_gradient_balances_adversarial_against_reconstruction():
    pipe = tiny_native(data_channels=1, patch=2, size=16, frames=4)
    clips, given, generated, sample = _toy_batch()

    def gradient(**weights):
        return _sample_gradient(pipe, clips, given, sample, **weights)[0]

    adversarial = gradient(adversarial_weight=0.7, reconstruction_weight=0.0)
    reconstruction = gradient(adversarial_weight=0.0, reconstruction_weight=1.0)
    both = gradient(adversarial_weight=0.7, reconstruction_weight=1.0)
    d = sample - clips  # pseudo-Huber's gradient, exactly: d / sqrt(d² + c²), averaged over generated positions
    exact = generated * d / torch.sqrt(d * d + 0.03**2) / (generated.expand_as(d).sum())
    # autograd's gradient and the formula: the same few elementwise float32 roundings in another order
    assert relative_error(reconstruction, exact) <= 8 * EPS32
    # the adversarial gradient is scaled to 0.7x the reconstruction's norm: two float32 norms of 2048 values
    # (each within ~log2(2048) = 11 eps with pairwise/SIMD summation) and a scale; measured 0.4 eps
    assert adversarial.norm().item() == pytest.approx(0.7 * exact.norm().item(), rel=32 * EPS32)
    assert (adversarial * (1 - generated)).abs().max() == 0  # given frames are the real ones, not the student's
    # autograd adds the two terms' gradients: one float32 rounding of the sum
    assert relative_error(both, adversarial + reconstruction) <= 4 * EPS32


def test_teacher_term_pulls_the_sample_to_the_teachers_denoising():
    pipe = tiny_native(data_channels=1, patch=2, size=16, frames=4)
    clips, given, generated, sample = _toy_batch()
    target = torch.randn(2, 4, 1, 16, 16) * 0.5

    calls = []

    def gradient(**weights):
        return _sample_gradient(pipe, clips, given, sample, teacher_target=target, calls=calls, **weights)

    teacher, logs = gradient(adversarial_weight=0.0, reconstruction_weight=0.0, teacher_weight=0.5)
    (at, given_frames, mask, _), = calls  # the teacher sees the student's clip, the given frames and the mask
    assert torch.equal(mask, (1 - generated).expand(2, 4, 1, 16, 16)) and torch.equal(given_frames, clips * mask)
    assert torch.equal(at, mask * clips + generated * sample)  # given frames are the real ones
    d = sample - target
    exact = generated * d / torch.sqrt(d * d + 0.03**2) / (generated.expand_as(d).sum())
    assert relative_error(teacher, 0.5 * exact) <= 8 * EPS32  # as for the reconstruction term above
    # a float32 norm of the same values (approx's default 1e-6 relative, 8 eps; measured: equal)
    assert logs["teacher_grad"] == pytest.approx(exact.norm().item())
    reconstruction, logs = gradient(adversarial_weight=0.0, reconstruction_weight=1.0)
    assert len(calls) == 1 and "teacher" not in logs  # teacher_weight 0: no teacher call (and no random draws)
    both, _ = gradient(adversarial_weight=0.0, reconstruction_weight=1.0, teacher_weight=0.5)
    assert relative_error(both, reconstruction + teacher) <= 4 * EPS32  # one rounding of the sum, as above

    # the target: the teacher's denoising at σ_t = exp(teacher_p_mean) when teacher_p_std is 0
    cfg = DistillConfig(teacher="t", head_channels=16, teacher_p_mean=-1.0, teacher_p_std=0.0)
    distill = Distillation(cfg, pipe, sigma_min=0.002, sigma_max=80.0)
    mask = generated.new_ones(2, 4, 1, 16, 16) - generated
    replay = torch.Generator().manual_seed(3)
    torch.randn(2, generator=replay)  # the σ_t draw
    sigma = torch.full((2,), math.exp(-1.0))
    with torch.no_grad():
        expected = pipe.denoiser(sample + sigma.view(-1, 1, 1, 1, 1) * torch.randn(sample.shape, generator=replay),
                                 sigma, given=clips * mask, mask=mask)
    got = distill._teacher_target(sample, clips * mask, mask, torch.Generator().manual_seed(3))
    # the same network on the same inputs (measured: equal); a few eps if oneDNN picks other kernels for
    # differently aligned memory
    assert relative_error(got, expected) <= 16 * EPS32


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):  # 1 channel, patch 2, 32x32, window 6
    return save_tiny_native(tmp_path_factory.mktemp("teacher") / "t", data_channels=1, patch=2, size=32, frames=6,
                            dataset="moving_mnist")


def _config(tmp_path, steps=3):
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump({"train": {"steps": steps, "batch_size": 2, "checkpoint_every": 1, "log_every": 1,
                                              "bf16": False},
                                    "distill": {"head_channels": 16, "teacher_weight": 1.0}}))
    return path


def test_distill_end_to_end_and_the_student_runs_every_task(capsys, tmp_path, teacher):
    code, _, err = run(capsys, "distill", "--model", teacher, "--student-steps", 1, "-o", tmp_path / "student",
                         "--config", _config(tmp_path))
    assert code == 0, err
    student = NativePipeline.from_pretrained(tmp_path / "student")
    assert (student.settings.steps, student.settings.sampler) == (1, "renoise")
    assert student.facts["student_steps"] == 1 and student.facts["distilled_from"] == str(teacher)
    records = [json.loads(line) for line in (tmp_path / "student.work" / "log.jsonl").read_text().splitlines()]
    losses = [r[k] for r in records for k in ("loss", "adversarial", "reconstruction", "teacher", "discriminator")]
    assert len(records) == 3 and all(torch.isfinite(torch.tensor(losses)))
    Image.new("RGB", (40, 24), (90, 140, 200)).save(tmp_path / "a.png")
    commands = [["animate", tmp_path / "a.png"], ["interpolate", tmp_path / "a.png", tmp_path / "a.png"],
                ["loop", tmp_path / "a.png"], ["extend", tmp_path / "animate.mp4", "--new-frames", 8]]
    for command in commands:
        name = command[0]
        code, _, err = run(capsys, *command, "-o", tmp_path / f"{name}.mp4", "--model", tmp_path / "student")
        assert code == 0 and (tmp_path / f"{name}.mp4").exists(), (name, err)
    code, _, err = run(capsys, "animate", tmp_path / "a.png", "-o", tmp_path / "t.mp4", "--model",
                       tmp_path / "student", "--steps", 2)
    assert code == 0 and f"sampling with the teacher {teacher}" in err  # --steps N: the teacher samples


def test_distill_resumes_exactly(capsys, tmp_path, teacher):
    straight, stopped = tmp_path / "a", tmp_path / "b"
    straight.mkdir()
    stopped.mkdir()
    assert run(capsys, "distill", "--model", teacher, "-o", straight / "s", "--config", _config(tmp_path))[0] == 0
    code, out, _ = run(capsys, "distill", "--model", teacher, "-o", stopped / "s", "--config", _config(tmp_path),
                       "--max-steps", 2)
    assert code == 0 and "stopped at step 2 of 3" in out and not (stopped / "s").exists()
    code, _, err = run(capsys, "distill", "--model", teacher, "-o", stopped / "s", "--student-steps", 2,
                       "--config", _config(tmp_path))
    assert code == 2 and "other settings (distill.student_steps)" in err  # a rerun continues the same run, or none
    assert run(capsys, "distill", "--model", teacher, "-o", stopped / "s", "--config", _config(tmp_path))[0] == 0
    for name in ("unet/model.safetensors", "ema.safetensors", "discriminator.safetensors"):
        a = load_file(straight / "s.work" / "checkpoints" / "step_00000003" / name)
        b = load_file(stopped / "s.work" / "checkpoints" / "step_00000003" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("args,message", [
    (["--student-steps", "0"], "--student-steps must be in [1, 8]"),
    (["--config", "{tmp}/bad.yaml"], "unknown section(s) ['optimizer']"),
    (["--config", "{tmp}/badloss.yaml"], "discriminator_loss 'wasserstein'"),
    (["--config", "{tmp}/empty.yaml"], "must be a mapping"),
    (["--config", "{tmp}/badweight.yaml"], "weights and p_std values must be numbers >= 0"),
    (["--max-steps", "0"], "--max-steps must be in [1, 10,000,000], got 0"),
])
def test_distill_bad_input_one_line_exit_2(capsys, tmp_path, teacher, args, message):
    (tmp_path / "bad.yaml").write_text("optimizer: {lr: 1}\n")
    (tmp_path / "badloss.yaml").write_text("distill: {discriminator_loss: wasserstein}\n")
    (tmp_path / "empty.yaml").write_text("train: 3\n")
    (tmp_path / "badweight.yaml").write_text("distill: {teacher_weight: '2'}\n")
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = run(capsys, "distill", "--model", teacher, "-o", tmp_path / "s", *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.work").exists()


def _ship_model_script():
    spec = importlib.util.spec_from_file_location("ship_model", Path(__file__).parents[1] / "tools" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_student(folder, steps, size=32):
    """A model folder shaped like a `lightvid distill` output of the `teacher` fixture (random weights)."""
    student = tiny_native(1, patch=2, size=size, frames=6)
    student.settings.steps, student.settings.sampler = steps, "renoise"
    student.save_pretrained(folder, extra={"dataset": "moving_mnist", "student_steps": steps,
                                           "distilled_from": "runs/somewhere"})
    return folder


def test_a_shipped_student_samples_by_default_and_steps_choose_the_teacher(capsys, tmp_path, teacher):
    ship = _ship_model_script()
    _fake_student(tmp_path / "run", steps=1)
    ship.ship(teacher, tmp_path / "model")
    model = tmp_path / "model"
    shipped = ship.ship_student(tmp_path / "run", model)
    assert shipped == model / "1step"
    assert json.loads((model / "pipeline.json").read_text())["student"] == "1step"

    pipe, used, note = NativePipeline.for_sampling(model)
    assert pipe.settings.steps == 1 and used == f"{model}/1step" and "1-step student" in note
    assert pipe.facts["distilled_from"] == str(model)  # outside the package: the path
    weights = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.equal(p, weights[k].to(torch.bfloat16).float()) for k, p in pipe.unet.state_dict().items())
    for chosen in ({"steps": 2}, {"sampler": "heun"}, {"steps": 1}):  # any choice of the user's: the model itself
        pipe, used, note = NativePipeline.for_sampling(model, **chosen)
        assert (pipe.settings.steps, used, note) == (2, str(model), None)
    for own in ({"steps": 1}, {"sampler": "renoise"}):  # the student's own settings keep the student
        assert NativePipeline.for_sampling(shipped, **own)[1:] == (str(shipped), None)
    for other in ({"steps": 2}, {"sampler": "heun"}):  # other ones hand over to its teacher
        assert NativePipeline.for_sampling(shipped, **other)[1:] == (str(model), f"sampling with the teacher {model}")

    Image.new("RGB", (40, 24), (90, 140, 200)).save(tmp_path / "a.png")
    code, _, err = run(capsys, "loop", tmp_path / "a.png", "-o", tmp_path / "s.mp4", "--model", model)
    assert code == 0 and "the 1-step student" in err, err
    code, _, err = run(capsys, "loop", tmp_path / "a.png", "-o", tmp_path / "t.mp4", "--model", model, "--steps", 2)
    assert code == 0 and "student" not in err, err
    code, out, err = run(capsys, "eval", "--model", model, "--task", "interpolate", "--clips", 2, "--no-fd",
                         "-o", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["model"] == f"{model}/1step" and report["steps"] == 1, err  # named as sampled
    assert out.startswith(f"{model}/1step · interpolate")

    _fake_student(tmp_path / "run4", steps=4)  # a new student replaces the old one
    ship.ship_student(tmp_path / "run4", model)
    assert json.loads((model / "pipeline.json").read_text())["student"] == "4step" and not shipped.exists()
    with pytest.raises(SystemExit, match="not its student"):
        ship.ship_student(_fake_student(tmp_path / "other", steps=1, size=16), model)
    shutil.rmtree(model / "4step")  # a pipeline.json that names a missing student: one line, exit 2, no output
    code, _, err = run(capsys, "loop", tmp_path / "a.png", "-o", tmp_path / "u.mp4", "--model", model)
    assert code == 2 and err.count("\n") == 1 and "names the student '4step'" in err, err
    assert not (tmp_path / "u.mp4").exists()
    ship.ship(teacher, model)  # a new teacher drops the student distilled from the old one
    assert "student" not in json.loads((model / "pipeline.json").read_text())


def test_shipping_can_set_the_flow_behind_a_flow_hinted_models_hint(tmp_path, teacher):
    ship = _ship_model_script()
    flow_model = tiny_native(3, 2, 16, 5, conditioning="flow_warps", prediction="hint_residual")
    flow_model.save_pretrained(tmp_path / "run", extra={"dataset": "camera_motion"})
    ship.ship(tmp_path / "run", tmp_path / "model", flow="farneback_global")
    shipped = NativePipeline.from_pretrained(tmp_path / "model")
    assert shipped.settings.conditioning.flow == "farneback_global"
    trained = load_file(tmp_path / "run" / "model.safetensors")  # the weights themselves are unchanged
    assert all(torch.equal(p, trained[k].to(torch.bfloat16).float()) for k, p in shipped.unet.state_dict().items())
    with pytest.raises(SystemExit, match="--flow needs a flow-hinted model, not hint 'none'"):
        ship.ship(teacher, tmp_path / "other", flow="farneback_global")
    assert not (tmp_path / "other").exists()
