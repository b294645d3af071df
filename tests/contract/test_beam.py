"""The one beam search (contract.beam) on toy decoders whose state is their last token: beam search
beats greedy where it should, the final choice among the finished beams follows the manifest's length
penalty, the score stays the mean per token, searches advanced together advance as they would alone, and
a banned token is never emitted."""

from __future__ import annotations

import numpy as np
import pytest

from contract.beam import BeamSearch, advance_together, banned_tokens, decode, top_k

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


def test_beam_search_beats_greedy() -> None:
    """Greedy takes "a" (0.5) and then is stuck at 0.3 for the end; two beams also keep "b" (0.4), whose
    end follows with 0.9. Greedy is beam size 1 of the same search, batched over images like any other."""
    table = {
        2: [0, 0, 0, 0.1, 0.5, 0.4],
        4: [0, 0, 0, 0.3, 0.35, 0.35],
        5: [0, 0, 0, 0.9, 0.05, 0.05],
        3: [0, 0, 0, 1.0, 0, 0],
    }

    def step(tokens, h, c, images):
        return np.log(np.array([table[int(t)] for t in tokens], dtype=np.float32) + 1e-12), h, c

    zeros = np.zeros((2, 1), np.float32)
    options = {"bos_id": 2, "eos_id": 3, "max_length": 4, "length_penalty": 1.0}
    best = decode(step, zeros, zeros, beam_size=2, **options)
    assert [h.tokens for h in best] == [[5], [5]]
    assert best[0].score == pytest.approx(np.log(0.4 * 0.9) / 2, rel=1e-5)
    assert [h.tokens for h in decode(step, zeros, zeros, beam_size=1, **options)] == [[4, 4, 4, 4]] * 2


def test_beam_size_must_be_positive() -> None:
    zeros = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match="beam_size must be at least 1, got 0"):
        BeamSearch(zeros, zeros, bos_id=2, eos_id=3, max_length=4, beam_size=0)


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
@pytest.mark.parametrize("k", [1, 3, 8, 9, 12])  # up to 8 by passes of argmax, beyond by argpartition
def test_top_k_is_the_stable_sort_s_first_k(rows: int, k: int) -> None:
    rng = np.random.default_rng(rows * 10 + k)
    values = rng.normal(size=(rows, 3 * 50))
    values[0, :20] = -np.inf  # finished beams and not-yet-live beams give -inf candidates
    values[-1, 140:] = -np.inf
    values[-1, :140] = np.round(values[-1, :140])  # many ties
    given = values.copy()
    np.testing.assert_array_equal(top_k(values, k), np.argsort(-values, axis=1, kind="stable")[:, :k])
    np.testing.assert_array_equal(values, given)  # the caller's values are left as they were


@pytest.mark.parametrize("k", [2, 4, 10])
def test_top_k_of_rows_short_of_finite_values_or_holding_nan_is_the_sort_s(k: int) -> None:
    values = np.full((4, 12), -np.inf)
    values[0, [7, 2]] = [1.0, 3.0]  # fewer finite values than k
    values[1, [5, 9]] = [np.nan, 2.0]
    values[2] = np.arange(12.0)
    values[3, 11] = 0.0
    expected = np.argsort(-values, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top_k(values, k), expected)


def test_top_k_breaks_ties_towards_the_lower_index() -> None:
    values = np.array([[0.0, 2.0, 1.0, 2.0, 1.0, 1.0], [-np.inf, -np.inf, 5.0, -np.inf, -np.inf, -np.inf]])
    assert top_k(values, 3).tolist() == [[1, 3, 2], [2, 0, 1]]
    assert top_k(values, 2).tolist() == [[1, 3], [2, 0]]
    assert top_k(values, 6).tolist() == np.argsort(-values, axis=1, kind="stable").tolist()
    # rows with a tie at the k-th value among one without: each row as the sort has it
    mixed = np.array([[0.0, 2.0, 1.0, 2.0], [4.0, 3.0, 1.0, 2.0], [1.0, 1.0, 1.0, 0.0]])
    assert top_k(mixed, 2).tolist() == [[1, 3], [0, 1], [0, 1]]


def test_searches_advanced_together_each_advance_as_they_would_alone() -> None:
    # beam sizes 3, 1, 3, 2 (the two of beam size 3 are advanced as one group, their rows apart), images
    # 1, 2, 3, 1, random log-probs with the end growing likelier so that searches finish at different
    # steps; max lengths 4 to 7
    rng = np.random.default_rng(7)
    vocab, hidden, eos = 9, 4, 3
    # and n-gram blocking off, 2, 1, 3 (a search's blocking is its own, also within a group)
    shapes = [(1, 3, 7, 0), (2, 1, 5, 2), (3, 3, 4, 1), (1, 2, 6, 3)]

    def searches() -> list[BeamSearch]:
        made = []
        for i, (images, k, max_length, n) in enumerate(shapes):
            h0 = np.full((images, hidden), float(i), np.float32)
            made.append(
                BeamSearch(
                    h0, h0, bos_id=2, eos_id=eos, max_length=max_length, beam_size=k, no_repeat_ngram=n
                )
            )
        return made

    def decoder(rows: int, step: int) -> np.ndarray:
        logits = np.random.default_rng(step * 100 + rows).normal(size=(rows, vocab)) * 2
        logits[:, eos] += step * 0.7  # the end grows likelier
        return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)

    together, alone = searches(), searches()
    step = 0
    while not all(s.done for s in together):
        running = [i for i, s in enumerate(together) if not s.done]
        rows = [together[i].rows for i in running]
        log_probs = decoder(sum(rows), step)
        h = rng.normal(size=(sum(rows), hidden)).astype(np.float32)
        advance_together([together[i] for i in running], log_probs, h, -h)
        offset = 0
        for i, n in zip(running, rows, strict=True):
            alone[i].advance(log_probs[offset : offset + n], h[offset : offset + n], -h[offset : offset + n])
            offset += n
        step += 1
    for joint, single in zip(together, alone, strict=True):
        assert joint.best() == single.best()
        assert joint.steps == single.steps
        np.testing.assert_array_equal(joint.h, single.h)
    assert [s.steps for s in together] != [s.max_length for s in together]  # some finished early
    for search in together:
        for hypothesis in search.best():
            assert not _repeats(hypothesis.tokens, search.no_repeat_ngram)


def test_searches_sharing_their_blocking_are_blocked_together_each_as_alone() -> None:
    # n-gram blocking is matched for all the searches of one n and one step count at once: here n = 2 for
    # searches 0, 2 and 4 (0 and 2 start together, rows apart; 4 joins two steps later) and n = 3 for 1
    # and 3; a vocabulary of 5 makes repeats likely, so blocking decides often
    rng = np.random.default_rng(11)
    vocab, hidden, eos = 5, 4, 3
    shapes = [(2, 3, 8, 2, 0), (1, 2, 8, 3, 0), (1, 1, 8, 2, 0), (2, 2, 7, 3, 1), (1, 3, 8, 2, 2)]

    def searches() -> list[BeamSearch]:
        return [
            BeamSearch(
                np.full((images, hidden), float(i), np.float32),
                np.zeros((images, hidden), np.float32),
                bos_id=2,
                eos_id=eos,
                max_length=max_length,
                beam_size=k,
                no_repeat_ngram=n,
            )
            for i, (images, k, max_length, n, _) in enumerate(shapes)
        ]

    together, alone = searches(), searches()
    step = 0
    while not all(s.done for s in together):
        running = [i for i, s in enumerate(together) if not s.done and shapes[i][4] <= step]
        rows = [together[i].rows for i in running]
        logits = rng.normal(size=(sum(rows), vocab))
        logits[:, eos] -= 3.0  # long captions, so n-grams come round again
        log_probs = (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)
        h = rng.normal(size=(sum(rows), hidden)).astype(np.float32)
        advance_together([together[i] for i in running], log_probs, h, h)
        offset = 0
        for i, n in zip(running, rows, strict=True):
            alone[i].advance(log_probs[offset : offset + n], h[offset : offset + n], h[offset : offset + n])
            offset += n
        step += 1
    for joint, single in zip(together, alone, strict=True):
        assert joint.best() == single.best()
        np.testing.assert_array_equal(joint.history, single.history)
        for hypothesis in joint.best():
            assert not _repeats(hypothesis.tokens, joint.no_repeat_ngram)
    assert any(len(h.tokens) >= 5 for s in together for h in s.best())  # long enough to have been blocked


def _repeats(tokens: list[int], n: int) -> bool:
    """Whether ``tokens`` hold some n-gram twice (never, for n = 0)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)] if n else []
    return len(grams) != len(set(grams))


def _looping_step(tokens, h, c, images):
    """A decoder that would loop "a b c a b c ..." (ids 4, 5, 6) and then end: its state is its last
    token; the word after the next one is its second choice, the end its third."""
    log_probs = np.full((len(tokens), 8), np.log(0.01))
    for row, token in enumerate(tokens):
        nxt = 4 if token in (2, 6) else int(token) + 1
        log_probs[row, nxt] = np.log(0.6)
        log_probs[row, 4 + (nxt - 4 + 1) % 3] = np.log(0.2)
        log_probs[row, 3] = np.log(0.1)
    return log_probs - np.log(np.exp(log_probs).sum(axis=1, keepdims=True)), h, c


def _greedy_without_repeats(n: int, max_length: int) -> list[int]:
    """Greedy decoding of ``_looping_step`` that skips every token completing a repeated n-gram,
    written plainly, one token at a time."""
    tokens: list[int] = []
    for _ in range(max_length):
        log_probs = _looping_step(np.array([tokens[-1] if tokens else 2]), None, None, None)[0][0]
        for token in np.argsort(-log_probs, kind="stable"):
            if int(token) == 3 or not _repeats([*tokens, int(token)], n):
                break
        if int(token) == 3:
            break
        tokens.append(int(token))
    return tokens


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_beam_repeats_its_own_n_grams(n: int, beam_size: int) -> None:
    h0 = np.zeros((2, 1), np.float32)
    options = {"bos_id": 2, "eos_id": 3, "max_length": 12, "beam_size": beam_size, "length_penalty": 0.0}
    looping = decode(_looping_step, h0, h0, **options)
    assert all(_repeats(hypothesis.tokens, 3) for hypothesis in looping)  # without blocking, it loops
    blocked = decode(_looping_step, h0, h0, no_repeat_ngram=n, **options)
    assert all(not _repeats(hypothesis.tokens, n) for hypothesis in blocked)
    if beam_size == 1:
        assert [h.tokens for h in blocked] == [_greedy_without_repeats(n, 12)] * 2
    with pytest.raises(ValueError, match="no_repeat_ngram must be 0"):
        BeamSearch(h0, h0, bos_id=2, eos_id=3, max_length=4, beam_size=1, no_repeat_ngram=-1)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_banned_token_is_never_chosen(beam_size: int) -> None:
    """A decoder that prefers the unknown word, then padding, then a second bos over any word at every
    step: banned (as the manifest's special ids ban them), the search takes the next best word instead,
    and finishes with eos as the decoder then prefers."""
    pad, unk, bos, eos, word, vocab = 0, 1, 2, 3, 4, 6

    def step(
        tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = np.full((len(tokens), vocab), -5.0)
        logits[:, [unk, pad, bos, word]] = [0.0, -0.2, -0.4, -1.0]
        logits[:, eos] = np.where(tokens == word, -0.5, -9.0)  # after a word, eos is likely
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return log_probs, h, c

    h0 = np.zeros((2, 4), dtype=np.float32)
    options = {"bos_id": bos, "eos_id": eos, "max_length": 5, "beam_size": beam_size, "length_penalty": 0.0}
    plain = decode(step, h0, h0, **options)
    assert all(unk in hypothesis.tokens for hypothesis in plain)
    banned = decode(step, h0, h0, banned=banned_tokens(bos_id=bos, pad_id=pad, unk_id=unk), **options)
    assert [hypothesis.tokens for hypothesis in banned] == [[word], [word]]
