"""MarDini (planner + generator): identity attention, rotary positions, the plan cache, guidance over the plan,
checkpoints, sampling through the native pipeline, and training with a curriculum under the trainer (exact resume)."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tolerances import EPS32, EPS64, relative_error

from lightvid.errors import LightvidError
from lightvid.models import MarDini, MarDiniConfig, SpaceTimeUNet, load_network, read_config
from lightvid.models.planner import reference_tokens
from lightvid.models.transformer import Attention, apply_rope, identity_attention_mask, rope_angles
from lightvid.pipelines.native import NativePipeline, NativeSettings
from lightvid.tasks import interpolate
from lightvid.train import config_from_dict, train
from native_fixtures import LAYOUTS


def tiny_config(conditioning: str = "flow_warps", data_channels: int = 3, patch: int = 2, **fields) -> MarDiniConfig:
    c_in, c_out = LAYOUTS[conditioning].channels(data_channels, patch)
    base = dict(in_channels=c_in, out_channels=c_out, data_channels=data_channels, patch=patch, planner_dim=24,
                planner_depth=2, planner_heads=2, planner_patch=2, dim=16, depth=2, heads=2, generator_patch=1)
    return MarDiniConfig(**{**base, **fields})


def randomized(net: MarDini) -> MarDini:
    """The network with every weight perturbed: the zero-initialised output layers and gates of a fresh generator
    would make most tests pass trivially."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def sample_input(cfg: MarDiniConfig, given=(0, 4), frames: int = 5, size: int = 8, batch: int = 1, seed: int = 0):
    """(batch, frames, in_channels, size, size) folded input with whole frames `given` in the mask channels."""
    torch.manual_seed(seed)
    x = torch.randn(batch, frames, cfg.in_channels, size, size)
    x[:, :, cfg.mask_channels] = 0
    for i in given:
        x[:, i, cfg.mask_channels] = 1
    return x


def test_identity_attention_mask_lets_reference_tokens_see_only_themselves():
    reference = torch.tensor([[True, False, True, False]])
    allowed = identity_attention_mask(reference)[0, 0]
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_attention_identity_path_equals_masked_attention():
    torch.manual_seed(0)
    attn = Attention(16, 2).double()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    reference = torch.rand(3, 7) < 0.5
    angles = rope_angles(torch.arange(7.0)[:, None], (8,))
    got = attn(x, q_angles=angles, k_angles=angles, reference=reference)
    # the reference: the same layer through SDPA with the explicit identity-attention mask
    q = attn.q_norm(attn.to_q(x).view(3, 7, 2, 8).transpose(1, 2))
    k, v = attn.to_kv(x).view(3, 7, 2, 2, 8).permute(2, 0, 3, 1, 4)
    q, k = apply_rope(q, angles), apply_rope(attn.k_norm(k), angles)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=identity_attention_mask(reference))
    expected = attn.to_out(out.transpose(1, 2).reshape(3, 7, 16))
    assert relative_error(got, expected) <= 64 * EPS64  # float64 rounding of two softmax orders


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(12), torch.randn(12)
    widths = (4, 4, 4)

    def score(pq, pk):  # rotary embeddings are computed in float32
        a = rope_angles(torch.stack([pq, pk]), widths)
        return float((apply_rope(q[None], a[:1]).double() * apply_rope(k[None], a[1:]).double()).sum())

    shift = torch.tensor([3.0, -2.0, 5.5])
    p1, p2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 0.0, 7.0])
    scale = float(q.norm() * k.norm())
    # float32 rounding of angles up to ~12 rad and their cos / sin, relative to |q|·|k|
    assert abs(score(p1, p2) - score(p1 + shift, p2 + shift)) <= 256 * EPS32 * scale
    assert abs(score(p1, p2) - score(p1, p2 + 1)) > 1e-3  # and the offset does matter


def planner_inputs() -> tuple[MarDini, torch.Tensor, torch.Tensor]:
    """A randomized tiny network, the conditioning channels of a 5-frame clip with frames 0 and 4 given, and its
    planner's reference tokens."""
    cfg = tiny_config()
    x = sample_input(cfg)
    cond, mask = x[:, :, cfg.noisy_channels:], x[:, :, cfg.mask_channels].amin(2)
    return randomized(MarDini(cfg)).eval(), cond, reference_tokens(mask, cfg.planner_patch)


def test_planner_reference_tokens_depend_only_on_themselves():
    """Identity attention through every planner layer: a reference token's plan is a function of its own input."""
    net, cond, reference = planner_inputs()
    with torch.no_grad():
        plan = net.planner(cond, reference)  # (1, 5, 16, 24): 4x4 tokens per frame
        masked_input = cond.clone()
        masked_input[:, 2] += 1.0  # a masked frame's channels: its tokens are [MASK] whatever they hold
        assert torch.equal(net.planner(masked_input, reference), plan)
        changed = cond.clone()
        changed[:, 4, :, :2, :2] += 1.0  # one reference token (the first) of the last frame
        other = net.planner(changed, reference)
    assert torch.equal(plan[:, 0], other[:, 0])  # the first frame's reference tokens
    assert torch.equal(plan[:, 4, 1:], other[:, 4, 1:])  # every other reference token of the last frame
    assert not torch.equal(plan[:, 4, 0], other[:, 4, 0])  # the changed token
    assert not torch.equal(plan[:, 2], other[:, 2])  # masked tokens attend to it


def test_masked_tokens_gather_from_the_references():
    net, cond, reference = planner_inputs()
    with torch.no_grad():
        plan = net.planner(cond, reference)
        changed = cond.clone()
        changed[:, 0] += 1.0
        other = net.planner(changed, reference)
    assert not torch.equal(plan[:, 2], other[:, 2])  # a masked frame's plan follows the reference frames
    # and without identity attention, reference tokens see each other
    plain = MarDini(replace(net.config, identity_attention=False))
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert not torch.equal(plain.planner(cond, reference)[:, 4], plain.planner(changed, reference)[:, 4])


def test_fresh_generator_outputs_zeros_so_a_hint_residual_model_starts_as_its_hint():
    cfg = tiny_config()
    net = MarDini(cfg).eval()
    with torch.no_grad():
        out = net(sample_input(cfg), torch.tensor([0.3]))
    assert out.shape == (1, 5, cfg.out_channels, 8, 8) and not out.any()


def test_plan_is_computed_once_per_conditioning_and_equals_a_fresh_one():
    cfg = tiny_config()
    net = randomized(MarDini(cfg)).eval()
    calls = []
    net.planner.register_forward_hook(lambda *args: calls.append(1))
    x = sample_input(cfg)
    with torch.no_grad():
        net(x, torch.tensor([1.0]))
        noisy = x.clone()
        noisy[:, :, :cfg.noisy_channels] = torch.randn_like(noisy[:, :, :cfg.noisy_channels])
        second = net(noisy, torch.tensor([0.5]))  # another step of the same clip: the plan is reused
        assert len(calls) == 1
        net._cached_plan = None
        assert torch.equal(second, net(noisy, torch.tensor([0.5])))  # the reused plan is the fresh one
        other = x.clone()
        other[:, 0, cfg.noisy_channels] += 1  # another given frame: planned again
        net(other, torch.tensor([0.5]))
    assert len(calls) == 3
    net(x, torch.tensor([0.5]))  # with gradients: always planned
    assert len(calls) == 4


def test_guidance_over_the_plan_blends_the_null_and_the_real_plan():
    cfg = tiny_config()
    net = randomized(MarDini(cfg)).eval()
    x = sample_input(cfg, batch=2)
    t = torch.tensor([0.7, 0.2])
    with torch.no_grad():
        planned = net(x, t)
        mask = x[:, :, cfg.mask_channels].amin(2)
        null = net.null_plan.expand(2, 5, 16, 24)
        unguided = net.generator(x, t, null, reference_tokens(mask, cfg.generator_patch), (4, 4))
        net.guidance = 2.5
        guided = net(x, t)
    expected = unguided + 2.5 * (planned - unguided)
    assert not torch.equal(planned, unguided)
    assert relative_error(guided, expected) <= 64 * EPS32  # float32 rounding of the batched pair and the blend


def test_null_plan_draws_follow_the_seed_and_probability():
    cfg = tiny_config(null_probability=0.5)
    net = randomized(MarDini(cfg)).train()
    x = sample_input(cfg, batch=8)
    t = torch.full((8,), 0.5)
    outs = []
    for seed in (3, 3, 4):
        net.reseed(seed)
        with torch.no_grad():
            outs.append(net(x, t))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    never = MarDini(replace(cfg, null_probability=0.0)).train()
    never.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(never(x, t), net.eval()(x, t))  # probability 0: always the real plan


def test_batch_and_padding_invariance():
    cfg = tiny_config(planner_patch=4, generator_patch=2)
    net = randomized(MarDini(cfg)).eval()
    x = sample_input(cfg, size=10, batch=2)  # 10 is no multiple of 4: padded inside, cropped back
    t = torch.tensor([0.4, 0.9])
    with torch.no_grad():
        both = net(x, t)
        net._cached_plan = None
        one = net(x[1:], t[1:])
    assert both.shape == (2, 5, cfg.out_channels, 10, 10)
    assert relative_error(one[0], both[1]) <= 64 * EPS32  # float32 kernels may block a batch of 2 differently


def test_config_checks():
    with pytest.raises(LightvidError, match="heads"):
        tiny_config(dim=18, heads=4)
    with pytest.raises(LightvidError, match="null_probability"):
        tiny_config(null_probability=1.0)
    with pytest.raises(LightvidError, match="unknown keys"):
        MarDiniConfig.from_dict({**tiny_config().to_dict(), "layers": 3})
    with pytest.raises(LightvidError, match="cannot hold"):
        tiny_config(in_channels=4)


def save_tiny_mardini(folder, frames: int = 5, size: int = 16) -> NativePipeline:
    cfg = tiny_config()
    settings = NativeSettings(data_channels=3, patch=2, num_frames=frames, height=size, width=size, steps=1,
                              sampler="renoise", conditioning=LAYOUTS["flow_warps"], prediction="hint_residual")
    pipe = NativePipeline(randomized(MarDini(cfg)).eval(), settings)
    pipe.save_pretrained(folder, extra={"trained_steps": 0, "dataset": "moving_layers"})
    return pipe


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    pipe = save_tiny_mardini(tmp_path / "m")
    assert isinstance(read_config(tmp_path / "m"), MarDiniConfig)
    loaded = load_network(tmp_path / "m")
    assert isinstance(loaded, MarDini)
    saved = load_file(tmp_path / "m" / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in pipe.unet.state_dict().items())
    with pytest.raises(LightvidError, match="not a SpaceTimeUNet"):
        SpaceTimeUNet.from_pretrained(tmp_path / "m")
    with pytest.raises(LightvidError, match="torch runtime only"):
        NativePipeline.from_pretrained(tmp_path / "m", runtime="onnx")


def test_interpolation_through_the_native_pipeline_keeps_the_given_frames(tmp_path):
    save_tiny_mardini(tmp_path / "m")
    pipe = NativePipeline.from_pretrained(tmp_path / "m")
    torch.manual_seed(0)
    first, last = torch.rand(3, 16, 16) * 2 - 1, torch.rand(3, 16, 16) * 2 - 1
    spec = interpolate(first, last, 5, 8.0)
    a = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    b = pipe(spec, generator=torch.Generator().manual_seed(0), progress=False)
    assert a.shape == (5, 3, 16, 16) and torch.equal(a[0], first) and torch.equal(a[-1], last)
    assert torch.equal(a, b)  # seeded: the same clip
    guided = pipe(spec, guidance=2.0, generator=torch.Generator().manual_seed(0), progress=False)
    assert not torch.equal(guided[1:-1], a[1:-1]) and torch.equal(guided[0], first)


def training_config(out, steps: int = 4, **top) -> dict:
    return {"output_dir": str(out), "seed": 0, "data": {"name": "moving_mnist", "num_frames": 4, "size": 32},
            "pipeline": {"data_channels": 1, "patch": 2, "fps": 10, "conditioning": {"hint": "nearest"},
                         "prediction": "hint_residual", "steps": 1, "sampler": "renoise"},
            "model": {"family": "mardini", "planner_dim": 24, "planner_depth": 1, "planner_heads": 2,
                      "planner_patch": 2, "dim": 16, "depth": 1, "heads": 2, "generator_patch": 2},
            "curriculum": [{"until": 2, "num_frames": 3, "tasks": {"random": 1.0}},
                           {"until": steps, "num_frames": 4, "tasks": {"interpolate": 1.0, "animate": 1.0}}],
            "train": {"batch_size": 2, "steps": steps, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 2,
                      "log_every": 1, "num_workers": 0}, **top}


def test_training_config_family_and_curriculum_checks(tmp_path):
    config = config_from_dict(training_config(tmp_path))
    assert isinstance(config.model, MarDiniConfig) and (config.model.data_channels, config.model.patch) == (1, 2)
    assert config.stage(0) == (3, {"random": 1.0}) and config.stage(3)[0] == 4 and config.stage(99)[0] == 4
    bad = [({"family": "transformer"}, "family"), ({"curriculum": []}, "curriculum"),
           ({"curriculum": [{"until": 2, "num_frames": 1}]}, "num_frames"),
           ({"curriculum": [{"until": 3, "num_frames": 2}, {"until": 3, "num_frames": 4}]}, "until"),
           ({"curriculum": [{"until": 3, "num_frames": 2, "tasks": {"fly": 1}}]}, "unknown task"),
           ({"curriculum": [{"until": 3, "frames": 2}]}, "unknown key")]
    for change, message in bad:
        raw = training_config(tmp_path)
        if "family" in change:
            raw["model"] = {**raw["model"], **change}
        else:
            raw.update(change)
        with pytest.raises(LightvidError, match=message):
            config_from_dict(raw)


def test_training_resumes_exactly_and_exports_a_working_model(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(config_from_dict(training_config(straight)), progress=False)
    train(config_from_dict(training_config(stopped)), max_steps=2, progress=False)
    train(config_from_dict(training_config(stopped)), progress=False)
    for name in ("unet/model.safetensors", "ema.safetensors"):
        a = load_file(straight / "checkpoints" / "step_00000004" / name)
        b = load_file(stopped / "checkpoints" / "step_00000004" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pipe = NativePipeline.from_pretrained(straight / "model")
    assert isinstance(pipe.unet, MarDini) and pipe.settings.num_frames == 4
    frame = torch.rand(3, 32, 32) * 2 - 1
    out = pipe(interpolate(frame, frame.flip(-1), 4, 10.0), generator=torch.Generator().manual_seed(0),
               progress=False)
    assert out.shape == (4, 3, 32, 32) and torch.isfinite(out).all()


def test_curriculum_longer_than_the_data_is_refused(tmp_path):
    raw = training_config(tmp_path)
    raw["curriculum"][1]["num_frames"] = 9
    with pytest.raises(LightvidError, match="cuts clips to 9 frames"):
        train(config_from_dict(raw), progress=False)


def test_shipped_mardini_configs_load():
    paths = sorted((Path(__file__).parent.parent / "configs" / "mardini").glob("*.yaml"))
    assert paths
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        config = config_from_dict(raw)
        assert isinstance(config.model, MarDiniConfig), path
