"""Text -> token ids with the version's own ``tokenizers`` tokenizer, truncated, padded and with lengths."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer

from contract.manifest import TextSpec
from contract.text import pad_ids, window


def load_tokenizer(path: Path) -> Tokenizer:
    """Load a serialized ``tokenizers`` tokenizer (it carries its own normaliser and vocabulary)."""
    return Tokenizer.from_file(str(path))


class EncodedTexts(NamedTuple):
    """A batch of texts as the graph takes them, and which of them were cut to fit."""

    ids: np.ndarray  # [N, T], right-padded with pad_id
    lengths: np.ndarray  # [N], each at least 1
    truncated: list[bool]  # longer than max_length tokens: only the first max_length are read


class TextEncoder:
    """Encodes a batch of texts as the manifest's ``text`` section says."""

    def __init__(self, tokenizer: Tokenizer, spec: TextSpec) -> None:
        self.tokenizer = tokenizer
        self.spec = spec

    def encode(self, texts: list[str]) -> EncodedTexts:
        """Texts -> ids right-padded to the longest, true lengths, and which texts were truncated."""
        rows, truncated = self.tokenize(texts)
        ids, lengths = pad_ids(rows, self.spec.pad_id)
        return EncodedTexts(ids, lengths, truncated)

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Texts -> ids per text, truncated to ``max_length``, at least one each; and per text, whether
        it had more tokens than that."""
        rows, truncated = [], []
        if len(texts) == 1:  # encode_batch costs more for a single text
            encodings = [self.tokenizer.encode(texts[0])]
        else:
            encodings = self.tokenizer.encode_batch(texts)
        for encoding in encodings:
            ids = encoding.ids
            truncated.append(len(ids) > self.spec.max_length)
            rows.append(window(ids, self.spec.max_length, self.spec.unk_id))
        return rows, truncated
