"""BLEU (Papineni et al. 2002): corpus BLEU-1..4 with nltk, over word lists, for evaluation; a fast
sentence BLEU-4 for rewards."""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence

from nltk.translate.bleu_score import corpus_bleu

from training.caption.cider import ngrams

BLEU_WEIGHTS = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]


def bleu_scores(references: list[list[list[str]]], hypotheses: list[list[str]]) -> dict[str, float]:
    """``{"bleu1": ..., "bleu4": ...}``; ``references[i]`` holds every reference word list of hypothesis i.

    No smoothing: the standard corpus-level definition used in captioning papers.
    """
    if len(references) != len(hypotheses) or not hypotheses:
        raise ValueError(
            f"need one reference set per hypothesis, got {len(references)} and {len(hypotheses)}"
        )
    with warnings.catch_warnings():  # nltk warns on every zero n-gram count; a score of 0 says it already
        warnings.simplefilter("ignore", UserWarning)
        scores = corpus_bleu(references, hypotheses, weights=BLEU_WEIGHTS)
    return {f"bleu{n}": float(score) for n, score in enumerate(scores, start=1)}


class SentenceBleu:
    """Sentence-level BLEU-4 of a caption against one image's references, the self-critical reward's
    second part (``training.caption.scst``): clipped n-gram precisions smoothed by adding one to the
    counts of n > 1 (Lin and Och 2004, so that a caption without a matching 4-gram still ranks by its
    shorter ones), the brevity penalty against the closest reference length. Reference counts are
    gathered once per image; captions are token ids or words."""

    def __init__(self, references: Sequence[Sequence[Sequence[Hashable]]]) -> None:
        self._clip: list[dict[tuple, int]] = []
        self._lengths: list[list[int]] = []
        for refs in references:
            clip: dict[tuple, int] = {}
            for ref in refs:
                for per_n in ngrams(ref):
                    for gram, count in per_n.items():
                        clip[gram] = max(clip.get(gram, 0), count)
            self._clip.append(clip)
            self._lengths.append([len(ref) for ref in refs])

    def score(self, caption: Sequence[Hashable], image: int) -> float:
        """BLEU-4 of ``caption`` against the references of image ``image`` (0 for an empty caption)."""
        length = len(caption)
        if not length:
            return 0.0
        clip = self._clip[image]
        log_precision = 0.0
        for n, per_n in enumerate(ngrams(caption), start=1):
            matched = sum(min(count, clip.get(gram, 0)) for gram, count in per_n.items())
            total = max(length - n + 1, 0)
            smoothing = 0 if n == 1 else 1
            if matched + smoothing == 0:
                return 0.0
            log_precision += math.log((matched + smoothing) / (total + smoothing)) / 4
        closest = min(self._lengths[image], key=lambda ref: (abs(ref - length), ref))
        brevity = min(0.0, 1.0 - closest / length)
        return math.exp(log_precision + brevity)
