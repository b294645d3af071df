"""Corpus BLEU-1..4 with nltk (Papineni et al. 2002), over word lists."""

from __future__ import annotations

import warnings

from nltk.translate.bleu_score import corpus_bleu

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
