"""One batch task per runtime: what an input item becomes before inference (or the error that keeps it
from being answered), how a batch of them is predicted, and the columns it fills. The same calls as the
service's: ``named_pixels`` and ``check_text`` (its limits and messages), the runtimes' inference."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from ..errors import InvalidInput, ServiceError
from ..limits import check_text, named_pixels
from ..runtimes import CaptionerRuntime, ClassifierRuntime, Runtime, SentimentRuntime
from ..runtimes.base import rank
from ..settings import Settings
from .inputs import Item

logger = logging.getLogger(__name__)


class UnreadableFile(ServiceError):
    """An input file that cannot be read (permissions, vanished since the listing, an I/O error)."""

    status_code = 400
    code = "unreadable_file"


@dataclass(frozen=True)
class Options:
    """What a run asks of every item: ``top_k`` labels (classification); ``beam_size`` and
    ``max_length`` (captioning; None: the model's)."""

    top_k: int = 5
    beam_size: int = 3
    max_length: int | None = None


Row = dict[str, Any]

# every row: its input's id, the model version that answered it and, for an input it could not answer,
# the error (the same code and message as the service's answer to that input)
COMMON_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("version", pa.int64(), nullable=False),
]
ERROR_FIELD = pa.field("error", pa.struct([("code", pa.string()), ("message", pa.string())]))


class BatchTask(ABC):
    """A task of the batch command over one loaded model version."""

    inputs: ClassVar[str]  # "images" or "texts"
    fields: ClassVar[list[pa.Field]]  # the prediction's columns, null on an error row
    # batches per window: the items of a window are grouped by cost (sort_key) before they are batched
    window_batches: ClassVar[int] = 1

    def __init__(self, runtime: Runtime, settings: Settings, options: Options) -> None:
        self.runtime = runtime
        self.settings = settings
        self.options = options

    @classmethod
    def schema(cls) -> pa.Schema:
        """The output table's schema."""
        return pa.schema([*COMMON_FIELDS, *cls.fields, ERROR_FIELD])

    @abstractmethod
    def prepare(self, item: Item) -> Any:
        """An item -> what ``predict`` takes (decoded pixels, a checked text); raises ``ServiceError``
        for an item that cannot be answered. Runs in decoding threads."""

    @abstractmethod
    def predict(self, prepared: list[Any]) -> list[Row]:
        """Prepared items -> their prediction columns, in order."""

    def sort_key(self, prepared: Any) -> int:
        """An item's cost, by which the items of a window are grouped into batches (alike in cost, less
        padding); 0 for items that all cost the same."""
        return 0

    def rows(self, items: list[Item], outcomes: list[Any], batch_size: int) -> list[Row]:
        """One output row per item, in the order of ``items``: its prediction, or its error. The items
        that can be answered are predicted ``batch_size`` at a time, grouped by ``sort_key``; a batch whose
        inference fails is run again item by item, so that only the item that fails it is an error row."""
        good = sorted(
            (i for i, outcome in enumerate(outcomes) if not isinstance(outcome, ServiceError)),
            key=lambda i: self.sort_key(outcomes[i]),
        )
        predicted: dict[int, Row | ServiceError] = {}
        for start in range(0, len(good), batch_size):
            batch = good[start : start + batch_size]
            answers = self._predict_or_split([outcomes[i] for i in batch])
            predicted.update(zip(batch, answers, strict=True))
        name, version = self.runtime.manifest.name, self.runtime.manifest.version
        empty = dict.fromkeys(field.name for field in self.fields)
        rows = []
        for i, item in enumerate(items):
            result = predicted.get(i, outcomes[i])
            row: Row = {"id": item.id, "model": name, "version": version, **empty, "error": None}
            if isinstance(result, ServiceError):
                row["error"] = {"code": result.code, "message": result.message}
            else:
                row.update(result)
            rows.append(row)
        return rows

    def _predict_or_split(self, prepared: list[Any]) -> list[Row | ServiceError]:
        try:
            return list(self.predict(prepared))
        except Exception as exc:
            if len(prepared) == 1:
                logger.exception("inference failed on one item")
                return [ServiceError(f"inference failed: {type(exc).__name__}: {exc}")]
            return [answer for one in prepared for answer in self._predict_or_split([one])]


class _ImageTask(BatchTask):
    inputs = "images"

    def prepare(self, item: Item) -> np.ndarray:
        assert item.path is not None
        try:
            with open(item.path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise UnreadableFile(f"{item.id}: cannot read the file: {exc.strerror or exc}") from exc
        assert isinstance(self.runtime, ClassifierRuntime | CaptionerRuntime)
        return named_pixels(item.id, data, self.settings, self.runtime.image_spec)


class ClassifyTask(_ImageTask):
    """Image classification: the ``top_k`` labels, most probable first, and their probabilities."""

    fields: ClassVar[list[pa.Field]] = [
        pa.field("labels", pa.list_(pa.string())),
        pa.field("probabilities", pa.list_(pa.float64())),
    ]

    def predict(self, prepared: list[np.ndarray]) -> list[Row]:
        runtime = self.runtime
        assert isinstance(runtime, ClassifierRuntime)
        ranked = rank(runtime.infer(np.stack(prepared)), runtime.labels, self.options.top_k)
        return [
            {"labels": [label for label, _ in row], "probabilities": [p for _, p in row]} for row in ranked
        ]


class CaptionTask(_ImageTask):
    """Image captioning: the caption and its score (mean log-probability per token)."""

    fields: ClassVar[list[pa.Field]] = [pa.field("caption", pa.string()), pa.field("score", pa.float64())]

    def predict(self, prepared: list[np.ndarray]) -> list[Row]:
        runtime = self.runtime
        assert isinstance(runtime, CaptionerRuntime)
        length = self.options.max_length or runtime.default_max_length()
        hypotheses = runtime.infer(np.stack(prepared), length, self.options.beam_size)
        return [{"caption": runtime.detokenize(h.tokens), "score": float(h.score)} for h in hypotheses]


class SentimentTask(BatchTask):
    """Sentiment: the label, its probability, and whether the text was cut to the model's window."""

    inputs = "texts"
    fields: ClassVar[list[pa.Field]] = [
        pa.field("label", pa.string()),
        pa.field("probability", pa.float64()),
        pa.field("truncated", pa.bool_()),
    ]

    # texts are small and vary in length: a window of 32 batches sorted by length pads ~1.4x less (IMDB)
    window_batches = 32

    def sort_key(self, prepared: str) -> int:
        return len(prepared)  # characters, for tokens: the graph runs to the longest text of its batch

    def prepare(self, item: Item) -> str:
        if item.text is None:
            raise InvalidInput(item.problem or f"text {item.index} is empty (null)")
        check_text(item.index, item.text, self.settings.max_text_chars)
        return item.text

    def predict(self, prepared: list[str]) -> list[Row]:
        runtime = self.runtime
        assert isinstance(runtime, SentimentRuntime)
        rows = []
        for scores in runtime.infer_items(prepared):
            best = int(scores.probabilities.argmax())
            rows.append(
                {
                    "label": runtime.labels[best],
                    "probability": float(scores.probabilities[best]),
                    "truncated": scores.truncated,
                }
            )
        return rows


TASKS: dict[str, type[BatchTask]] = {
    ClassifierRuntime.task: ClassifyTask,
    SentimentRuntime.task: SentimentTask,
    CaptionerRuntime.task: CaptionTask,
}
