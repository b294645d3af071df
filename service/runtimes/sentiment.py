"""Sentiment: token ids [N, T] and lengths [N] -> class probabilities [N, classes]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.manifest import TextSpec
from contract.outputs import probabilities

from ..batching import BatchConfig, Batcher
from ..metrics import ModelMetrics
from ..preprocessing import TextEncoder, load_tokenizer
from .base import Runtime


@dataclass(frozen=True)
class TextScores:
    """One text's class probabilities, and whether it was cut to the model's window to be read."""

    probabilities: np.ndarray
    truncated: bool


class SentimentRuntime(Runtime):
    """Serves ``sentiment`` model versions."""

    task = "sentiment"

    def load(self) -> None:
        """Load the graph and the tokenizer."""
        super().load()
        self.encoder = TextEncoder(load_tokenizer(self.directory / self.text_spec.tokenizer), self.text_spec)

    @property
    def text_spec(self) -> TextSpec:
        """The manifest's text section."""
        assert self.manifest.text is not None
        return self.manifest.text

    @property
    def labels(self) -> list[str]:
        """Class names, index i names class i."""
        assert self.manifest.labels is not None
        return self.manifest.labels

    def infer(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Token ids and lengths -> probabilities [N, classes]."""
        feeds = {self.text_spec.input_ids: ids}
        if self.text_spec.lengths is not None:
            feeds[self.text_spec.lengths] = lengths
        output = self.manifest.graphs["model"].outputs[0].name
        (scores,) = self.run("model", feeds, [output])
        return probabilities(scores, self.manifest.output)

    def infer_items(self, texts: list[str]) -> list[TextScores]:
        """Texts from any number of requests -> one ``TextScores`` per text (what the batcher runs:
        tokenized together, in the batcher's thread rather than on the event loop, and padded to the
        longest; padding never changes a prediction)."""
        encoded = self.encoder.encode(texts)
        probabilities = self.infer(encoded.ids, encoded.lengths)
        return [TextScores(row, cut) for row, cut in zip(probabilities, encoded.truncated, strict=True)]

    def batcher(self, name: str, config: BatchConfig, metrics: ModelMetrics) -> Batcher[str, TextScores]:
        """Concurrent requests' texts run together through ``infer_items``."""
        return Batcher(name, self.infer_items, config, metrics)

    def predict(self, texts: list[str]) -> np.ndarray:
        """Texts -> probabilities [N, classes]."""
        encoded = self.encoder.encode(texts)
        return self.infer(encoded.ids, encoded.lengths)

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Inference on a short text, then at each batch size on texts of the longest length."""
        self.predict(["warm up"])
        longest = " ".join(["warm"] * self.text_spec.max_length)  # max_length tokens, after truncation
        for size in batch_sizes:
            self.infer_items([longest] * size)
