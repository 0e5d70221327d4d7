"""Temporal MultiDiffusion (lightvid.pipelines.multidiffusion) and the --windows modes: the windows, the
average, equality with plain sampling where it must hold, and the commands."""
import itertools

import pytest
import torch
from cli_run import run, run_frames
from tolerances import EPS32

from lightvid.errors import LightvidError
from lightvid.io import read_video
from lightvid.models import SpaceTimeUNet, UNetConfig
from lightvid.pipelines.multidiffusion import average_over_windows, temporal_windows
from lightvid.pipelines.native import NativePipeline, NativeSettings
from lightvid.tasks import animate, interpolate
from native_fixtures import LAYOUTS, tiny_native

ROCKET = "examples/rocket.jpg"
MOTORCYCLE = "examples/motorcycle.jpg"


@pytest.mark.parametrize("frames, window, overlap", [(16, 5, 2), (17, 5, 2), (6, 5, 0), (100, 16, 8), (9, 8, 7)])
def test_windows_cover_every_frame_with_the_overlap(frames, window, overlap):
    windows = temporal_windows(frames, window, overlap)
    assert all(w.stop - w.start == window for w in windows)
    assert windows[0].start == 0 and windows[-1].stop == frames
    for a, b in itertools.pairwise(windows):
        assert a.stop - b.start >= overlap and b.start > a.start  # overlapping by O at least, always moving on


def test_a_clip_within_the_window_is_one_window_and_a_bad_overlap_is_an_error():
    assert temporal_windows(5, 5, 2) == [slice(0, 5)] and temporal_windows(3, 5, 4) == [slice(0, 3)]
    with pytest.raises(LightvidError, match=r"overlap must be in \[0, 4\]"):
        temporal_windows(10, 5, 5)


def test_the_average_of_a_per_frame_estimate_is_that_estimate():
    x = torch.randn(2, 13, 3, 4, 4)
    windows = temporal_windows(13, 5, 3)
    got = average_over_windows(x, windows, [torch.sin] * len(windows))
    # each frame is a weighted mean of 1 to 3 equal values: roundings of the products, the sum and the division
    assert (got - torch.sin(x)).abs().max() <= 8 * EPS32
    # a frame covered by two windows: the mean weighted by its place in each (ramps 1 2 3 2 1 over 5 frames)
    two = average_over_windows(x, [slice(0, 5), slice(3, 8)], [lambda v: v * 0, lambda v: v * 0 + 1])
    assert torch.allclose(two[:, 3], torch.full_like(x[:, 3], 1 / 3), atol=EPS32)  # weights 2 (first), 1 (second)
    assert torch.allclose(two[:, 4], torch.full_like(x[:, 4], 2 / 3), atol=EPS32)  # weights 1, 2
    assert torch.equal(two[:, :3], 0 * x[:, :3]) and torch.equal(two[:, 5:8], 1 + 0 * x[:, 5:8])


def _frame_wise_pipeline() -> NativePipeline:
    """A tiny model with no temporal layer: every frame is denoised on its own, so windowing cannot change it."""
    torch.manual_seed(0)
    flags = (False, False)
    config = UNetConfig(in_channels=7, out_channels=3, channels=(32, 32), layers_per_level=(1, 1), heads=(1, 1),
                        transformer_depth=(1, 1), attention=(False, True), temporal_attention=flags,
                        temporal_conv=flags, temporal_downsample=flags, mid_temporal_attention=False,
                        mid_temporal_conv=False, cross_attention_dim=None, num_added_time_ids=0, down_eps=(1e-6, 1e-6))
    settings = NativeSettings(data_channels=3, patch=1, num_frames=5, height=16, width=16, steps=3,
                              conditioning=LAYOUTS["none"], prediction="edm")
    return NativePipeline(SpaceTimeUNet(config).eval(), settings)


def test_multidiffusion_equals_plain_sampling_for_a_frame_wise_network():
    pipe = _frame_wise_pipeline()
    first, last = torch.rand(2, 3, 16, 16) * 2 - 1
    spec = interpolate(first, last, 13, 8)  # 13 frames, windows of 5 overlapping by 2
    plain = pipe(spec, generator=torch.Generator().manual_seed(3), progress=False)
    windowed = pipe(spec, generator=torch.Generator().manual_seed(3), progress=False, overlap=2)
    # the same per-frame estimates, their weighted mean over 1-3 windows rounded (a few EPS32) at each of 3 Euler
    # steps, which this random network amplifies: perturbing its output by 2 EPS32 moved the frames by 3.9e-5, and
    # the windowed run differs by 2.1e-5 (176 EPS32); a wrong window, weight or slice would put another frame's
    # estimate there, O(0.1-1) off
    assert (windowed - plain).abs().max() <= 512 * EPS32
    assert torch.equal(windowed[0], first) and torch.equal(windowed[-1], last)


@pytest.mark.parametrize("frames", [5, 3])
def test_multidiffusion_within_the_window_is_plain_sampling_bit_for_bit(frames):
    pipe = tiny_native(3, patch=2, size=16, frames=5, conditioning="flow_warps", prediction="hint_residual")
    spec = animate(torch.rand(3, 16, 16) * 2 - 1, frames, 8)
    plain = pipe(spec, generator=torch.Generator().manual_seed(1), progress=False)
    assert torch.equal(pipe(spec, generator=torch.Generator().manual_seed(1), progress=False, overlap=2), plain)


@pytest.mark.parametrize("guidance", [1.0, 2.0])  # 2: each window's hints are paired with the unconditional ones
def test_multidiffusion_beyond_the_window_keeps_given_frames_and_is_seeded(guidance):
    pipe = tiny_native(3, patch=2, size=16, frames=5, conditioning="flow_warps", prediction="hint_residual")
    first, last = torch.rand(2, 3, 16, 16) * 2 - 1
    spec = interpolate(first, last, 12, 8)
    calls = []
    hook = pipe.unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    a = pipe(spec, generator=torch.Generator().manual_seed(1), progress=False, overlap=2, guidance=guidance)
    hook.remove()
    b = pipe(spec, generator=torch.Generator().manual_seed(1), progress=False, overlap=2, guidance=guidance)
    assert a.shape == (12, 3, 16, 16) and torch.equal(a, b)
    assert torch.equal(a[0], first) and torch.equal(a[-1], last)
    assert set(calls) == {5}  # the network only ever sees a window: its memory does not grow with the clip


def test_the_commands_make_long_clips_both_ways(tmp_path, capsys):
    from native_fixtures import save_tiny_native
    model = save_tiny_native(tmp_path / "m")
    for mode in ("chain", "multidiffusion"):
        video = run_frames(capsys, tmp_path, f"a-{mode}", "animate", ROCKET, "--model", model, "--frames", "12",
                        "--windows", mode)
        assert video.shape == (12, 3, 16, 16)
    video = run_frames(capsys, tmp_path, "i", "interpolate", ROCKET, MOTORCYCLE, "--model", model, "--frames", "11",
                    "--windows", "multidiffusion")
    assert video.shape == (11, 3, 16, 16)
    clip = tmp_path / "a-chain"
    video = run_frames(capsys, tmp_path, "e", "extend", clip, "--model", model, "--new-frames", "7",
                    "--windows", "multidiffusion")
    assert video.shape == (19, 3, 16, 16) and torch.equal(video[:12], read_video(clip)[0])


def test_window_errors_are_one_line(tmp_path, capsys):
    from native_fixtures import save_tiny_native
    model = save_tiny_native(tmp_path / "m")
    code, _, err = run(capsys, "animate", ROCKET, "-o", tmp_path / "a.mp4", "--windows", "tiles")
    assert code == 2 and "--windows must be one of chain, multidiffusion, got 'tiles'" in err
    code, _, err = run(capsys, "interpolate", ROCKET, MOTORCYCLE, "-o", tmp_path / "a.mp4", "--model", model,
                       "--frames", "9")  # a chain cannot reach the last frame
    assert code == 2 and "--frames must be in [3, 5]" in err and "--windows multidiffusion makes more" in err
    assert not (tmp_path / "a.mp4").exists()


def test_the_windows_help_lists_every_mode():
    from lightvid.cli.options import WINDOW_MODE_NAMES
    from lightvid.pipelines.windows import WINDOW_MODES

    assert WINDOW_MODE_NAMES == WINDOW_MODES
