"""Beam search over a one-step decoder, batched across images (greedy decoding is beam size 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# step(tokens [R], h [R, H], c [R, H], row_index [R]) -> (log_probs [R, V], h_out, c_out);
# row_index says which image each row belongs to, so the caller can feed its features.
Step = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Hypothesis:
    """A decoded sequence without ``bos``/``eos`` and its score: summed log-probability per token,
    counting the ``eos`` token when it was produced."""

    tokens: list[int]
    score: float


def beam_search(
    step: Step,
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    bos_id: int,
    eos_id: int,
    max_length: int,
    beam_size: int,
) -> list[Hypothesis]:
    """Decode every image of the batch at once; returns the best hypothesis per image.

    Rows are ``images x beams``. A finished beam keeps its score and length: its only continuation is
    ``eos`` at log-probability 0. Beams compete on summed log-probability; the final choice among them
    is by length-normalised score.
    """
    n_images = h0.shape[0]
    k = beam_size
    images = np.repeat(np.arange(n_images), k)
    h, c = np.repeat(h0, k, axis=0), np.repeat(c0, k, axis=0)
    tokens = np.full(n_images * k, bos_id, dtype=np.int64)
    scores = np.full((n_images, k), -np.inf)
    scores[:, 0] = 0.0  # one live beam per image to start with
    lengths = np.zeros((n_images, k), dtype=np.int64)
    finished = np.zeros((n_images, k), dtype=bool)
    sequences = np.zeros((n_images, k, 0), dtype=np.int64)

    for _ in range(max_length):
        log_probs, h_out, c_out = step(tokens, h, c, images)
        vocab = log_probs.shape[1]
        log_probs = log_probs.astype(np.float64).reshape(n_images, k, vocab)
        log_probs[finished] = -np.inf
        log_probs[finished, eos_id] = 0.0
        candidates = (scores[:, :, None] + log_probs).reshape(n_images, k * vocab)
        width = min(k, k * vocab)
        best = np.argsort(-candidates, axis=1, kind="stable")[:, :width]
        beam, token = best // vocab, best % vocab
        rows = np.arange(n_images)[:, None]
        scores = candidates[rows, best]
        lengths = lengths[rows, beam] + ~finished[rows, beam]
        finished = finished[rows, beam] | (token == eos_id)
        sequences = np.concatenate([sequences[rows, beam], token[:, :, None]], axis=2)
        flat = (rows * k + beam).reshape(-1)
        h, c, tokens = h_out[flat], c_out[flat], token.reshape(-1).astype(np.int64)
        if finished[np.isfinite(scores)].all():
            break

    normalised = np.where(np.isfinite(scores), scores / np.maximum(lengths, 1), -np.inf)
    winners = normalised.argmax(axis=1)
    results = []
    for i, b in enumerate(winners):
        ids = [int(t) for t in sequences[i, b, : lengths[i, b]] if t != eos_id]
        results.append(Hypothesis(tokens=ids, score=float(normalised[i, b])))
    return results
