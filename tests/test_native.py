"""Native models: one network serves every FrameSpec; given frames come back unchanged."""
import math

import pytest
import torch
from tolerances import EPS32, relative_error

from lightvid.conditioning import Conditioning, flow_hint, nearest_given
from lightvid.errors import LightvidError
from lightvid.models.native import NativeNet
from lightvid.pipelines.native import NativePipeline
from lightvid.tasks import animate, extend, interpolate, loop
from native_fixtures import LAYOUTS, tiny_native


def frame(value: float) -> torch.Tensor:
    return torch.full((3, 16, 16), value)


SPECS = {
    "animate": lambda: animate(frame(0.5), 5, fps=8),
    "interpolate": lambda: interpolate(frame(-0.5), frame(0.5), 5, fps=8),
    "extend": lambda: extend(torch.stack([frame(0.1), frame(0.2)]), 3, fps=8),
    "loop": lambda: loop(frame(0.25), 5, fps=8),
}


@pytest.mark.parametrize("channels,patch,conditioning,prediction", [
    (1, 1, "none", "edm"), (3, 1, "none", "edm"), (3, 2, "none", "edm"), (3, 2, "nearest", "edm"),
    (3, 2, "nearest", "hint_residual"), (3, 2, "flow", "hint_residual"),
    (3, 2, "flow_warps", "hint_residual")])
@pytest.mark.parametrize("task", sorted(SPECS))
def test_every_task_runs_and_keeps_given_frames(channels, patch, conditioning, prediction, task):
    pipe = tiny_native(channels, patch, conditioning=conditioning, prediction=prediction)
    spec = SPECS[task]()
    video = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    assert video.shape == (spec.output_frames, 3, 16, 16) and torch.isfinite(video).all()
    for index, pixels in spec.given.items():
        if index < spec.output_frames:
            assert torch.equal(video[index], pixels)
    again = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(video, again)


def test_x0_prediction_is_read_back_and_used(tmp_path):
    pipe = tiny_native(1, prediction="x0")
    pipe.save_pretrained(tmp_path / "m")
    loaded = NativePipeline.from_pretrained(tmp_path / "m")
    assert loaded.denoiser.prediction == "x0"
    x = torch.randn(1, 5, 1, 16, 16)
    mask = torch.zeros(1, 5, 1, 16, 16)
    with torch.no_grad():  # x0: D is the network's output itself, whatever the noisy input's scale
        raw = loaded.denoiser.net(x / (0.5 ** 2 + 0.5 ** 2) ** 0.5, torch.tensor([0.25 * math.log(0.5)]), mask, mask)
        # the inputs differ by float32 rounding (x / total here, x · (1 / total) in the denoiser: an ulp), which
        # the random network carries to its output: measured 6 eps of max|D| with AVX-512 kernels, 9 with AVX2
        # ones (1.0e-6 and 1.5e-6; 1.7e-6 on an AVX2-only EPYC); a wrong c_skip or c_out is off by O(0.1)
        assert relative_error(loaded.denoiser(x, 0.5, given=mask, mask=mask), raw) <= 64 * EPS32
    (tmp_path / "m" / "pipeline.json").write_text((tmp_path / "m" / "pipeline.json").read_text()
                                                  .replace('"x0"', '"eps"'))
    with pytest.raises(LightvidError, match="prediction 'eps' is not one of edm, x0, hint_residual"):
        NativePipeline.from_pretrained(tmp_path / "m")


def test_hint_residual_adds_the_nearest_given_frame_and_sampling_starts_there():
    pipe = tiny_native(3, 2, conditioning="nearest", prediction="hint_residual")
    net = pipe.denoiser.net
    plain = NativeNet(net.unet, LAYOUTS["nearest"], "edm", 2)  # the same network without the skip
    x = torch.randn(1, 5, 3, 16, 16)
    mask = torch.zeros(1, 5, 1, 16, 16)
    mask[:, 2] = 1
    given = torch.randn(1, 5, 3, 16, 16) * mask
    c = torch.tensor([0.1])
    with torch.no_grad():  # every frame's nearest given frame is frame 2
        # the same network output plus the hint: one float32 rounding (measured: equal)
        assert relative_error(net(x, c, given, mask), plain(x, c, given, mask) + given[:, 2:3]) <= 4 * EPS32
    assert torch.equal(net.start(given, mask), given[:, 2:3].expand_as(given))  # sampling starts at the hint
    assert torch.equal(plain.start(given, mask), torch.zeros_like(given))  # other models: at zero
    with pytest.raises(LightvidError, match="'hint_residual' needs a hint"):
        NativeNet(tiny_native(3, 2).unet, Conditioning(), "hint_residual", 2)


def test_guidance_and_save_load_round_trip(tmp_path):
    pipe = tiny_native(1)
    pipe.save_pretrained(tmp_path / "m", extra={"trained_steps": 0})
    loaded = NativePipeline.from_pretrained(tmp_path / "m")
    assert loaded.settings == pipe.settings
    spec = SPECS["interpolate"]()
    run = lambda p, **kw: p(spec, generator=torch.Generator().manual_seed(1), progress=False, **kw)  # noqa: E731
    # same weights; oneDNN may pick other kernels for differently aligned tensors, so equal to rounding
    # (measured 3.0e-4 of max|frame| = 1 after two Heun steps of this random model, with AVX-512 and AVX2 kernels
    # alike; a wrong weight would give O(1))
    assert relative_error(run(pipe), run(loaded)) <= 2e-3
    assert not torch.equal(run(pipe, guidance=2.0), run(pipe))


@pytest.mark.parametrize("patch,conditioning", [(1, "none"), (2, "none"), (2, "nearest")])
def test_noisy_input_at_given_pixels_is_ignored(patch, conditioning):
    net = tiny_native(1, patch, conditioning=conditioning).denoiser.net
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


def test_nearest_given_matches_a_per_pixel_search():
    g = torch.Generator().manual_seed(0)
    b, f, c, h, w = 2, 7, 2, 3, 4
    mask = (torch.rand(b, f, 1, h, w, generator=g) < 0.25).float()
    mask[0, :, :, 0, 0] = 0  # a pixel no frame gives
    given = torch.randn(b, f, c, h, w, generator=g) * mask
    hint, hinted, offset = nearest_given(given, mask)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                sources = [s for s in range(f) if mask[i, s, 0, y, x]]
                for t in range(f):
                    if not sources:
                        assert hinted[i, t, 0, y, x] == 0 and offset[i, t, 0, y, x] == 0
                        assert torch.equal(hint[i, t, :, y, x], torch.zeros(c))
                        continue
                    source = min(sources, key=lambda s: (abs(s - t), s))  # nearest, earlier on ties
                    assert hinted[i, t, 0, y, x] == 1 and offset[i, t, 0, y, x] == source - t
                    assert torch.equal(hint[i, t, :, y, x], given[i, source, :, y, x])


def test_nearest_conditioning_shows_every_frame_the_given_frame():
    # image-to-video from frame 1 of 4: every frame's hint is frame 1, offsets -1..2; given frames unchanged
    given = torch.zeros(1, 4, 1, 2, 2)
    given[:, 1] = 0.7
    mask = torch.zeros(1, 4, 1, 2, 2)
    mask[:, 1] = 1
    hint, hinted, offset = nearest_given(given, mask)
    assert torch.equal(hint, torch.full_like(given, 0.7)) and torch.equal(hinted, torch.ones_like(mask))
    assert offset[0, :, 0, 0, 0].tolist() == [1.0, 0.0, -1.0, -2.0]


def test_flow_hint_is_the_farneback_interpolation_between_given_frames():
    from lightvid.data.camera_motion import CameraMotion
    from lightvid.eval.baselines import farneback, farneback_visible, farneback_warps

    clip, _ = CameraMotion(split="test", num_frames=6, size=32)[0]  # (6, 3, 32, 32), a real camera move
    flags = torch.tensor([True, False, False, True, False, False])
    mask = flags.float()[None, :, None, None, None].expand(1, 6, 1, 32, 32).clone()
    given = clip[None] * mask
    hint, _, offset = nearest_given(given, mask)
    flow, flow_offset, blend = flow_hint(given, mask, hint, offset)
    assert torch.equal(flow[0], farneback(clip, flags))  # frames 1-2 by flow; 4-5 copy frame 3, as before
    assert torch.equal(flow[0, 3:], hint[0, 3:]) and not torch.equal(flow[0, 1:3], hint[0, 1:3])
    assert ((flow[0, 1:3] - clip[1:3]) ** 2).mean() < ((hint[0, 1:3] - clip[1:3]) ** 2).mean()
    # the flow-hinted frames' hint is at their own time: offset 0; copied frames keep their distance
    assert offset[0, :, 0, 0, 0].tolist() == [0, -1, 1, 0, -1, -2]
    assert flow_offset[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0, -1, -2]
    # the blend inputs are the parts of frames 1-2's flow hints, [from_b - from_a ‖ inside_a ‖ inside_b ‖ t]
    for i, warp in farneback_warps(clip, flags).items():
        parts = [torch.from_numpy(warp.from_b - warp.from_a).permute(2, 0, 1),
                 torch.from_numpy(warp.inside_a)[None], torch.from_numpy(warp.inside_b)[None]]
        assert torch.equal(blend[0, i, :5], torch.cat(parts)) and (blend[0, i, 5] == warp.t).all()
    assert blend[0, 1, :3].abs().mean() > 0.01 and not blend[0, [0, 3, 4, 5]].any()  # zeros without a flow hint
    # visible=True (warp_weights "visible"): the hint is farneback_visible, the last blend channel its weight of from_b
    visible, _, visible_blend = flow_hint(given, mask, hint, offset, visible=True)
    assert torch.equal(visible[0], farneback_visible(clip, flags))
    assert torch.equal(visible_blend[:, :, :5], blend[:, :, :5])
    for i, warp in farneback_warps(clip, flags).items():
        assert torch.equal(visible_blend[0, i, 5], torch.from_numpy(warp.visible_weight()))
    # a per-pixel mask, or a single given frame: nothing to interpolate between, the nearest-given hint stays
    pixel_mask, one_frame = mask.clone(), mask.clone()
    pixel_mask[..., :4, :] = 0
    one_frame[:, 3] = 0
    for keep in (pixel_mask, one_frame):
        kept_hint, _, kept_offset = nearest_given(given * keep, keep)
        kept = flow_hint(given * keep, keep, kept_hint, kept_offset)
        assert torch.equal(kept[0], kept_hint) and torch.equal(kept[1], kept_offset) and not kept[2].any()


def test_a_model_whose_flow_is_farneback_global_is_hinted_by_that_baseline():
    from lightvid.data.camera_motion import CameraMotion
    from lightvid.eval.baselines import farneback_global, farneback_visible

    clip = CameraMotion(split="test", num_frames=16, size=128)[30][0][::5]  # frames 0, 5, 10, 15: a fast move
    flags = torch.tensor([True, False, False, True])
    mask = flags.float()[None, :, None, None, None].expand(1, 4, 1, 128, 128).clone()
    given = clip[None] * mask
    pipe = tiny_native(3, 4, size=128, frames=4, conditioning="flow_warps", prediction="hint_residual")
    pipe.denoiser.net.conditioning = Conditioning("flow", "farneback_global", "visible", True)  # the shipped photo's
    hint = pipe.denoiser.net.start(given, mask)  # (1, 4, 3, 128, 128): where sampling starts
    assert torch.equal(hint[0], farneback_global(clip, flags))
    # measured on this clip: 14.68 dB by plain Farneback flow (visible), 32.49 with the camera motion compensated
    error = {name: ((f(clip, flags)[1:3] - clip[1:3]) ** 2).mean() for name, f in
             (("visible", farneback_visible), ("global", farneback_global))}
    assert error["global"] < error["visible"] / 10, error


def test_warp_inputs_logit_reweighs_the_two_flow_warps():
    from einops import rearrange

    from lightvid.data.camera_motion import CameraMotion

    net = tiny_native(3, 2, conditioning="flow_warps", prediction="hint_residual").denoiser.net
    clip, _ = CameraMotion(split="test", num_frames=5, size=16)[0]  # a real camera move: the two warps differ
    mask = torch.zeros(1, 5, 1, 16, 16)
    mask[:, [0, 4]] = 1
    given, x, c = clip[None] * mask, torch.randn(1, 5, 3, 16, 16), torch.tensor([0.3])
    hints = net.hints(given, mask)  # the visible flow hint, and its parts
    spread, w = hints.warps[:, :, :3], hints.warps[:, :, 5:6]  # (1, 5, 3, 16, 16), (1, 5, 1, 16, 16)
    t = torch.tensor([0, 0.25, 0.5, 0.75, 0]).view(1, 5, 1, 1, 1)
    assert spread[:, 1:4].abs().mean() > 0.01 and ((w != t)[:, 1:4]).any()  # some warps leave their frame here
    with torch.no_grad():
        net.unet.conv_out.weight[-4:] = 0  # the logit's 2x2 patch rows: a zero logit
        net.unet.conv_out.bias[-4:] = 0
        out = rearrange(net.unet(net.unet_input(x, given, mask), c), "b f (c p q) h w -> b f c (h p) (w q)", p=2, q=2)
        before = net(x, c, given, mask)
        assert torch.equal(before, hints.hint + out[:, :, :3])  # a zero logit: the hint plus the residual
        net.unet.conv_out.bias[-4:] = 30.0  # every pixel takes frame 4's warp alone
        after = net(x, c, given, mask)
    # x0 = hint + residual + (sigmoid(logit(w) + 30) - sigmoid(logit(w)))·spread, i.e. + (1 - w)·spread up to
    # sigmoid(-30) ≈ 1e-13 and float32 rounding of values of order 1 (~1e-7); frames 0 and 4 (given, no flow
    # hint: spread 0) do not move
    # measured 13 eps of max|(1 - w)·spread| ≈ 0.3: about 1 eps of the x0 values (~3) that after and before round
    assert relative_error(after - before, (1 - w) * spread) <= 64 * EPS32
    with pytest.raises(LightvidError, match="warp_inputs needs prediction 'hint_residual'"):
        NativeNet(net.unet, net.conditioning, "x0", 2)


def test_hint_residual_sampling_starts_from_the_hint_plus_noise():
    # at a tiny sigma_max one re-noising step is D(hint + ~0): the start, not zeros + noise, is what D sees
    pipe = tiny_native(3, 2, conditioning="nearest", prediction="hint_residual")
    pipe.settings.sigma_min, pipe.settings.sigma_max = 1e-5, 1e-4
    spec = SPECS["animate"]()
    out = pipe(spec, steps=1, sampler="renoise", generator=torch.Generator().manual_seed(0), progress=False)
    given, mask = (t[None] for t in spec.conditioning())
    with torch.no_grad():
        from_hint = pipe.denoiser(pipe.denoiser.net.start(given, mask), 1e-4, given=given, mask=mask)[0]
        from_zero = pipe.denoiser(torch.zeros_like(given), 1e-4, given=given, mask=mask)[0]
    generated = [i for i in range(spec.output_frames) if i not in spec.given]
    # measured: 0.0024 from the hint (the 1e-4 noise through a random network), 1.36 from zeros
    assert (out[generated] - from_hint[generated].clamp(-1, 1)).abs().max() < 0.02
    assert (out[generated] - from_zero[generated].clamp(-1, 1)).abs().max() > 0.5


def test_hint_is_computed_once_per_sampling_call(monkeypatch):
    import lightvid.conditioning.layout as layout

    calls = []
    real = layout.nearest_given
    monkeypatch.setattr(layout, "nearest_given", lambda g, m: calls.append(1) or real(g, m))
    pipe = tiny_native(3, 2, conditioning="flow", prediction="hint_residual")
    spec = SPECS["interpolate"]()
    pipe(spec, steps=3, sampler="heun", generator=torch.Generator().manual_seed(0), progress=False)  # 5 net calls
    assert len(calls) == 1
    pipe(spec, steps=3, sampler="heun", generator=torch.Generator().manual_seed(0), progress=False)
    assert len(calls) == 2  # a new call brings new conditioning tensors: computed again


@pytest.mark.parametrize("mode,flow,layout", [
    ("native", None, Conditioning()), ("native_nearest", None, Conditioning("nearest")),
    ("native_flow", "farneback_global", Conditioning("flow", "farneback_global")),
    ("native_flow_blend", "farneback_global", Conditioning("flow", "farneback_global", "visible", True))])
def test_an_older_folder_with_its_conditioning_in_config_json_loads_translated(tmp_path, mode, flow, layout):
    import json

    prediction = "edm" if layout.hint == "none" else "hint_residual"
    tiny_native(3, 2).save_pretrained(tmp_path / "m")
    config, settings = (json.loads((tmp_path / "m" / name).read_text()) for name in ("config.json", "pipeline.json"))
    in_channels, out_channels = layout.channels(3, 2)
    config.update(conditioning=mode, in_channels=in_channels, out_channels=out_channels, **({"flow": flow} if flow
                                                                                          else {}))
    del settings["conditioning"]  # older folders: pipeline.json had none
    settings["prediction"] = prediction
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    (tmp_path / "m" / "pipeline.json").write_text(json.dumps(settings))
    # the network's weights no longer fit the channel counts: rebuild a matching one, as an older folder would have
    from lightvid.models import SpaceTimeUNet, UNetConfig
    unet_config = UNetConfig.from_dict(config)
    SpaceTimeUNet(unet_config).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))  # save_pretrained wrote today's format
    loaded = NativePipeline.from_pretrained(tmp_path / "m")
    assert loaded.settings.conditioning == layout and loaded.unet.config == unet_config


@pytest.mark.parametrize("change,message", [
    ({"patch": 0}, "patch must be an integer >= 1"), ({"data_channels": 2}, "data_channels must be 1 or 3"),
    ({"height": 15}, "must be multiples of patch 2"), ({"sampler": "ddim"}, "sampler 'ddim' is not one of"),
    ({"sigma_max": float("nan")}, "sigma_max must be a finite number"), ({"conditioning": [1]}, "must be a mapping"),
    ({"conditioning": {"hint": "flow"}}, r"takes 28 channels in and 12 out; .* needs 36 and 12"),
    ({"steps": "4"}, "steps must be an integer")])
def test_a_bad_pipeline_file_is_one_line(tmp_path, change, message):
    import json

    tiny_native(3, 2).save_pretrained(tmp_path / "m")
    settings = json.loads((tmp_path / "m" / "pipeline.json").read_text())
    (tmp_path / "m" / "pipeline.json").write_text(json.dumps({**settings, **change}))
    with pytest.raises(LightvidError, match=message) as error:
        NativePipeline.from_pretrained(tmp_path / "m")
    assert "\n" not in str(error.value)
