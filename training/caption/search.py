"""Greedy and beam search over a one-step decoder, in numpy, exactly as ``models/README.md`` specifies.

The step function is one decoder step over a batch of images it was made for: ``(tokens [N], h [N, H],
c [N, H], images [N]) -> (log_probs [N, V], h_out, c_out)``, where ``images`` says which image of that
batch each row decodes. The PyTorch model (``model.numpy_step``) and the exported ONNX graphs
(``runtime.OnnxCaptioner.step_for``) both plug in here, so a parity test compares the two networks over whole
searches. Decoding starts from ``bos``; a hypothesis ends at ``eos`` (kept as its last token) or after
``max_length`` tokens. Its score is the summed log-probability divided by its length in tokens; the
search returns the hypothesis with the highest summed log-probability / length ** ``length_penalty``
(1: that score; 0: the summed log-probability, which prefers shorter captions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Step = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Hypothesis:
    """Generated ids (without ``<start>``, with ``<end>`` when produced) and their summed log-probability."""

    ids: tuple[int, ...]
    log_prob: float

    @property
    def score(self) -> float:
        """Summed log-probability per token: the ranking of finished captions."""
        return self.log_prob / max(1, len(self.ids))


def beam_search(
    step: Step,
    h: np.ndarray,
    c: np.ndarray,
    *,
    image: int = 0,
    bos: int,
    eos: int,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> Hypothesis:
    """Beam search for image ``image`` of the step's batch (``h``/``c`` [1, H], its initial state); return
    the best hypothesis.

    Each step extends every live hypothesis by every token and keeps the ``beam_size - finished`` best
    by summed log-probability (ties: lower hypothesis index, then lower token id). Those ending in ``eos``
    are finished and shrink the beam; the search ends when the beam is empty or after ``max_length``
    steps, when the live hypotheses join the finished ones. The best has the highest summed
    log-probability / length ** ``length_penalty`` (with 1, the highest :attr:`score`).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    tokens = np.array([bos], dtype=np.int64)
    sums = np.zeros(1, dtype=np.float64)
    sequences: list[tuple[int, ...]] = [()]
    finished: list[Hypothesis] = []
    for _ in range(max_length):
        log_probs, h, c = step(tokens, h, c, np.full(len(tokens), image, dtype=np.int64))
        totals = (sums[:, None] + log_probs.astype(np.float64)).ravel()
        best = np.argsort(-totals, kind="stable")[: beam_size - len(finished)]
        rows, words = np.divmod(best, log_probs.shape[1])
        keep = []
        for index, row, word in zip(best, rows, words, strict=True):
            if word == eos:
                finished.append(Hypothesis((*sequences[row], int(word)), float(totals[index])))
            else:
                keep.append((index, row, word))
        if not keep:
            break
        index, rows, words = (np.array(column) for column in zip(*keep, strict=True))
        sequences = [(*sequences[r], int(w)) for r, w in zip(rows, words, strict=True)]
        tokens, sums, h, c = words.astype(np.int64), totals[index], h[rows], c[rows]
    else:
        finished.extend(Hypothesis(seq, float(s)) for seq, s in zip(sequences, sums, strict=True))
    return max(finished, key=lambda hyp: hyp.log_prob / max(1, len(hyp.ids)) ** length_penalty)


def greedy_search(
    step: Step, h: np.ndarray, c: np.ndarray, *, bos: int, eos: int, max_length: int
) -> list[tuple[int, ...]]:
    """Batched greedy decoding (beam size 1) of every image of the step's batch, from their initial
    states ``h``/``c`` [B, H]; returns the ids of each image."""
    tokens = np.full(len(h), bos, dtype=np.int64)
    images = np.arange(len(h))
    outputs: list[list[int]] = [[] for _ in range(len(h))]
    done = np.zeros(len(h), dtype=bool)
    for _ in range(max_length):
        log_probs, h, c = step(tokens, h, c, images)
        tokens = log_probs.argmax(axis=1).astype(np.int64)
        for i in np.flatnonzero(~done):
            outputs[i].append(int(tokens[i]))
        done |= tokens == eos
        if done.all():
            break
    return [tuple(ids) for ids in outputs]
