"""Image classification: pixels [N, C, H, W] -> class probabilities [N, classes]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from contract.manifest import ImageSpec
from contract.outputs import probabilities

from ..batching import BatchConfig, Batcher
from ..metrics import ModelMetrics
from ..preprocessing import image_batch
from .base import Runtime, rank


class ClassifierRuntime(Runtime):
    """Serves ``image-classification`` model versions."""

    task = "image-classification"

    @property
    def image_spec(self) -> ImageSpec:
        """The manifest's image preprocessing."""
        assert self.manifest.image is not None
        return self.manifest.image

    @property
    def labels(self) -> list[str]:
        """Class names, index i names class i."""
        assert self.manifest.labels is not None
        return self.manifest.labels

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        """Decoded images -> the network's input batch."""
        return image_batch(images, self.image_spec)

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        """Input batch -> probabilities [N, classes]."""
        graph = self.manifest.graphs["model"]
        (scores,) = self.run("model", {graph.inputs[0].name: pixels}, [graph.outputs[0].name])
        return probabilities(scores, self.manifest.output)

    def infer_items(self, items: list[np.ndarray]) -> np.ndarray:
        """Preprocessed images [C, H, W] of any number of requests -> probabilities, one row per image
        (what the batcher runs)."""
        return self.infer(np.stack(items))

    def batcher(
        self, name: str, config: BatchConfig, metrics: ModelMetrics
    ) -> Batcher[np.ndarray, np.ndarray]:
        """Concurrent requests' images run together through ``infer_items``."""
        return Batcher(name, self.infer_items, config, metrics)

    def predict(self, images: list[Image.Image], top_k: int) -> list[list[tuple[str, float]]]:
        """Per image, the ``top_k`` (label, probability) pairs, most probable first."""
        return rank(self.infer(self.preprocess(images)), self.labels, top_k)

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Inference on blank images at each batch size."""
        height, width = self.image_spec.size
        blank = Image.new(self.image_spec.color_mode, (width, height))
        for size in batch_sizes:
            self.predict([blank] * size, top_k=1)
