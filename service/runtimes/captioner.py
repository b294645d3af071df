"""Image captioning: an encoder graph and a one-step decoder graph, decoded by beam search."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..manifest import CaptionSpec, ImageSpec
from ..preprocessing import image_batch, load_tokenizer
from .base import Runtime
from .beam import Hypothesis, beam_search

DEFAULT_BEAM_SIZE = 3  # when a request does not say


class CaptionerRuntime(Runtime):
    """Serves ``image-captioning`` model versions."""

    task = "image-captioning"

    def load(self) -> None:
        """Load both graphs and the tokenizer."""
        super().load()
        self.tokenizer = load_tokenizer(self.directory / self.spec.tokenizer)

    @property
    def spec(self) -> CaptionSpec:
        """The manifest's caption section."""
        assert self.manifest.caption is not None
        return self.manifest.caption

    @property
    def image_spec(self) -> ImageSpec:
        """The manifest's image preprocessing."""
        assert self.manifest.image is not None
        return self.manifest.image

    def default_max_length(self) -> int:
        """Most tokens per caption when a request does not say: the manifest's, capped by the settings."""
        return min(self.spec.max_length, self.settings.max_caption_length)

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        """Decoded images -> the encoder's input batch."""
        return image_batch(images, self.image_spec)

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels -> (features, h0, c0)."""
        names = self.spec.encoder
        features, h0, c0 = self.run("encoder", {names.pixels: pixels}, [names.features, names.h0, names.c0])
        return features, h0, c0

    def infer(self, pixels: np.ndarray, max_length: int, beam_size: int) -> list[Hypothesis]:
        """Pixels -> the best token sequence per image and its score."""
        features, h0, c0 = self.encode(pixels)
        names = self.spec.decoder

        def step(
            tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            feeds = {names.tokens: tokens, names.h: h, names.c: c, names.features: features[images]}
            log_probs, h_out, c_out = self.run("decoder", feeds, [names.log_probs, names.h_out, names.c_out])
            return log_probs, h_out, c_out

        return beam_search(
            step,
            h0,
            c0,
            bos_id=self.spec.bos_id,
            eos_id=self.spec.eos_id,
            max_length=max_length,
            beam_size=beam_size,
        )

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids -> text, without the special tokens."""
        special = {self.spec.bos_id, self.spec.eos_id, self.spec.pad_id, self.spec.unk_id}
        return str(self.tokenizer.decode([t for t in tokens if t not in special]))

    def predict(self, images: list[Image.Image], max_length: int, beam_size: int) -> list[tuple[str, float]]:
        """Per image, (caption, score)."""
        hypotheses = self.infer(self.preprocess(images), max_length, beam_size)
        return [(self.detokenize(h.tokens), h.score) for h in hypotheses]

    def warmup(self) -> None:
        """Decode a few steps for a blank image."""
        height, width = self.image_spec.size
        self.predict([Image.new(self.image_spec.color_mode, (width, height))], max_length=2, beam_size=1)
