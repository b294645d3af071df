"""CIDEr-D (Vedantam, Zitnick, Parikh 2015), the consensus reward of self-critical training.

A caption and each reference become tf-idf vectors of their 1- to 4-grams, the document frequencies
counted over the images of the reference corpus (an n-gram in every image's references weighs nothing).
Per n, the similarity to a reference is the cosine with the caption's counts clipped to the reference's
(the "-D": repeating a phrase earns nothing more), times a Gaussian penalty on the length difference
(sigma 6); the score is the mean over n and over the references, times 10. Captions are sequences of
token ids or words alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

MAX_N = 4
SIGMA = 6.0

Tokens = Sequence[Hashable]
Vector = dict[tuple, float]


def ngrams(tokens: Tokens, n_max: int = MAX_N) -> list[Counter]:
    """Counts of the 1..``n_max``-grams of ``tokens``, one Counter per n."""
    items = list(tokens)
    return [Counter(tuple(items[i : i + n]) for i in range(len(items) - n + 1)) for n in range(1, n_max + 1)]


class CiderD:
    """CIDEr-D against a fixed corpus: ``references[i]`` holds every reference of image i."""

    def __init__(self, references: Sequence[Sequence[Tokens]]) -> None:
        if not references:
            raise ValueError("CIDEr-D needs at least one image's references")
        counts = [[ngrams(ref) for ref in refs] for refs in references]
        frequency: Counter = Counter()  # images whose references hold the n-gram
        for image in counts:
            frequency.update({gram for ref in image for per_n in ref for gram in per_n})
        self._df = frequency
        self._log_images = math.log(float(len(references)))
        self._references = [
            [(*self._vectors(ref), len(tokens)) for ref, tokens in zip(image, refs, strict=True)]
            for image, refs in zip(counts, references, strict=True)
        ]

    def _vectors(self, counts: list[Counter]) -> tuple[list[Vector], list[float]]:
        """Per n, the tf-idf vector and its norm."""
        vectors, norms = [], []
        for per_n in counts:
            vector = {
                gram: tf * (self._log_images - math.log(max(1.0, float(self._df.get(gram, 0)))))
                for gram, tf in per_n.items()
            }
            vectors.append(vector)
            norms.append(math.sqrt(sum(v * v for v in vector.values())))
        return vectors, norms

    def score(self, caption: Tokens, image: int) -> float:
        """CIDEr-D of ``caption`` against the references of image ``image``."""
        vectors, norms = self._vectors(ngrams(caption))
        length = len(caption)
        total = 0.0
        references = self._references[image]
        for ref_vectors, ref_norms, ref_length in references:
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * SIGMA**2))
            for vector, norm, ref_vector, ref_norm in zip(
                vectors, norms, ref_vectors, ref_norms, strict=True
            ):
                if not norm or not ref_norm:
                    continue
                overlap = sum(
                    min(v, ref_vector[g]) * ref_vector[g] for g, v in vector.items() if g in ref_vector
                )
                total += penalty * overlap / (norm * ref_norm)
        return 10.0 * total / (MAX_N * len(references))
