"""Tiny random editors for the editing tests: a lightvid editor and an InstructPix2Pix folder in diffusers format."""
import json
import string
from pathlib import Path

import torch

TINY_UNET = dict(block_out_channels=[16, 32], down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=1, attention_head_dim=8,
                 norm_num_groups=8)


def tiny_editor_config(output_dir, **extra):
    from lightvid.edit.train import EditorTrainConfig
    return EditorTrainConfig(output_dir=str(output_dir), crop=16, batch_size=2, steps=4, checkpoint_every=2,
                             warmup=2, unet=TINY_UNET, text=dict(dim=16, layers=1, heads=2, max_words=12),
                             settings=dict(size=32, steps=3), **extra)


def tiny_editor(seed: int = 0):
    """A random lightvid editor: pixel space (2x2 patches), frame sides multiples of 4."""
    from lightvid.edit.train import new_editor
    editor = new_editor(tiny_editor_config("unused", seed=seed)).eval()
    with torch.no_grad():  # the UNet's output conv is zero at init: make every layer matter
        for p in editor.unet.conv_out.parameters():
            p.normal_(0, 0.1)
    return editor


def _clip_tokenizer_files(folder: Path) -> None:
    """A character-level CLIP BPE vocabulary (every lowercase letter, alone or ending a word)."""
    letters = list(string.ascii_lowercase)
    vocab = {t: i for i, t in enumerate(letters + [c + "</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def make_ip2p_folder(folder: Path) -> Path:
    """A tiny random InstructPix2Pix pipeline saved as diffusers saves one (8 input channels: noisy + image latent)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    unet = UNet2DConditionModel(sample_size=8, in_channels=8, out_channels=4, cross_attention_dim=32, **TINY_UNET)
    vae = AutoencoderKL(block_out_channels=(16, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8)
    (folder / "tokenizer").mkdir()
    _clip_tokenizer_files(folder / "tokenizer")
    tokenizer = CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"), str(folder / "tokenizer" / "merges.txt"),
                              model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                        num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=16,
                                        bos_token_id=52, eos_token_id=53, pad_token_id=53))
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    EulerAncestralDiscreteScheduler(beta_schedule="scaled_linear").save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInstructPix2PixPipeline"}))
    return folder
