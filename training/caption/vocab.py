"""Caption vocabulary as a ``tokenizers`` WordLevel tokenizer, usable without torch.

The tokenizer carries the text cleaning (lowercase, punctuation removed, whitespace split), so the words
counted for the vocabulary, the training targets and the service's decoding all go through one pipeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<start>", "<end>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^\w\s]"), "")])


def clean_words(text: str) -> list[str]:
    """Split ``text`` into the cleaned words the tokenizer sees."""
    normalized = _normalizer().normalize_str(text)
    return [word for word, _ in pre_tokenizers.Whitespace().pre_tokenize_str(normalized)]


def build_tokenizer(captions: Iterable[str], min_freq: int = 5, max_size: int | None = None) -> Tokenizer:
    """Build the vocabulary from ``captions``: words seen at least ``min_freq`` times, most frequent first.

    ``max_size`` caps the vocabulary (special tokens included); ties break alphabetically so the ids
    do not depend on the order of the data.
    """
    counts = Counter(word for caption in captions for word in clean_words(caption))
    words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIALS))]
    vocab = {token: i for i, token in enumerate([*SPECIALS, *words])}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(list(SPECIALS))
    return tokenizer


def encode_caption(tokenizer: Tokenizer, caption: str, max_length: int) -> list[int]:
    """``<start>`` + word ids + ``<end>``; words are truncated so at most ``max_length`` tokens follow
    ``<start>`` (the decoding limit)."""
    ids = tokenizer.encode(caption, add_special_tokens=False).ids[: max_length - 1]
    return [BOS_ID, *ids, EOS_ID]


def decode_caption(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Text of generated ids, special tokens dropped (as the service decodes)."""
    return tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
