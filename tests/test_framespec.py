"""FrameSpec: the task description (given frames/pixels) and its conditioning/compose contract."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.tasks import MAX_FRAMES, FrameSpec, animate, extend, interpolate, loop


def frame(seed: int, h: int = 8, w: int = 12) -> torch.Tensor:
    """(3, h, w) in [-1, 1], distinct per seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g) * 2 - 1


@st.composite
def specs(draw):
    n = draw(st.integers(1, 10))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    indices = draw(st.sets(st.integers(0, n - 1)))
    given_frames = {i: frame(100 + i, h, w) for i in indices}
    masked = draw(st.sets(st.sampled_from(sorted(indices)))) if indices else set()
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    masks = {i: (torch.rand(1, h, w, generator=g) > 0.5).float() for i in masked} or None
    return FrameSpec(n, 8.0, given_frames, masks=masks, height=h, width=w)


@settings(max_examples=60, deadline=None)
@given(spec=specs())
def test_given_and_generated_partition_the_clip(spec):
    given_idx, generated_idx = set(spec.given_indices), set(spec.generated_indices)
    assert given_idx | generated_idx == set(range(spec.num_frames))
    assert not given_idx & generated_idx
    assert list(spec.given_indices) == sorted(given_idx)
    assert spec.frame_mask().tolist() == [i in given_idx for i in range(spec.num_frames)]


@settings(max_examples=60, deadline=None)
@given(spec=specs())
def test_conditioning_is_zero_exactly_where_not_given(spec):
    video, mask = spec.conditioning()
    assert video.shape == (spec.num_frames, 3, spec.height, spec.width)
    assert mask.shape == (spec.num_frames, 1, spec.height, spec.width)
    for i in range(spec.num_frames):
        if i not in spec.given:
            assert (video[i] == 0).all() and (mask[i] == 0).all()
            continue
        m = spec.masks.get(i) if spec.masks else None
        expected_mask = torch.ones(1, spec.height, spec.width) if m is None else m
        torch.testing.assert_close(mask[i], expected_mask, rtol=0, atol=0)
        torch.testing.assert_close(video[i], spec.given[i] * expected_mask, rtol=0, atol=0)
        assert (video[i][(expected_mask == 0).expand(3, -1, -1)] == 0).all()


@settings(max_examples=60, deadline=None)
@given(spec=specs(), batch=st.booleans())
def test_compose_keeps_given_pixels_bit_exact(spec, batch):
    shape = (spec.num_frames, 3, spec.height, spec.width)
    generated = torch.rand((2, *shape) if batch else shape) * 2 - 1
    out = spec.compose(generated)
    assert out.shape[-4:] == shape and out.shape[:-4] == generated.shape[:-4]
    for i in range(spec.num_frames):
        m = spec.masks.get(i) if spec.masks else None
        if i not in spec.given:
            assert torch.equal(out[..., i, :, :, :], generated[..., i, :, :, :])
        elif m is None:
            assert torch.equal(out[..., i, :, :, :], spec.given[i].expand_as(out[..., i, :, :, :]))
        else:
            keep = (m == 1).expand(3, -1, -1)
            assert torch.equal(
                out[..., i, :, :, :][..., keep], spec.given[i].expand_as(out[..., i, :, :, :])[..., keep]
            )
            assert torch.equal(out[..., i, :, :, :][..., ~keep], generated[..., i, :, :, :][..., ~keep])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), fps=st.floats(1, 60))
def test_loop_is_first_equals_last_and_drops_the_duplicate(n, fps):
    image = frame(1)
    spec = loop(image, n, fps)
    assert spec.num_frames == n + 1 and spec.drop_last and spec.output_frames == n
    assert spec.given_indices == (0, n)
    video, mask = spec.conditioning()
    assert torch.equal(video[0], video[-1]) and torch.equal(video[0], image)
    assert mask[0].all() and mask[-1].all() and not mask[1:-1].any()
    out = spec.compose(torch.zeros(n + 1, 3, 8, 12))
    assert out.shape[0] == n and torch.equal(out[0], image)
    assert "loop" in spec.describe()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 50))
def test_interpolate_puts_the_images_at_both_ends(n):
    first, last = frame(1), frame(2)
    spec = interpolate(first, last, n, 8)
    assert spec.given_indices == (0, n - 1)
    assert spec.generated_indices == tuple(range(1, n - 1))
    assert torch.equal(spec.given[0], first) and torch.equal(spec.given[n - 1], last)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 6), num_new=st.integers(1, 10))
def test_extend_gives_the_prefix(k, num_new):
    frames = torch.stack([frame(i) for i in range(k)])
    spec = extend(frames, num_new, 12)
    assert spec.num_frames == k + num_new and spec.output_frames == k + num_new
    assert spec.given_indices == tuple(range(k))
    assert all(torch.equal(spec.given[i], frames[i]) for i in range(k))


def test_animate_accepts_pil_and_negative_index():
    array = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    spec = animate(Image.fromarray(array), 9, 8, index=-1)
    assert spec.given_indices == (8,) and (spec.height, spec.width) == (16, 24)
    assert spec.given[8].shape == (3, 16, 24)
    assert spec.describe() == "9 frames @ 8 fps, 24x16; given [8]; 8 generated"


def test_resized_resizes_frames_and_keeps_masks_binary():
    mask = torch.zeros(1, 8, 12)
    mask[:, :, 6:] = 1
    spec = FrameSpec(4, 8, {0: frame(0), 3: frame(3)}, masks={3: mask})
    small = spec.resized(4, 4)
    assert (small.height, small.width) == (4, 4)
    assert all(f.shape == (3, 4, 4) for f in small.given.values())
    assert set(small.masks[3].unique().tolist()) <= {0.0, 1.0}
    video, mask_small = spec.conditioning(4, 4)
    assert video.shape == (4, 3, 4, 4) and mask_small.shape == (4, 1, 4, 4)
    assert spec.resized(8, 12).given[0] is spec.given[0]  # same size: untouched


def test_spec_without_given_frames_needs_a_size():
    spec = FrameSpec(5, 8, height=16, width=16)
    assert spec.generated_indices == tuple(range(5))
    video, mask = spec.conditioning()
    assert not video.any() and not mask.any()
    with pytest.raises(LightvidError, match="height"):
        FrameSpec(5, 8)


def test_spec_is_read_only():
    spec = animate(frame(0), 4, 8)
    with pytest.raises(TypeError):
        spec.given[1] = frame(1)
    with pytest.raises(AttributeError):
        spec.num_frames = 3


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": MAX_FRAMES + 1}, "num_frames"),
        ({"num_frames": 2.5}, "num_frames"),
        ({"fps": 0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"given": {4: frame(0)}}, "outside"),
        ({"given": {-1: frame(0)}}, "outside"),
        ({"given": {0: frame(0), 1: frame(1, 8, 8)}}, "differ in size"),
        ({"given": {0: torch.zeros(4, 8, 12)}}, "shape"),
        ({"given": {0: torch.full((3, 8, 12), 255.0)}}, "expected"),
        ({"given": {0: torch.full((3, 8, 12), float("nan"))}}, "NaN"),
        ({"given": {0: frame(0)}, "height": 9}, "height"),
        ({"given": {0: frame(0)}, "masks": {1: torch.ones(1, 8, 12)}}, "not given"),
        ({"given": {0: frame(0)}, "masks": {0: torch.ones(1, 4, 4)}}, "mask"),
        ({"given": {0: frame(0)}, "masks": {0: torch.full((1, 8, 12), 2.0)}}, "expected"),
        ({"num_frames": 1, "given": {0: frame(0)}, "drop_last": True}, "drop_last"),
    ],
)
def test_validation_errors_are_lightvid_errors(kwargs, problem):
    args = {"num_frames": 4, "fps": 8.0, "height": None, "width": None, "given": {}} | kwargs
    if not args["given"] and args["height"] is None:
        args["height"], args["width"] = 8, 12
    with pytest.raises(LightvidError, match=problem):
        FrameSpec(**args)


def test_constructor_and_compose_errors():
    with pytest.raises(LightvidError, match=">= 3"):
        interpolate(frame(0), frame(1), 2, 8)
    with pytest.raises(LightvidError, match="num_new"):
        extend([frame(0)], 0, 8)
    with pytest.raises(LightvidError, match="loop"):
        loop(frame(0), 1, 8)
    with pytest.raises(LightvidError, match="PIL image"):
        animate("photo.png", 4, 8)
    with pytest.raises(LightvidError, match="shape"):
        animate(frame(0), 4, 8).compose(torch.zeros(3, 3, 8, 12))
