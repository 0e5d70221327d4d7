"""The editor's exact edits, instructions, text encoder, edit pairs (equivariant augmentation included) and
training (exact resume)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from edit_fixtures import tiny_editor, tiny_editor_config
from tolerances import EPS32, relative_error

from lightvid.edit.data import EditPairs, apply_affine, random_affine
from lightvid.edit.instructions import EDITS, exact_edit, greyscale, invert, posterize, words
from lightvid.errors import LightvidError


def _image(seed=0, size=(3, 24, 32)) -> torch.Tensor:
    return torch.rand(size, generator=torch.Generator().manual_seed(seed))


def test_every_edit_keeps_shape_and_range_and_changes_the_image():
    x = _image()
    for edit in EDITS:
        y = edit.apply(x)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1, edit.name
        assert (y - x).abs().mean() > 0.01, edit.name


def test_exact_edits_do_what_they_say():
    x = _image()
    grey = greyscale(x)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert relative_error(grey[0], 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]) <= 4 * EPS32  # one sum's rounding
    assert torch.allclose(invert(invert(x)), x, atol=EPS32)  # 1 - (1 - x): two roundings of values in [0, 1]
    assert len(torch.unique(posterize(x))) == 4
    flat = torch.full((3, 16, 16), 0.3)
    by_name = {e.name: e for e in EDITS}
    for name in ("blur", "sharpen"):  # a flat image has nothing to blur or sharpen
        assert torch.allclose(by_name[name].apply(flat), flat, atol=4 * EPS32), name


def test_instructions_are_found_by_any_phrasing():
    for edit in EDITS:
        for phrase in edit.phrasings + edit.held_out:
            assert exact_edit(phrase.upper() + "!") is edit
    assert exact_edit("make it purple") is None
    assert words("Make it B&W!") == ["make", "it", "b", "w"]
    held_out = {p for e in EDITS for p in e.held_out}
    assert not held_out & {p for e in EDITS for p in e.phrasings}


def test_the_text_encoder_refuses_words_it_does_not_know(tmp_path):
    editor = tiny_editor()
    assert editor.encode_text(["make it darker", ""]).shape == (2, 12, 16)
    with pytest.raises(LightvidError, match=r"unknown word: purple.*it knows: \"make it black and white\""):
        editor.check_instruction("make it purple")
    with pytest.raises(LightvidError, match="the instruction is empty"):
        editor.check_instruction("  !! ")
    with pytest.raises(LightvidError, match="at most 12"):
        editor.encode_text(["make " * 13])
    editor.save_pretrained(tmp_path / "editor")
    from lightvid.edit.editor import Editor
    loaded = Editor.from_pretrained(tmp_path / "editor")
    ids = ["blur it", "make it look like night"]
    assert torch.equal(loaded.encode_text(ids), editor.encode_text(ids))


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon", "v_prediction"])
def test_the_training_target_gives_back_the_clean_image(prediction_type):
    from lightvid.edit.editor import EditorSettings
    editor = tiny_editor()
    editor.settings = EditorSettings(prediction_type=prediction_type)
    x0, noise = torch.randn(4, 12, 8, 8), torch.randn(4, 12, 8, 8)
    sigma = torch.tensor([0.01, 0.5, 3.0, 14.0])
    x = x0 + sigma.view(-1, 1, 1, 1) * noise
    back = editor.to_x0(x, sigma, editor.target(x0, noise, sigma))
    # x = x0 + σ·noise and back: rounding of values up to |x| ~ 14·4, relative to x0's ~4
    assert relative_error(back, x0) <= 200 * EPS32


def test_edit_pairs_are_exact_and_deterministic():
    pictures = [_image(i, (3, 40, 50)) for i in range(3)]
    data = EditPairs("train", size=16, seed=3, pictures=pictures)
    source, edited, phrase, index = data[5]
    assert source.shape == edited.shape == (3, 16, 16)
    assert torch.equal(edited, EDITS[index].apply(source[None])[0])
    assert phrase in EDITS[index].phrasings
    again = EditPairs("train", size=16, seed=3, pictures=pictures)[5]
    assert torch.equal(again[0], source) and again[2] == phrase
    assert not torch.equal(EditPairs("train", size=16, seed=4, pictures=pictures)[5][0], source)
    test = EditPairs("test", size=16, seed=3, pictures=pictures)
    assert all(test[i][2] in EDITS[test[i][3]].held_out for i in range(20))


def test_equivariant_pairs_share_one_affine_transform():
    rng = np.random.default_rng(0)
    for _ in range(200):
        theta = random_affine(rng).double()
        # rotation and shear keep the area: det = scale², scale in [0.95, 1.05]; translation within ±0.05
        assert 0.95 ** 2 - 1e-9 <= torch.linalg.det(theta[:, :2]) <= 1.05 ** 2 + 1e-9
        assert theta[:, 2].abs().max() <= 0.05
    pictures = [_image(i, (3, 40, 50)) for i in range(3)]
    plain = EditPairs("train", size=32, seed=1, pictures=pictures)
    warped = EditPairs("train", size=32, seed=1, pictures=pictures, equivariant=True)
    for i in range(10):
        source, edited, _, index = warped[i]
        assert not torch.equal(source, plain[i][0])  # transformed
        if EDITS[index].name in ("greyscale", "invert", "darker"):
            # a per-pixel linear edit commutes with the warp: the same transform was applied to both images;
            # the bilinear weights sum to 1 within float rounding of values in [0, 1]
            assert relative_error(edited, EDITS[index].apply(source[None])[0]) <= 8 * EPS32
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    image = _image(1, (2, 3, 8, 8))
    assert torch.allclose(apply_affine(image, theta), image, atol=4 * EPS32)  # the identity resamples pixel centres


def test_training_resumes_exactly(tmp_path):
    from PIL import Image
    from safetensors.torch import load_file

    from lightvid.edit.train import train
    (tmp_path / "photos").mkdir()
    for i in range(3):  # two to train on, one held out
        Image.fromarray((_image(i, (40, 50, 3)).numpy() * 255).astype(np.uint8)).save(tmp_path / "photos" / f"{i}.png")

    def config(name, **extra):
        return tiny_editor_config(tmp_path / name, photos=str(tmp_path / "photos"), **extra)
    straight = train(config("straight"), progress=False)
    train(config("resumed"), max_steps=2, progress=False)
    resumed = train(config("resumed"), progress=False)
    equivariant = train(config("equivariant", equivariant=True, init_from=str(straight)), progress=False)
    a = load_file(straight / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(equivariant / "unet" / "diffusion_pytorch_model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)
    log = (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in log] == [1, 2, 3, 4]


def test_editor_settings_are_checked():
    from lightvid.edit.editor import EditorSettings
    with pytest.raises(LightvidError, match=r"prediction_type 'flow'.*steps 0"):
        EditorSettings(prediction_type="flow", steps=0)


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "edit").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_editor_configs_load(path):
    from lightvid.edit.editor import EditorSettings
    from lightvid.edit.train import load_config
    config = load_config(path)
    assert config.steps > 0 and config.output_dir.startswith("runs/")
    EditorSettings(**config.settings)  # the settings a config gives are valid
