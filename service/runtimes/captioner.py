"""Image captioning: an encoder graph and a one-step decoder graph, decoded by beam search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from contract.beam import BeamSearch, Hypothesis, banned_tokens
from contract.decoding import decoder_feeds, decoder_step_outputs, encoder_outputs
from contract.manifest import CaptionSpec, ImageSpec

from ..batching import BatchConfig
from ..metrics import ModelMetrics
from ..preprocessing import image_batch, load_tokenizer
from .base import Runtime, RuntimeLoadError
from .caption_steps import CaptionBatcher, ImageContext

DEFAULT_BEAM_SIZE = 3  # when a request does not say


class CaptionerRuntime(Runtime):
    """Serves ``image-captioning`` model versions."""

    task = "image-captioning"

    def load(self) -> None:
        """Load both graphs and the tokenizer."""
        super().load()
        self.tokenizer = load_tokenizer(self.directory / self.spec.tokenizer)
        log_probs = next(
            t for t in self.sessions["decoder"].get_outputs() if t.name == self.spec.decoder.log_probs
        )
        words = log_probs.shape[-1] if log_probs.shape else None
        if isinstance(words, int) and words != self.tokenizer.get_vocab_size():
            raise RuntimeLoadError(
                f"the decoder's {log_probs.name} scores {words} tokens and the tokenizer has "
                f"{self.tokenizer.get_vocab_size()}"
            )

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

    def batcher(self, name: str, config: BatchConfig, metrics: ModelMetrics) -> CaptionBatcher:
        """Concurrent requests' captions decoded together, one decoder run per step (``caption_steps``)."""
        return CaptionBatcher(name, self, config, metrics)

    def preprocess(self, images: list[Image.Image]) -> np.ndarray:
        """Decoded images -> the encoder's input batch."""
        return image_batch(images, self.image_spec)

    def encode(self, pixels: np.ndarray) -> tuple[ImageContext, np.ndarray, np.ndarray]:
        """Pixels -> (what the decoder attends to, per image; h0; c0)."""
        names = self.spec.encoder
        features, h0, c0, *projected = self.run("encoder", {names.pixels: pixels}, encoder_outputs(names))
        return ImageContext(features, projected[0] if projected else None), h0, c0

    def step(
        self, tokens: np.ndarray, h: np.ndarray, c: np.ndarray, image_index: np.ndarray, context: ImageContext
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder step for rows of (previous token, state, index of their image in ``context``) ->
        (log_probs, h_out, c_out). A decoder with ``image_index`` takes the context once per image and
        the index per row; an older one, the context's rows gathered per row."""
        names = self.spec.decoder
        feeds, shared = decoder_feeds(names, tokens, h, c, image_index, context.features, context.projected)
        log_probs, h_out, c_out = self.run("decoder", feeds, decoder_step_outputs(names), shared=shared)
        return log_probs, h_out, c_out

    def infer(self, pixels: np.ndarray, max_length: int, beam_size: int) -> list[Hypothesis]:
        """Pixels -> the best token sequence per image and its score (one request alone; the service
        decodes many requests together: ``caption_steps``)."""
        context, h0, c0 = self.encode(pixels)

        def step(
            tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return self.step(tokens, h, c, images, context)

        return self.new_search(h0, c0, max_length, beam_size).run(step)

    def new_search(self, h0: np.ndarray, c0: np.ndarray, max_length: int, beam_size: int) -> BeamSearch:
        """A beam search from the encoder's initial states, decoding as the manifest says."""
        return BeamSearch(
            h0,
            c0,
            bos_id=self.spec.bos_id,
            eos_id=self.spec.eos_id,
            max_length=max_length,
            beam_size=beam_size,
            length_penalty=self.spec.length_penalty,
            no_repeat_ngram=self.spec.no_repeat_ngram_size,
            banned=banned_tokens(bos_id=self.spec.bos_id, pad_id=self.spec.pad_id, unk_id=self.spec.unk_id),
        )

    def detokenize(self, tokens: list[int]) -> str:
        """Token ids -> text, without the special tokens."""
        special = {self.spec.bos_id, self.spec.eos_id, self.spec.pad_id, self.spec.unk_id}
        return str(self.tokenizer.decode([t for t in tokens if t not in special]))

    def predict(self, images: list[Image.Image], max_length: int, beam_size: int) -> list[tuple[str, float]]:
        """Per image, (caption, score)."""
        hypotheses = self.infer(self.preprocess(images), max_length, beam_size)
        return [(self.detokenize(h.tokens), h.score) for h in hypotheses]

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Decode a few steps for blank images at each batch size, greedy and with the default beams."""
        height, width = self.image_spec.size
        blank = Image.new(self.image_spec.color_mode, (width, height))
        for size in batch_sizes:
            for beam_size in (1, DEFAULT_BEAM_SIZE):
                self.predict([blank] * size, max_length=2, beam_size=beam_size)
