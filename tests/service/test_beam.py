"""The service's beam search on a toy decoder whose state is its last token: the final choice among the
finished beams follows the manifest's length penalty, and the score stays the mean per token."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtimes.beam import BeamSearch, top_k

# ids: 0 pad, 1 unk, 2 bos, 3 eos, 4 "a", 5 "b", 6 "c". Beam 2 finishes "a <end>" (0.6 * 0.5 = 0.3 over
# 2 tokens) and "b c <end>" (0.4 * 0.8 * 0.8 = 0.256 over 3 tokens).
TABLE = {
    2: [0, 0, 0, 0, 0.6, 0.4, 0],
    4: [0, 0, 0, 0.5, 0.25, 0.25, 0],
    5: [0, 0, 0, 0.1, 0.1, 0, 0.8],
    6: [0, 0, 0, 0.8, 0.1, 0.1, 0],
    3: [0, 0, 0, 1.0, 0, 0, 0],
}


def _step(tokens, h, c, images):
    log_probs = np.log(np.array([TABLE[int(t)] for t in tokens], dtype=np.float32) + 1e-12)
    return log_probs, h, c


@pytest.mark.parametrize(
    ("length_penalty", "tokens", "score"),
    [(0.0, [4], np.log(0.3) / 2), (1.0, [5, 6], np.log(0.256) / 3), (0.5, [5, 6], np.log(0.256) / 3)],
)
def test_length_penalty_decides_between_a_short_and_a_long_caption(
    length_penalty: float, tokens: list[int], score: float
) -> None:
    zeros = np.zeros((1, 4), np.float32)
    search = BeamSearch(
        zeros, zeros, bos_id=2, eos_id=3, max_length=6, beam_size=2, length_penalty=length_penalty
    )
    (best,) = search.run(_step)
    assert best.tokens == tokens
    assert best.score == pytest.approx(score, rel=1e-5)


@pytest.mark.parametrize("rows", [1, 5, 32])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_top_k_is_the_stable_sort_s_first_k(rows: int, k: int) -> None:
    rng = np.random.default_rng(rows * 10 + k)
    values = rng.normal(size=(rows, 3 * 50))
    values[0, :20] = -np.inf  # finished beams and not-yet-live beams give -inf candidates
    np.testing.assert_array_equal(top_k(values, k), np.argsort(-values, axis=1, kind="stable")[:, :k])


def test_top_k_breaks_ties_towards_the_lower_index() -> None:
    values = np.array([[0.0, 2.0, 1.0, 2.0, 1.0, 1.0], [-np.inf, -np.inf, 5.0, -np.inf, -np.inf, -np.inf]])
    assert top_k(values, 3).tolist() == [[1, 3, 2], [2, 0, 1]]
    assert top_k(values, 2).tolist() == [[1, 3], [2, 0]]
    assert top_k(values, 6).tolist() == np.argsort(-values, axis=1, kind="stable").tolist()
