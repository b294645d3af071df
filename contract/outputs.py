"""A classifier's answer from its graph's output, as the manifest's ``output`` says: ``"logits"`` get a
softmax, ``"probabilities"`` are the answer as they are. The service answers requests with it and training's
evaluate measures accuracy and calibration on it, so a card's ECE is that of the probabilities served."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def probabilities(scores: np.ndarray, output: str | None) -> np.ndarray:
    """The class probabilities [N, classes] of a graph whose manifest ``output`` is ``output``."""
    return softmax(scores) if output == "logits" else scores
