"""Native models: one network serves every FrameSpec; given frames come back unchanged."""
import math

import pytest
import torch

from lightvid.errors import LightvidError
from lightvid.models.native import NativeNet, flow_hint, nearest_given, widen_for_blend
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


@pytest.mark.parametrize("channels,patch,conditioning,prediction", [
    (1, 1, "native", "edm"), (3, 1, "native", "edm"), (3, 2, "native", "edm"), (3, 2, "native_nearest", "edm"),
    (3, 2, "native_nearest", "hint_residual"), (3, 2, "native_flow", "hint_residual"),
    (3, 2, "native_flow_blend", "hint_residual")])
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
        assert torch.allclose(loaded.denoiser(x, 0.5, given=mask, mask=mask), raw, atol=1e-6)
    (tmp_path / "m" / "pipeline.json").write_text((tmp_path / "m" / "pipeline.json").read_text()
                                                  .replace('"x0"', '"eps"'))
    with pytest.raises(LightvidError, match="prediction 'eps' is not one of edm, x0, hint_residual"):
        NativePipeline.from_pretrained(tmp_path / "m")


def test_hint_residual_adds_the_nearest_given_frame_and_sampling_starts_there():
    pipe = tiny_native(3, 2, conditioning="native_nearest", prediction="hint_residual")
    net = pipe.denoiser.net
    plain = NativeNet(net.unet, 2)  # the same network without the skip
    x = torch.randn(1, 5, 3, 16, 16)
    mask = torch.zeros(1, 5, 1, 16, 16)
    mask[:, 2] = 1
    given = torch.randn(1, 5, 3, 16, 16) * mask
    c = torch.tensor([0.1])
    with torch.no_grad():  # every frame's nearest given frame is frame 2
        assert torch.allclose(net(x, c, given, mask), plain(x, c, given, mask) + given[:, 2:3], atol=1e-6)
    assert torch.equal(net.start(given, mask), given[:, 2:3].expand_as(given))  # sampling starts at the hint
    assert torch.equal(plain.start(given, mask), torch.zeros_like(given))  # other models: at zero
    with pytest.raises(LightvidError, match="needs a 'native_nearest', 'native_flow' or 'native_flow_blend' model"):
        NativeNet(tiny_native(3, 2).unet, 2, hint_skip=True)


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


@pytest.mark.parametrize("patch,conditioning", [(1, "native"), (2, "native"), (2, "native_nearest")])
def test_noisy_input_at_given_pixels_is_ignored(patch, conditioning):
    net = NativeNet(tiny_native(1, patch, conditioning=conditioning).unet, patch)
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
    # visible=True (native_flow_blend): the hint is farneback_visible, the last blend channel its weight of from_b
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
    pipe = tiny_native(3, 4, size=128, frames=4, conditioning="native_flow_blend", prediction="hint_residual")
    pipe.denoiser.net.unet.config.flow = "farneback_global"  # as the shipped photo model's config.json says
    hint = pipe.denoiser.net.start(given, mask)  # (1, 4, 3, 128, 128): where sampling starts
    assert torch.equal(hint[0], farneback_global(clip, flags))
    # measured on this clip: 14.68 dB by plain Farneback flow (visible), 32.49 with the camera motion compensated
    error = {name: ((f(clip, flags)[1:3] - clip[1:3]) ** 2).mean() for name, f in
             (("visible", farneback_visible), ("global", farneback_global))}
    assert error["global"] < error["visible"] / 10, error


def test_flow_blending_keeps_the_flow_models_residual_on_the_visible_hint_and_its_logit_reweighs_the_warps():
    from lightvid.data.camera_motion import CameraMotion

    flow_net = tiny_native(3, 2, conditioning="native_flow", prediction="hint_residual").denoiser.net
    wide = NativeNet(widen_for_blend(flow_net.unet, 3, 2), 2, hint_skip=True)
    clip, _ = CameraMotion(split="test", num_frames=5, size=16)[0]  # a real camera move: the two warps differ
    mask = torch.zeros(1, 5, 1, 16, 16)
    mask[:, [0, 4]] = 1
    given, x, c = clip[None] * mask, torch.randn(1, 5, 3, 16, 16), torch.tensor([0.3])
    hint, hinted, offset, blend = wide._hint(given, mask)  # the visible flow hint, and its parts
    spread, w = blend[:, :, :3], blend[:, :, 5:6]  # (1, 5, 3, 16, 16), (1, 5, 1, 16, 16)
    t = torch.tensor([0, 0.25, 0.5, 0.75, 0]).view(1, 5, 1, 1, 1)
    assert spread[:, 1:4].abs().mean() > 0.01 and ((w != t)[:, 1:4]).any()  # some warps leave their frame here
    flow_net._last_hint = (given, mask, (hint, hinted, offset, None))  # the old network, fed the same hint
    with torch.no_grad():
        before = flow_net(x, c, given, mask)
        assert (wide(x, c, given, mask) - before).abs().max() < 1e-5  # zero new weights: the same x0
        wide.unet.conv_out.bias[-4:] = 30.0  # the logit's 2x2 patch: every pixel takes frame 4's warp alone
        after = wide(x, c, given, mask)
    # x0 = hint + residual + (sigmoid(logit(w) + 30) - sigmoid(logit(w)))·spread, i.e. + (1 - w)·spread; frames 0
    # and 4 (given, no flow hint) do not move
    assert torch.allclose(after - before, (1 - w) * spread, atol=1e-5)
    with pytest.raises(LightvidError, match="needs hint_residual prediction"), torch.no_grad():
        NativeNet(wide.unet, 2)(x, c, given, mask)
    with pytest.raises(LightvidError, match="only a native_nearest or native_flow model can be widened"):
        widen_for_blend(wide.unet, 3, 2)


def test_hint_residual_sampling_starts_from_the_hint_plus_noise():
    # at a tiny sigma_max one re-noising step is D(hint + ~0): the start, not zeros + noise, is what D sees
    pipe = tiny_native(3, 2, conditioning="native_nearest", prediction="hint_residual")
    pipe.settings.sigma_min, pipe.settings.sigma_max = 1e-5, 1e-4
    spec = SPECS["image_to_video"]()
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
    import lightvid.models.native as native

    calls = []
    real = native.nearest_given
    monkeypatch.setattr(native, "nearest_given", lambda g, m: calls.append(1) or real(g, m))
    pipe = tiny_native(3, 2, conditioning="native_flow", prediction="hint_residual")
    spec = SPECS["interpolate"]()
    pipe(spec, steps=3, sampler="heun", generator=torch.Generator().manual_seed(0), progress=False)  # 5 net calls
    assert len(calls) == 1
    pipe(spec, steps=3, sampler="heun", generator=torch.Generator().manual_seed(0), progress=False)
    assert len(calls) == 2  # a new call brings new conditioning tensors: computed again
