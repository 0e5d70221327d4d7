"""`lightvid restyle` (SDEdit) and style weights (a blend of two checkpoints of one architecture)."""
import pytest
import torch
from cli_run import run, run_frames

from lightvid.errors import LightvidError
from lightvid.pipelines.native import restyle_sigma
from lightvid.pipelines.style import blend_weights
from lightvid.tasks import FrameSpec, animate
from native_fixtures import tiny_native

ROCKET = "examples/rocket.jpg"


def _two_models():
    base = tiny_native(3, patch=2, size=16, frames=5)
    torch.manual_seed(1)  # tiny_native seeds 0: reinitialise the second one's weights
    style = tiny_native(3, patch=2, size=16, frames=5)
    for p in style.unet.parameters():
        p.data.normal_(0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
    return base, style


def _sample(pipe):
    spec = animate(torch.zeros(3, 16, 16), 5, 8)
    return pipe(spec, generator=torch.Generator().manual_seed(2), progress=False)


def test_alpha_zero_and_one_are_the_two_models_exactly():
    base, style = _two_models()
    assert torch.equal(_sample(blend_weights(base, style, 0.0)), _sample(base))
    assert torch.equal(_sample(blend_weights(base, style, 1.0)), _sample(style))
    half = _sample(blend_weights(base, style, 0.5))
    assert not torch.equal(half, _sample(base)) and not torch.equal(half, _sample(style))
    weight = next(iter(blend_weights(base, style, 0.25).unet.parameters()))
    a, b = next(iter(base.unet.parameters())), next(iter(style.unet.parameters()))
    assert torch.allclose(weight, 0.75 * a + 0.25 * b, atol=1e-7)  # float32 rounding of one lerp


def test_blending_other_architectures_is_a_clear_error():
    base = tiny_native(3, patch=2, size=16, frames=5)
    with pytest.raises(LightvidError, match=r"in_channels.*one architecture"):
        blend_weights(base, tiny_native(3, patch=1, size=16, frames=5), 0.5)
    with pytest.raises(LightvidError, match=r"prediction in pipeline\.json"):
        blend_weights(base, tiny_native(3, patch=2, size=16, frames=5, prediction="x0"), 0.5)
    with pytest.raises(LightvidError, match=r"--alpha must be in \[0, 1\]"):
        blend_weights(base, base, 1.5)


def test_sdedit_keeps_more_of_the_clip_at_a_lower_strength():
    pipe = tiny_native(3, patch=2, size=16, frames=5)
    clip = torch.rand(5, 3, 16, 16) * 2 - 1
    spec = FrameSpec(5, 8, height=16, width=16)
    error = {}
    for strength in (0.05, 1.0):
        out = pipe(spec, init=clip, strength=strength, generator=torch.Generator().manual_seed(0), progress=False)
        error[strength] = float((out - clip).abs().mean())
    # at 0.05 the noise added is sigma ~0.005 and the random network changes little; at 1 the clip is gone
    assert error[0.05] < 0.5 * error[1.0]
    assert restyle_sigma(1.0, 0.002, 80.0) == pytest.approx(80.0) and restyle_sigma(0.5, 0.002, 80.0) < 10


def test_restyle_command_and_its_errors(tmp_path, capsys):
    from native_fixtures import save_tiny_native
    model, other = save_tiny_native(tmp_path / "m"), save_tiny_native(tmp_path / "o", patch=1)
    clip = tmp_path / "clip"
    run_frames(capsys, tmp_path, "clip", "animate", ROCKET, "--model", model, "--frames", "8")
    a = run_frames(capsys, tmp_path, "a", "restyle", clip, "--model", model, "--strength", "0.4", "--seed", "3")
    b = run_frames(capsys, tmp_path, "b", "restyle", clip, "--model", model, "--strength", "0.4", "--seed", "3",
                   "--style-weights", model, "--alpha", "0.3")  # a model blended with itself is itself
    assert a.shape == (8, 3, 16, 16) and torch.equal(a, b)
    target = tmp_path / "x.mp4"
    for args, message in [(("--strength", "0"), "--strength must be in (0, 1], got 0.0"),
                          (("--alpha", "0.5"), "--alpha needs --style-weights"),
                          (("--style-weights", model, "--alpha", "2"), "--alpha must be in [0, 1]"),
                          (("--style-weights", other), "one architecture")]:
        code, _, err = run(capsys, "restyle", clip, "-o", target, "--model", model, *args)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not target.exists()
