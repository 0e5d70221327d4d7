"""Fairy's anchor attention, the edit pipeline and its workers, on tiny random editors (lightvid's own, an
InstructPix2Pix folder in diffusers format, a native SpaceTimeUNet)."""
import pytest
import torch
from edit_fixtures import make_ip2p_folder, tiny_editor
from tolerances import EPS32, relative_error

from lightvid.edit.anchor import AnchorCache, install_anchor_attention
from lightvid.edit.pipeline import EditPlan, FrameEditor, anchor_indices, chunks, editing_size
from lightvid.edit.workers import edit_video
from lightvid.errors import LightvidError

# Two float32 runs of the same frame in batches of different sizes: GEMM blocking changes the order of sums. Measured
# up to 34 EPS32 of the largest value after 3 sampling steps through the tiny editors; 500 bounds that. Attending to
# other keys (the anchors, or wrong ones) moves outputs by 1e5 EPS32 or more (measured 1.1e5 and 6.5e5): CHANGED.
BATCH_ROUNDING = 500 * EPS32
CHANGED = 20 * BATCH_ROUNDING


def _frames(n: int, size=(16, 24), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, *size), generator=g) * 2 - 1  # (n, 3, h, w) in [-1, 1]


@pytest.fixture(scope="module")
def ip2p(tmp_path_factory):
    from lightvid.edit.editor import Editor
    return Editor.from_pretrained(make_ip2p_folder(tmp_path_factory.mktemp("ip2p") / "ip2p"))


@pytest.fixture(params=["lightvid", "diffusers"])
def editor_and_plan(request, ip2p):
    if request.param == "lightvid":
        return tiny_editor(), EditPlan("make it darker", steps=3, anchors=2)
    # InstructPix2Pix: both guidance scales on, so the batch holds three branches per frame
    return ip2p, EditPlan("make it dark", steps=3, guidance_text=3.0, guidance_image=1.5, anchors=2)


def test_a_frame_equal_to_an_anchor_edits_to_the_anchors_result(editor_and_plan):
    editor, plan = editor_and_plan
    video = _frames(5)
    frames = FrameEditor(editor, plan, *video.shape[-2:])
    anchors = anchor_indices(5, plan.anchors)
    assert anchors == [0, 4]
    anchored = frames.record_anchors(video[anchors])
    replayed = frames.edit_chunk(video[[4, 2, 0]])  # anchors in another batch, beside a non-anchor frame
    assert relative_error(replayed[0], anchored[1]) <= BATCH_ROUNDING
    assert relative_error(replayed[2], anchored[0]) <= BATCH_ROUNDING
    alone = FrameEditor(editor, EditPlan(**{**plan.__dict__, "anchors": 0}), *video.shape[-2:]).edit_chunk(video[[2]])
    assert relative_error(replayed[1], alone[0]) > CHANGED  # the anchors changed frame 2's edit


def test_without_anchors_frames_are_edited_on_their_own(editor_and_plan):
    """Cache off: a chunk's frames equal each frame edited alone, and equal the network's own attention."""
    from diffusers.models.attention_processor import AttnProcessor2_0
    editor, plan = editor_and_plan
    plan = EditPlan(**{**plan.__dict__, "anchors": 0})
    video = _frames(3)
    frames = FrameEditor(editor, plan, *video.shape[-2:])
    together = frames.edit_chunk(video)
    for i in range(3):
        alone = frames.edit_chunk(video[i:i + 1])
        assert relative_error(together[i], alone[0]) <= BATCH_ROUNDING
    editor.unet.set_attn_processor(AttnProcessor2_0())
    assert torch.equal(frames.edit_chunk(video), together)


def _recording(extend, seen: list, n: int):
    """`extend` that also notes (video length, own keys, keys attended) per call."""
    def wrapper(layer, k, v):
        out = extend(layer, k, v)
        seen.append((n, k.shape[1], out[0].shape[1]))
        return out
    return wrapper


def test_memory_per_frame_does_not_grow_with_the_video(editor_and_plan):
    """The cache holds the anchors only, and each frame attends over (1 + anchors) frames' tokens, whatever the
    number of frames."""
    editor, plan = editor_and_plan
    seen = []
    sizes = []
    for n in (4, 12):
        video = _frames(n)
        frames = FrameEditor(editor, plan, *video.shape[-2:])
        frames.record_anchors(video[anchor_indices(n, plan.anchors)])
        sizes.append(frames.cache.nbytes())
        frames.cache.extend = _recording(frames.cache.extend, seen, n)
        frames.edit_chunk(video[:2])
    assert sizes[0] == sizes[1] > 0
    per_video = {n: sorted({(own, total) for m, own, total in seen if m == n}) for n in (4, 12)}
    assert per_video[4] == per_video[12]
    assert all(total == (1 + plan.anchors) * own for own, total in per_video[4])


def test_replay_needs_the_anchor_pass():
    editor = tiny_editor()
    frames = FrameEditor(editor, EditPlan("make it darker", steps=2, anchors=2), 16, 16)
    with pytest.raises(LightvidError, match="no keys for layer"):
        frames.edit_chunk(_frames(1, (16, 16)))


def test_native_spacetime_unet_takes_anchor_attention():
    """lightvid's own network: the anchors' spatial self-attention records, a frame equal to an anchor replays it,
    and with the cache off the network is unchanged; in a clip (temporal layers on) too."""
    from lightvid.models import SpaceTimeUNet
    from lightvid.models.presets import svd_tiny
    torch.manual_seed(0)
    unet = SpaceTimeUNet(svd_tiny()).eval()
    x = torch.randn(3, 1, 8, 16, 16)  # 3 clips of 1 frame: (b, f, c, h, w), c = noisy 4 + condition 4
    context, added, t = torch.randn(3, 1, 32), torch.zeros(3, 3), torch.ones(3)
    with torch.no_grad():
        plain = unet(x, t, context, added)
        cache = AnchorCache()
        assert install_anchor_attention(unet, cache) == 4  # svd-tiny: down level 0, the middle, up level 0 (x2)
        assert torch.equal(unet(x, t, context, added), plain)
        cache.set("record")
        anchored = unet(x[:2], t[:2], context[:2], added[:2])
        cache.set("replay")
        replayed = unet(x[[1, 2]], t[:2], context[[1, 2]], added[:2])
        assert relative_error(replayed[0], anchored[1]) <= BATCH_ROUNDING
        assert relative_error(replayed[1], plain[2]) > CHANGED
        clip = torch.randn(1, 3, 8, 16, 16)  # one clip of 3 frames: the anchors are its frames
        cache.set("record")
        anchored = unet(clip, t[:1], context[:1], added[:1])
        cache.set("replay")
        assert relative_error(unet(clip, t[:1], context[:1], added[:1]), anchored) <= BATCH_ROUNDING


def test_workers_give_the_same_video_bit_for_bit(tmp_path):
    editor = tiny_editor()
    editor.save_pretrained(tmp_path / "editor")
    video = _frames(7)
    for anchors in (3, 0):  # with a cache to send to the workers, and with none
        plan = EditPlan("make it darker", steps=2, anchors=anchors, batch=2)
        one = edit_video(tmp_path / "editor", video, plan, workers=1, progress=False)
        two = edit_video(tmp_path / "editor", video, plan, workers=2, progress=False)
        assert one.shape == video.shape
        assert torch.equal(one, two)


def test_plan_helpers():
    assert anchor_indices(10, 3) == [0, 5, 9]  # 4.5 rounds up
    assert anchor_indices(2, 3) == [0, 1]
    assert anchor_indices(5, 0) == []
    assert [len(c) for c in chunks(7, 3)] == [3, 3, 1]
    assert editing_size(480, 640, 256, 16) == (192, 256)
    assert editing_size(100, 50, 64, 16) == (64, 32)


def test_sampling_ends_on_the_denoisers_last_estimate_with_one_noise_for_every_frame():
    """With a denoiser that always answers the same x0, Euler ancestral ends exactly there (its last step goes to
    σ = 0); every frame starts from and is re-noised with the same noise, so equal inputs give equal paths."""
    editor = tiny_editor()
    frames = FrameEditor(editor, EditPlan("make it darker", steps=4, anchors=0), 16, 16)
    target = torch.rand(1, 12, 8, 8) * 2 - 1  # (1, 3·2², h/2, w/2): a sample in the editor's patch space
    seen = []

    def oracle(x, sigma, t, image, context, guidance_text, guidance_image, null_context):
        seen.append(x.clone())
        return target.expand_as(x)
    editor.denoise = oracle
    out = frames.edit_chunk(_frames(3, (16, 16)))
    assert torch.equal(out, editor.decode(target).expand(3, -1, -1, -1))
    assert len(seen) == 4 and all(torch.equal(x[0], x[2]) for x in seen)
    assert torch.equal(seen[0][0], frames.noise[0] * frames.sigmas[0])
