"""What a sentiment graph reads of a text (the manifest's ``text`` section): the first ``max_length`` token
ids, at least one, right-padded with ``pad_id`` to the longest of a batch, with the true lengths. The
service, training's evaluate and the ngrams check all feed a graph this way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window(ids: Sequence[int], max_length: int, unk_id: int) -> list[int]:
    """The ids a graph reads of one text: the first ``max_length``; a text with none is one unknown."""
    return list(ids[:max_length]) or [unk_id]


def pad_ids(rows: Sequence[Sequence[int] | np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids per text -> (ids [N, T] int64, right-padded with ``pad_id`` to the longest, lengths [N])."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    padded = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    return padded, lengths
