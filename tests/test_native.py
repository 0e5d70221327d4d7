"""Native models: one network serves every FrameSpec; given frames come back unchanged."""
import pytest
import torch

from lightvid.models.native import NativeNet
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import extend, image_to_video, interpolate, loop
from native_fixtures import tiny_native


def frame(value: float) -> torch.Tensor:
    return torch.full((3, 16, 16), value)


SPECS = {
    "image_to_video": lambda: image_to_video(frame(0.5), 5, fps=8),
    "interpolate": lambda: interpolate(frame(-0.5), frame(0.5), 5, fps=8),
    "extend": lambda: extend(torch.stack([frame(0.1), frame(0.2)]), 3, fps=8),
    "loop": lambda: loop(frame(0.25), 5, fps=8),
}


@pytest.mark.parametrize("channels,patch", [(1, 1), (3, 1), (3, 2)])
@pytest.mark.parametrize("task", sorted(SPECS))
def test_every_task_runs_and_keeps_given_frames(channels, patch, task):
    pipe = tiny_native(channels, patch)
    spec = SPECS[task]()
    video = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    assert video.shape == (spec.output_frames, 3, 16, 16) and torch.isfinite(video).all()
    for index, pixels in spec.given.items():
        if index < spec.output_frames:
            assert torch.equal(video[index], pixels)
    again = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(video, again)


def test_guidance_and_save_load_round_trip(tmp_path):
    pipe = tiny_native(1)
    pipe.save_pretrained(tmp_path / "m", extra={"trained_steps": 0})
    loaded = NativePipeline.from_pretrained(tmp_path / "m")
    assert loaded.settings == pipe.settings
    spec = SPECS["interpolate"]()
    run = lambda p, **kw: p(spec, generator=torch.Generator().manual_seed(1), progress=False, **kw)  # noqa: E731
    # same weights; oneDNN may pick other kernels for differently aligned tensors, so equal to rounding
    # (measured 3e-4 after two Heun steps of this random model; a wrong weight would give O(1))
    assert (run(pipe) - run(loaded)).abs().max() <= 2e-3
    assert not torch.equal(run(pipe, guidance=2.0), run(pipe))


@pytest.mark.parametrize("patch", [1, 2])
def test_noisy_input_at_given_pixels_is_ignored(patch):
    net = NativeNet(tiny_native(1, patch).unet, patch)
    x = torch.randn(1, 5, 1, 16, 16)
    mask = torch.zeros(1, 5, 1, 16, 16)
    mask[:, 0] = 1
    given = torch.randn(1, 5, 1, 16, 16) * mask
    with torch.no_grad():
        a = net(x, torch.tensor([0.1]), given, mask)
        x[:, 0] = 100.0
        b = net(x, torch.tensor([0.1]), given, mask)
    assert torch.equal(a, b)


def test_flops_of_a_native_folder_count_at_patch_resolution(tmp_path):
    from lightvid.eval.flops import count_flops, flops_for

    pipe = tiny_native(1, patch=2)
    pipe.save_pretrained(tmp_path / "m")
    assert flops_for(str(tmp_path / "m"), 5, 16, 16).flops == count_flops(pipe.unet.config, 5, 8, 8).flops
