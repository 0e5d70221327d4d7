"""A small instruction encoder: a closed word vocabulary, learned word + position embeddings, a few pre-norm
transformer layers. Trained together with the editor it conditions (lightvid.edit.train).

An instruction is read as words (letters only, lower case), padded to `max_words` with a learned PAD word; the
empty instruction is all PAD: the "no instruction" context of classifier-free guidance. A word outside the
vocabulary is an error, not a guess (`UnknownWords`).
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lightvid.errors import LightvidError
from lightvid.io import atomic_dir

PAD = "<pad>"


class UnknownWords(LightvidError):
    """Words the encoder has no embedding for."""


@dataclass(frozen=True)
class TextEncoderConfig:
    vocabulary: tuple[str, ...]  # PAD first
    dim: int = 64
    layers: int = 2
    heads: int = 4
    max_words: int = 12


class TextEncoder(nn.Module):
    """instruction -> context tokens (b, max_words, dim) for cross-attention."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.index = {w: i for i, w in enumerate(config.vocabulary)}
        self.words = nn.Embedding(len(config.vocabulary), config.dim)
        self.positions = nn.Parameter(torch.zeros(config.max_words, config.dim))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def tokenize(self, words: list[list[str]]) -> torch.Tensor:
        """Word lists -> (b, max_words) indices; UnknownWords names the words outside the vocabulary."""
        unknown = sorted({w for ws in words for w in ws if w not in self.index})
        if unknown:
            raise UnknownWords(f"unknown word{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        too_long = [ws for ws in words if len(ws) > self.config.max_words]
        if too_long:
            raise LightvidError(f"an instruction has {len(too_long[0])} words; at most {self.config.max_words}")
        ids = [[self.index[w] for w in ws] + [0] * (self.config.max_words - len(ws)) for ws in words]
        return torch.tensor(ids, dtype=torch.long)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (b, max_words) -> (b, max_words, dim)
        return self.norm(self.layers(self.words(ids) + self.positions))

    def save_pretrained(self, folder: Path) -> None:
        with atomic_dir(folder, overwrite=True) as tmp:
            (Path(tmp) / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(tmp) / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: Path) -> "TextEncoder":
        raw = json.loads((Path(folder) / "config.json").read_text())
        model = cls(TextEncoderConfig(**{**raw, "vocabulary": tuple(raw["vocabulary"])}))
        model.load_state_dict(load_file(Path(folder) / "model.safetensors"))
        return model.eval()
