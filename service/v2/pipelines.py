"""Each task as a v2 model (``<name>``), BYTES in and BYTES/FP32 out, through the same runtime calls and
limits as the /v1 endpoints: ``image`` (encoded image files) -> ``labels`` and ``probabilities``, most
probable first (image classification), or -> ``caption`` and ``score`` (captioning); ``text`` (UTF-8) ->
``labels`` and ``probabilities`` (sentiment)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from contract.beam import Hypothesis
from contract.manifest import Manifest

from ..batching import Batcher
from ..errors import BadRequest
from ..limits import check_texts
from ..runtimes import CaptionerRuntime, ClassifierRuntime, SentimentRuntime
from ..runtimes.base import rank
from ..runtimes.caption_steps import CaptionBatcher
from ..runtimes.captioner import DEFAULT_BEAM_SIZE
from ..runtimes.sentiment import TextScores
from .base import Servable, Started, TensorMeta


def _text(values: np.ndarray) -> np.ndarray:
    """str -> UTF-8 bytes, as a BYTES tensor of the same shape."""
    encoded = np.empty(values.shape, dtype=object)
    for index, value in np.ndenumerate(values):
        encoded[index] = str(value).encode("utf-8")
    return encoded


def _ranked(ranked: list[list[tuple[str, float]]]) -> dict[str, np.ndarray]:
    """Per row, (label, probability) pairs most probable first -> ``labels`` and ``probabilities``."""
    return {
        "labels": _text(np.array([[label for label, _ in row] for row in ranked], dtype=object)),
        "probabilities": np.array([[p for _, p in row] for row in ranked], dtype=np.float32),
    }


def _ranked_rows(labels: list[str], rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A batcher's probability rows -> ``labels`` and ``probabilities``, every class, most probable first."""
    return _ranked(rank(np.stack(rows), labels, len(labels)))


def _ranked_scores(labels: list[str], rows: list[TextScores]) -> dict[str, np.ndarray]:
    """A sentiment batcher's outputs -> ``labels`` and ``probabilities``, every class, most probable first."""
    return _ranked_rows(labels, [row.probabilities for row in rows])


def _ranked_outputs(manifest: Manifest) -> list[TensorMeta]:
    classes = len(manifest.labels or [])
    return [TensorMeta("labels", "BYTES", (-1, classes)), TensorMeta("probabilities", "FP32", (-1, classes))]


def _int_parameter(parameters: dict[str, Any], key: str, default: int, high: int) -> int:
    value = parameters.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise BadRequest(f"parameter {key} must be an integer between 1 and {high}, got {value!r}")
    return value


class _ImagePipeline(Servable):
    """A task model whose one input is ``image``: encoded image files (base64 strings in JSON)."""

    batch_kind = "images"

    @property
    def inputs(self) -> list[TensorMeta]:
        return [TensorMeta("image", "BYTES", (-1,), base64_in_json=True)]


class ClassificationPipeline(_ImagePipeline):
    """``image`` (encoded files) -> ``labels``, ``probabilities`` of every class, most probable first."""

    platform = "modelserve_image_classification"

    @property
    def outputs(self) -> list[TensorMeta]:
        return _ranked_outputs(self.manifest)

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]) -> Started:
        runtime = self.task_runtime(ClassifierRuntime)
        pixels = self.image_pixels(inputs["image"], runtime.image_spec)
        ticket = self.entry.serving_batcher(Batcher).submit(pixels)
        return Started(ticket, partial(_ranked_rows, runtime.labels))


class SentimentPipeline(Servable):
    """``text`` (UTF-8) -> ``labels``, ``probabilities`` of every class, most probable first."""

    platform = "modelserve_sentiment"
    batch_kind = "texts"

    @property
    def inputs(self) -> list[TensorMeta]:
        return [TensorMeta("text", "BYTES", (-1,))]

    @property
    def outputs(self) -> list[TensorMeta]:
        return _ranked_outputs(self.manifest)

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]) -> Started:
        runtime = self.task_runtime(SentimentRuntime)
        texts = []
        for i, data in enumerate(inputs["text"]):
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BadRequest(f"text {i} is not UTF-8") from exc
        check_texts(texts, self.settings)
        ticket = self.entry.serving_batcher(Batcher).submit(texts)
        return Started(ticket, partial(_ranked_scores, runtime.labels))


class CaptioningPipeline(_ImagePipeline):
    """``image`` (encoded files) -> ``caption`` and its ``score`` (mean log-probability per token).
    Request parameters ``beam_size`` and ``max_length`` as in /v1/caption."""

    platform = "modelserve_image_captioning"

    @property
    def outputs(self) -> list[TensorMeta]:
        return [TensorMeta("caption", "BYTES", (-1,)), TensorMeta("score", "FP32", (-1,))]

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]) -> Started:
        runtime = self.task_runtime(CaptionerRuntime)
        beam_size = _int_parameter(parameters, "beam_size", DEFAULT_BEAM_SIZE, self.settings.max_beam_size)
        length = _int_parameter(
            parameters, "max_length", runtime.default_max_length(), self.settings.max_caption_length
        )
        pixels = np.stack(self.image_pixels(inputs["image"], runtime.image_spec))

        def captions(hypotheses: list[Hypothesis]) -> dict[str, np.ndarray]:
            return {
                "caption": _text(np.array([runtime.detokenize(h.tokens) for h in hypotheses], dtype=object)),
                "score": np.array([h.score for h in hypotheses], dtype=np.float32),
            }

        ticket = self.entry.serving_batcher(CaptionBatcher).submit(pixels, length, beam_size)
        return Started(ticket, captions)


PIPELINES: dict[str, type[Servable]] = {
    "image-classification": ClassificationPipeline,
    "sentiment": SentimentPipeline,
    "image-captioning": CaptioningPipeline,
}
