"""Spatial masks end to end: FrameSpecs for inpainting and cinemagraphs, mask files, the region metrics and the
`lightvid inpaint` / `lightvid cinemagraph` commands (tiny random models: what is kept is kept whatever the network
says)."""
import numpy as np
import pytest
import torch
from cli_run import run, run_frames
from PIL import Image

from lightvid.errors import LightvidError
from lightvid.eval.metrics import region_flicker, region_psnr, region_step
from lightvid.io import load_image, pil_to_tensor, read_video, resize_and_crop
from lightvid.io.masks import fit_regions, read_mask
from lightvid.tasks import cinemagraph, inpaint
from native_fixtures import save_model_with_student, save_tiny_native, tiny_native

ROCKET = "examples/rocket.jpg"


def _box(h, w, top, left, size, frames=1):
    region = torch.zeros(frames, 1, h, w)
    region[:, :, top:top + size, left:left + size] = 1
    return region


def test_inpaint_spec_keeps_everything_outside_the_region_whatever_the_network_says():
    clip = torch.rand(7, 3, 16, 16) * 2 - 1
    region = torch.zeros(7, 1, 16, 16)
    for t in range(7):  # a box moving right
        region[t, :, 4:10, t:t + 6] = 1
    spec = inpaint(clip, region, 8)
    assert spec.given_indices == tuple(range(7)) and spec.generated_indices == ()
    pipe = tiny_native(3, patch=2, size=16, frames=5, conditioning="nearest", prediction="hint_residual")
    out = pipe(spec, overlap=2, generator=torch.Generator().manual_seed(0), progress=False)  # 2 windows
    outside = (region == 0).expand_as(clip)
    assert torch.equal(out[outside], clip[outside])
    assert not torch.equal(out[~outside], clip[~outside])  # the region is generated
    with pytest.raises(LightvidError, match="regions must be"):
        inpaint(clip, region[:3], 8)


def test_cinemagraph_spec_keeps_the_image_outside_the_region():
    image = torch.rand(3, 16, 16) * 2 - 1
    region = _box(16, 16, 2, 3, 8)[0]
    spec = cinemagraph(image, region, 6, 8)
    assert set(spec.masks) == {1, 2, 3, 4, 5}  # frame 0 given whole
    pipe = tiny_native(3, patch=2, size=16, frames=5, conditioning="nearest", prediction="hint_residual")
    out = pipe(spec, overlap=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(out[0], image)
    outside = (region == 0).expand(3, 16, 16)
    assert all(torch.equal(frame[outside], image[outside]) for frame in out)
    assert region_step(out, region[None]) > 0  # the region moves
    with pytest.raises(LightvidError, match="num_frames >= 2"):
        cinemagraph(image, region, 1, 8)


def test_region_metrics():
    target = torch.zeros(3, 3, 4, 4)
    pred = target.clone()
    region = _box(4, 4, 0, 0, 2)
    pred[:, :, 0, 0] = 0.2  # inside the region: 1 pixel of 4 off by 0.1 on the [0, 1] scale
    pred[:, :, 3, 3] = 1.0  # outside: not counted
    # the float32 inputs 0.2 and 0.4 are off by <= 3e-8 relative (EPS32 / 4): 1e-6 bounds what that moves below
    assert region_psnr(pred, target, region) == pytest.approx(10 * np.log10(1 / (0.1 ** 2 / 4)), rel=1e-6)
    moving = target.clone()
    moving[1] += 0.4  # frame 1 brighter by 0.2: steps 0.2 and 0.2 everywhere
    assert region_step(moving, region) == pytest.approx(0.2, rel=1e-6)
    assert region_flicker(moving, target, region) == pytest.approx(0.2, rel=1e-6)
    assert region_flicker(moving, moving, region) == 0
    with pytest.raises(LightvidError, match="empty"):
        region_step(moving, torch.zeros(1, 1, 4, 4))


def _clip_folder(tmp_path, frames=7, size=(24, 32)):
    folder = tmp_path / "clip"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _mask_png(path, size, box):
    mask = np.zeros(size, np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 255
    Image.fromarray(mask).save(path)
    return path


def test_inpaint_command_keeps_every_unmasked_pixel_exactly(tmp_path, capsys):
    model = save_tiny_native(tmp_path / "m")
    clip = _clip_folder(tmp_path)
    source = read_video(clip, size=(16, 16))[0]  # the frames as the command reads them
    mask = _mask_png(tmp_path / "mask.png", (24, 32), (4, 8, 16, 20))
    out = run_frames(capsys, tmp_path, "out", "inpaint", clip, mask, "--model", model, "--seed", "1")
    white = torch.from_numpy(np.asarray(Image.open(mask)) > 0).float()[None]
    region = (resize_and_crop(white, 16, 16, mode="bilinear") > 1e-3).expand(3, 16, 16)
    assert out.shape == source.shape == (7, 3, 16, 16)  # every frame, at the video's own frame rate
    assert all(torch.equal(o[~region], s[~region]) for o, s in zip(out, source))
    assert not torch.equal(out[:, region], source[:, region])
    again = run_frames(capsys, tmp_path, "again", "inpaint", clip, mask, "--model", model, "--seed", "1")
    assert torch.equal(out, again)  # seeded
    # one mask per frame: a folder whose masks differ; frames whose mask is black come back unchanged
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(7):
        _mask_png(masks / f"{i:03d}.png", (24, 32), (4, 8 + i, 16, 20 + i) if i < 3 else (0, 0, 0, 0))
    per_frame = run_frames(capsys, tmp_path, "per_frame", "inpaint", clip, masks, "--model", model)
    assert torch.equal(per_frame[3:], source[3:]) and not torch.equal(per_frame[:3], source[:3])


@pytest.mark.parametrize("mask,message", [
    ("wrong_size", "the mask must have the frames' size, 32x24"),
    ("colour", "is not a mask: it has colours"),
    ("empty", "is empty: no white pixel"),
    ("too_few", "has 2 masks for 7 frames"),
    ("missing", "no such file or folder"),
])
def test_inpaint_bad_masks_are_one_line_errors_with_no_output(tmp_path, capsys, mask, message):
    model = save_tiny_native(tmp_path / "m")
    clip = _clip_folder(tmp_path)
    path = tmp_path / (mask if mask in ("too_few", "missing") else f"{mask}.png")
    if mask == "wrong_size":
        _mask_png(path, (24, 30), (0, 0, 8, 8))
    elif mask == "colour":
        Image.open(clip / "000.png").save(path)
    elif mask == "empty":
        _mask_png(path, (24, 32), (0, 0, 0, 0))
    elif mask == "too_few":
        path.mkdir()
        for i in range(2):
            _mask_png(path / f"{i}.png", (24, 32), (0, 0, 8, 8))
    target = tmp_path / "out.mp4"
    code, _, err = run(capsys, "inpaint", clip, path, "-o", target, "--model", model)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not target.exists()


def test_cinemagraph_command_keeps_the_image_outside_the_region(tmp_path, capsys):
    model = save_model_with_student(tmp_path / "m")  # photo's conditioning: flow hints, a 1-step student
    width, height = load_image(ROCKET).size
    mask = _mask_png(tmp_path / "mask.png", (height, width), (0, 0, height // 2, width))  # the top half moves
    image = pil_to_tensor(resize_and_crop(load_image(ROCKET), 16, 16))
    _mask_png(tmp_path / "clip.png", (24, 32), (0, 0, 8, 8))
    code, out, err = run(capsys, "cinemagraph", ROCKET, mask, "-o", f"{tmp_path / 'c'}/", "--model", model,
                         "--frames", "9", "--seed", "2")  # beyond the 5-frame window: MultiDiffusion
    assert code == 0, err
    video = read_video(tmp_path / "c")[0]
    assert video.shape == (9, 3, 16, 16) and "mean frame-to-frame change" in out
    keep = fit_regions(read_mask(mask, (height, width)), 1, (16, 16), "m")[0] == 0  # (1, 16, 16): bottom half
    assert keep[:, 9:].all() and not keep[:, :8].any()
    assert all(torch.equal(frame[keep.expand(3, -1, -1)], image[keep.expand(3, -1, -1)]) for frame in video)
    assert not torch.equal(video[1:, :, :8], image[None, :, :8].expand(8, -1, -1, -1))
    target = tmp_path / "x.mp4"
    for args, message in [((mask, "--frames", "1"), "--frames must be at least 2, got 1"),
                          ((tmp_path,), "is a folder; expected an image file"),
                          ((tmp_path / "clip.png",), "the mask must have the image's size, 320x214")]:
        code, _, err = run(capsys, "cinemagraph", ROCKET, *args, "-o", target, "--model", model)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not target.exists()


def test_inpaint_baselines_keep_the_outside_and_temporal_copy_finds_what_other_frames_show():
    from lightvid.eval.inpaint_baselines import telea, temporal_copy

    still = (torch.rand(1, 3, 16, 16) * 2 - 1).expand(5, -1, -1, -1)  # a still clip: any frame shows the truth
    regions = torch.zeros(5, 1, 16, 16)
    for t in range(5):  # a box moving right: every pixel it covers is visible in another frame
        regions[t, :, 4:10, 2 * t:2 * t + 4] = 1
    copied = temporal_copy(still, regions)
    assert torch.equal(copied, still)
    hidden = regions.clone()
    hidden[:, :, 12:14, 12:14] = 1  # hidden in every frame: Telea fills it
    for method in (telea, temporal_copy):
        out = method(still, hidden)
        outside = (hidden == 0).expand_as(still)
        assert torch.equal(out[outside], still[outside]) and torch.isfinite(out).all()
    assert torch.equal(temporal_copy(still, hidden)[:, :, 12:14, 12:14], telea(still, hidden)[:, :, 12:14, 12:14])
