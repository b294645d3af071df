"""The text window and padding every sentiment feed goes through."""

from __future__ import annotations

import numpy as np

from contract.text import pad_ids, window


def test_the_window_keeps_the_first_ids_and_at_least_one() -> None:
    assert window([5, 6, 7], 2, unk_id=1) == [5, 6]
    assert window([5], 2, unk_id=1) == [5]
    assert window([], 2, unk_id=1) == [1]


def test_rows_are_right_padded_to_the_longest_with_their_lengths() -> None:
    ids, lengths = pad_ids([[5, 6, 7], [8], np.array([9, 10])], pad_id=0)
    assert ids.dtype == lengths.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]
