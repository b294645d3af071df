"""Caption decoding: the one beam search over a one-step decoder, as models/README.md specifies it, for
the service (which advances many searches one decoder run at a time: service/runtimes/caption_steps.py)
and for training (export parity, dev captions, evaluation) alike, so that a model card's BLEU is measured
with the search that serves requests. Greedy decoding is beam size 1. numpy only."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# step(tokens [R], h [R, H], c [R, H], row_index [R]) -> (log_probs [R, V], h_out, c_out);
# row_index says which image each row belongs to, so the caller can feed its features.
Step = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def banned_tokens(*, bos_id: int, pad_id: int, unk_id: int) -> tuple[int, ...]:
    """The tokens no caption may hold (the unknown word, padding, a second ``bos``), from the manifest's
    special ids: a search that would have taken one takes its best alternative instead of losing a word."""
    return (unk_id, pad_id, bos_id)


@dataclass(frozen=True)
class Hypothesis:
    """A decoded sequence without ``bos``/``eos`` and its score: summed log-probability per token,
    counting the ``eos`` token when it was produced."""

    tokens: list[int]
    score: float


class BeamSearch:
    """The state of one beam search over a batch of images, advanced one decoder step at a time, so that
    a scheduler can run the steps of many searches in one decoder run (service/runtimes/caption_steps.py).

    Rows are ``images x beams``. A finished beam keeps its score and length: its only continuation is
    ``eos`` at log-probability 0. Beams compete on summed log-probability; the final choice among them
    is by summed log-probability / length ** ``length_penalty`` (0: the summed log-probability itself,
    1: the mean per token, which favours longer captions).
    """

    # Why finished beams keep their slot and compete, instead of leaving the beam and shrinking it: with
    # ``eos`` absorbing (a finished beam's only continuation, at log-probability 0) this is plain beam
    # search of width ``beam_size`` over summed log-probability, one definition whatever step each beam
    # finished at, with greedy decoding as its width 1. Steps only add log-probabilities <= 0, so a live
    # beam below a finished one never overtakes it: a finished beam leaves only when ``beam_size``
    # candidates beat it at that step, as any beam would. And every image holds exactly ``beam_size``
    # rows at every step, which is what lets the searches of many requests, joining and finishing at
    # different steps, share one decoder run at fixed row offsets and advance in one set of array
    # operations (``advance_together``).

    def __init__(
        self,
        h0: np.ndarray,
        c0: np.ndarray,
        *,
        bos_id: int,
        eos_id: int,
        max_length: int,
        beam_size: int,
        length_penalty: float = 1.0,
        banned: Sequence[int] = (),
        no_repeat_ngram: int = 0,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        if no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be 0 (off) or more, got {no_repeat_ngram}")
        self.n_images, self.k = h0.shape[0], beam_size
        self.banned = tuple(banned)  # never chosen at any step (``banned_tokens``)
        self.eos_id, self.max_length, self.length_penalty = eos_id, max_length, length_penalty
        k = beam_size
        # The decoder's next inputs: per row its previous token, its state, and which image it belongs to.
        self.images = np.repeat(np.arange(self.n_images), k)
        self.h, self.c = np.repeat(h0, k, axis=0), np.repeat(c0, k, axis=0)
        self.tokens = np.full(self.n_images * k, bos_id, dtype=np.int64)
        self.scores = np.full((self.n_images, k), -np.inf)
        self.scores[:, 0] = 0.0  # one live beam per image to start with
        self.lengths = np.zeros((self.n_images, k), dtype=np.int64)
        self.finished = np.zeros((self.n_images, k), dtype=bool)
        # per step, [images, k]: the beam each beam continued and the token it took (the sequences are
        # traced back through them at the end, instead of copying every beam's sequence at every step)
        self.parents: list[np.ndarray] = []
        self.chosen: list[np.ndarray] = []
        # with ``no_repeat_ngram`` n: no beam takes a token that would repeat one of its own n-grams, so
        # each beam's tokens so far are kept, [images, k, steps]
        self.no_repeat_ngram = no_repeat_ngram
        self.history = np.zeros((self.n_images, k, 0), dtype=np.int64) if no_repeat_ngram else None
        self.steps = 0
        self.done = max_length <= 0

    @property
    def rows(self) -> int:
        """Decoder rows this search feeds per step."""
        return self.n_images * self.k

    def advance(self, log_probs: np.ndarray, h_out: np.ndarray, c_out: np.ndarray) -> None:
        """Take one decoder step's outputs for this search's rows."""
        advance_together([self], log_probs, h_out, c_out)

    def run(self, step: Step) -> list[Hypothesis]:
        """Decode to the end with ``step`` alone (the service shares decoder runs between searches:
        service/runtimes/caption_steps.py); return the best hypothesis per image."""
        while not self.done:
            self.advance(*step(self.tokens, self.h, self.c, self.images))
        return self.best()

    def best(self) -> list[Hypothesis]:
        """The best hypothesis per image by summed log-probability / length ** length_penalty; its
        score is the mean log-probability per token whatever the penalty."""
        scores, lengths = self.scores, np.maximum(self.lengths, 1)
        normalised = np.where(np.isfinite(scores), scores / lengths, -np.inf)
        penalised = lengths.astype(np.float64) ** self.length_penalty
        ranked = np.where(np.isfinite(scores), scores / penalised, -np.inf)
        winners = ranked.argmax(axis=1)
        images = np.arange(self.n_images)
        sequences = np.zeros((self.n_images, self.steps), dtype=np.int64)
        beam = winners
        for step in reversed(range(self.steps)):  # from each winner back to its first token
            sequences[:, step] = self.chosen[step][images, beam]
            beam = self.parents[step][images, beam]
        results = []
        for i, b in enumerate(winners):
            ids = [int(t) for t in sequences[i, : lengths[i, b]] if t != self.eos_id]
            results.append(Hypothesis(tokens=ids, score=float(normalised[i, b])))
        return results


def decode(
    step: Step,
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    bos_id: int,
    eos_id: int,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
    banned: Sequence[int] = (),
    no_repeat_ngram: int = 0,
) -> list[Hypothesis]:
    """The best hypothesis for each image of ``step``'s batch, from their initial states ``h0``/``c0``
    [images, H]: one :class:`BeamSearch` decoded to the end (greedy for ``beam_size`` 1)."""
    search = BeamSearch(
        h0,
        c0,
        bos_id=bos_id,
        eos_id=eos_id,
        max_length=max_length,
        beam_size=beam_size,
        length_penalty=length_penalty,
        banned=banned,
        no_repeat_ngram=no_repeat_ngram,
    )
    return search.run(step)


# images whose candidates (beams x vocabulary each, float64) are scored and ranked together: about 512 KB,
# within a core's cache (the whole running set's candidates at once, 2 MB for 32 images of the default
# captioner, made ranking them slower than one image at a time)
CANDIDATES_PER_CHUNK = 65536


def advance_together(
    searches: Sequence[BeamSearch], log_probs: np.ndarray, h_out: np.ndarray, c_out: np.ndarray
) -> None:
    """Advance every search in ``searches`` by one decoder step whose output rows are theirs, in order
    (each search's ``rows`` after the previous one's). Searches with the same beam size and ``eos`` are
    advanced in one set of array operations over all their images, so that a step's bookkeeping grows
    little with the number of searches (one search at a time took ~0.2 ms each: 3 ms of every step for
    16 requests on this project's CPU, where the decoder run took 6 ms; on a GPU the run is shorter and
    the bookkeeping the same); each search advances exactly as it would alone."""
    banned = sorted({token for search in searches for token in search.banned})  # one model's searches
    blocking = any(search.no_repeat_ngram for search in searches)
    if (banned or blocking) and not log_probs.flags.writeable:
        log_probs = log_probs.copy()
    if banned:
        log_probs[:, banned] = -np.inf
    starts = [0, *itertools.accumulate(s.rows for s in searches)]
    if blocking:
        _block_repeats(searches, starts, log_probs)
    if len(searches) == 1:
        _advance_group(list(searches), log_probs, h_out, c_out)
        return
    groups: dict[tuple[int, int], list[int]] = {}
    for i, search in enumerate(searches):
        groups.setdefault((search.k, search.eos_id), []).append(i)
    for members in groups.values():
        if len(members) == len(searches):
            rows: slice | np.ndarray = slice(0, starts[-1])
        else:
            rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in members])
        _advance_group([searches[i] for i in members], log_probs[rows], h_out[rows], c_out[rows])


def _block_repeats(searches: Sequence[BeamSearch], starts: Sequence[int], log_probs: np.ndarray) -> None:
    """Set to -inf, per row of each search (its rows from ``starts``), the log-probability of every token
    that would complete an n-gram (n = the search's ``no_repeat_ngram``) the row's beam already holds:
    where the beam's last n - 1 tokens occurred before, the token that followed them then. Searches with
    the same n and as many steps so far are matched in one set of array operations. (A finished beam's
    row is ignored later: its only continuation is ``eos``.)"""
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i, search in enumerate(searches):
        history = search.history  # kept only while n > 0: [images, k, steps]
        if history is not None and history.shape[2] >= search.no_repeat_ngram:
            key = (search.no_repeat_ngram, history.shape[2])
            groups.setdefault(key, []).append((i, history.reshape(search.rows, history.shape[2])))
    for (n, steps), members in groups.items():
        tokens = members[0][1] if len(members) == 1 else np.concatenate([h for _, h in members])
        rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i, _ in members])
        windows = steps - n + 1  # the n-grams held so far, by start
        match = np.ones((len(tokens), windows), dtype=bool)
        for offset in range(n - 1):  # window j's first n - 1 tokens equal the last n - 1
            match &= tokens[:, offset : offset + windows] == tokens[:, steps - n + 1 + offset, None]
        hits, first = np.nonzero(match)
        log_probs[rows[hits], tokens[hits, first + n - 1]] = -np.inf


def _advance_group(
    group: list[BeamSearch], log_probs: np.ndarray, h_out: np.ndarray, c_out: np.ndarray
) -> None:
    """``advance_together`` for searches of one beam size and ``eos``, whose rows these outputs are."""
    k, eos_id = group[0].k, group[0].eos_id
    n_images, vocab = sum(s.n_images for s in group), log_probs.shape[1]
    scores = np.concatenate([s.scores for s in group])
    lengths = np.concatenate([s.lengths for s in group])
    finished = np.concatenate([s.finished for s in group])
    log_probs = log_probs.reshape(n_images, k, vocab)
    best = np.empty((n_images, min(k, k * vocab)), dtype=np.int64)
    chosen = np.empty(best.shape)
    per_chunk = max(1, CANDIDATES_PER_CHUNK // (k * vocab))
    for start in range(0, n_images, per_chunk):
        part = slice(start, start + per_chunk)
        candidates = np.add(scores[part, :, None], log_probs[part], dtype=np.float64)
        done = finished[part]
        candidates[done] = -np.inf
        candidates[done, eos_id] = scores[part][done]  # a finished beam's only continuation, at no cost
        best[part], chosen[part] = _top_k(candidates.reshape(len(candidates), k * vocab), best.shape[1])
    beam, token = best // vocab, best % vocab
    images = np.arange(n_images)[:, None]
    scores = chosen
    lengths = lengths[images, beam] + ~finished[images, beam]
    finished = finished[images, beam] | (token == eos_id)
    settled = (finished | ~np.isfinite(scores)).all(axis=1)  # per image: no live beam left
    flat = (images * k + beam).reshape(-1)
    h, c, tokens = h_out[flat], c_out[flat], token.reshape(-1).astype(np.int64)
    start = 0
    for search in group:
        end = start + search.n_images
        search.scores, search.lengths, search.finished = (
            scores[start:end],
            lengths[start:end],
            finished[start:end],
        )
        search.parents.append(beam[start:end])
        search.chosen.append(token[start:end])
        if search.history is not None:
            own = np.arange(search.n_images)[:, None]
            search.history = np.concatenate(
                [search.history[own, beam[start:end]], token[start:end, :, None]], axis=2
            )
        search.h, search.c, search.tokens = (
            h[start * k : end * k],
            c[start * k : end * k],
            tokens[start * k : end * k],
        )
        search.steps += 1
        search.done = search.steps >= search.max_length or bool(settled[start:end].all())
        start = end


# up to this k, ``top_k`` takes each row's largest value one at a time: k passes of argmax over a row
# cost less than one argpartition of it (for 32 images of the default captioner, 3 beams: 0.07 ms
# against 0.3 ms on this project's CPU)
ARGMAX_PASSES_UP_TO = 8


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``values``, the indices of its ``k`` largest, largest first, ties to the lower index:
    exactly ``np.argsort(-values, axis=1, kind="stable")[:, :k]``, in linear time. A full sort of the
    beams' candidates (beams x vocabulary per image) took most of a decoder step for 32 images (23 ms
    against 3.5 ms on this project's CPU), on a GPU as much as on a CPU."""
    return _top_k(values.copy() if k <= ARGMAX_PASSES_UP_TO else values, k)[0]


def _top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k`'s indices and their values; up to ``ARGMAX_PASSES_UP_TO`` it overwrites ``values``
    (each taken value with -inf)."""
    if k >= values.shape[1]:
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(values, order, axis=1)
    rows = np.arange(len(values))[:, None]  # indexing by rows and columns: take_along_axis, cheaper
    if k <= ARGMAX_PASSES_UP_TO:
        result = np.empty((len(values), k), dtype=np.int64)
        taken = np.empty((len(values), k), dtype=values.dtype)
        for i in range(k):  # argmax: the first of the largest, so ties go to the lower index
            result[:, i] = values.argmax(axis=1)
            taken[:, i] = values[rows[:, 0], result[:, i]]
            values[rows[:, 0], result[:, i]] = -np.inf
        # a row that ran out of values above -inf (or holds nan): argmax no longer tells the taken from
        # the rest, so the row is put back and sorted
        short = ~(taken > -np.inf).all(axis=1)
        if short.any():
            values[rows, result] = taken
            result[short] = np.argsort(-values[short], axis=1, kind="stable")[:, :k]
            taken[short] = np.take_along_axis(values[short], result[short], axis=1)
        return result, taken
    chosen = np.argpartition(values, values.shape[1] - k, axis=1)[:, -k:]
    chosen_values = values[rows, chosen]
    order = np.lexsort((chosen, -chosen_values), axis=1)  # largest first, then the lower index
    result = chosen[rows, order]
    # a row with a tie at its k-th value (or too few finite values): which index wins is the sort's to say
    tied = (values >= chosen_values.min(axis=1, keepdims=True)).sum(axis=1) != k
    if tied.any():
        result[tied] = np.argsort(-values[tied], axis=1, kind="stable")[:, :k]
    return result, values[rows, result]
