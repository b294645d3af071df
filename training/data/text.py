"""Text classification data: CSV (text and label columns, optionally gzipped) and the aclImdb folder layout,
plus the word-level tokenizer whose normaliser carries the text cleaning."""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from contract.text import window
from training.data import DataError

PAD, UNK = "<pad>", "<unk>"
LABEL_NAMES = {"neg": "negative", "pos": "positive"}  # friendlier names for IMDB's labels


def _read_csv(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    csv.field_size_limit(sys.maxsize)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {text_column, label_column} - set(reader.fieldnames or ())
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; header is {reader.fieldnames}"
                )
            rows = [(row[text_column], row[label_column]) for row in reader]
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no rows")
    if any(text is None or label in (None, "") for text, label in rows):
        raise DataError(f"{path}: some rows lack a {text_column!r} or {label_column!r} value")
    return [t for t, _ in rows], [label for _, label in rows]


def _read_aclimdb(folder: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label in ("neg", "pos"):
        files = sorted((folder / label).glob("*.txt"))
        if not files:
            raise DataError(
                f"{folder / label}: no .txt reviews (aclImdb layout: <split>/pos/*.txt, <split>/neg/*.txt)"
            )
        texts += [f.read_text(encoding="utf-8", errors="replace") for f in files]
        labels += [label] * len(files)
    return texts, labels


def load_text(
    path: Path, split: str, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """Texts and label strings of ``split`` from a CSV file, a folder of ``<split>.csv[.gz]``, or aclImdb."""
    path = Path(path)
    if path.is_file():
        return _read_csv(path, text_column, label_column)
    if not path.is_dir():
        raise DataError(f"text dataset {path} does not exist")
    for candidate in (path / f"{split}.csv.gz", path / f"{split}.csv"):
        if candidate.is_file():
            return _read_csv(candidate, text_column, label_column)
    if (path / split).is_dir():
        return _read_aclimdb(path / split)
    raise DataError(
        f"{path}: no '{split}' data; expected {split}.csv.gz, {split}.csv, or the aclImdb "
        f"layout {split}/pos/*.txt + {split}/neg/*.txt"
    )


def label_names(raw_labels: Iterable[str]) -> list[str]:
    """Sorted distinct raw labels (so "neg" is class 0), named for people where a name is known."""
    return [LABEL_NAMES.get(label, label) for label in sorted(set(raw_labels))]


def encode_labels(raw_labels: list[str], names: list[str]) -> list[int]:
    """Class indices of raw labels; unknown labels are an error naming them."""
    lookup = {
        raw: names.index(LABEL_NAMES.get(raw, raw))
        for raw in set(raw_labels)
        if LABEL_NAMES.get(raw, raw) in names
    }
    unknown = sorted(set(raw_labels) - lookup.keys())
    if unknown:
        raise DataError(f"labels {unknown} are not among the training labels {names}")
    return [lookup[raw] for raw in raw_labels]


def build_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """A WordLevel tokenizer: lowercase, ``<br />`` and punctuation removed, whitespace split, capped vocab.

    ``<pad>`` is id 0 and ``<unk>`` id 1; the cleaning lives in the normaliser so the service needs only
    ``Tokenizer.from_file(path).encode(text).ids``.
    """
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"<br\s*/?>"), " "),
            normalizers.Replace(Regex(r"[^\w\s]|_"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Ids per text, truncated to ``max_length``; an empty text becomes one unknown token."""
    unk = tokenizer.token_to_id(UNK)
    assert unk is not None, f"the tokenizer has no {UNK}"
    return [window(e.ids, max_length, unk) for e in tokenizer.encode_batch(texts)]


class EncodedTexts(torch.utils.data.Dataset):
    """Pre-tokenised texts with their class indices."""

    def __init__(self, ids: list[list[int]], targets: list[int]) -> None:
        self.ids, self.targets = ids, targets

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.targets[i]


def pad_batch(batch: list[tuple[list[int], int]], pad_id: int = 0):
    """Right-pad to the longest row: ``((input_ids, lengths), targets)``."""
    lengths = torch.tensor([len(ids) for ids, _ in batch])
    input_ids = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    return (input_ids, lengths), torch.tensor([t for _, t in batch])
