"""The runtime base class: one onnxruntime session per graph of a model version, numpy in and out, and
the batching queue that serves it."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from contract.manifest import GraphSpec, Manifest

from ..batching import BatchConfig, QueueWorker
from ..metrics import ModelMetrics
from ..providers import create_session, uses_gpu
from ..settings import Settings


class RuntimeLoadError(Exception):
    """A model version cannot be served; the message is the reason shown to operators."""


class Runtime(ABC):
    """Serves one model version. Subclasses implement the task: ``warmup``, ``batcher`` and their own
    ``preprocess``/``infer``/``postprocess`` steps; they never touch HTTP."""

    task: ClassVar[str]

    def __init__(self, manifest: Manifest, directory: Path, settings: Settings) -> None:
        self.manifest = manifest
        self.directory = directory
        self.settings = settings
        self.sessions: dict[str, ort.InferenceSession] = {}
        # per padded graph (``batch_padding``), a session per padded batch size (the first size it runs
        # at takes the graph's own session)
        self.sized_sessions: dict[str, dict[int, ort.InferenceSession]] = {}
        self._sizing = threading.Lock()

    def load(self) -> None:
        """Create a session per graph and check its tensors against the manifest."""
        for key, graph in self.manifest.graphs.items():
            try:
                session = create_session(self.directory / graph.file, self.settings)
            except Exception as exc:  # onnxruntime raises its own exception types for unloadable graphs
                raise RuntimeLoadError(f"{graph.file}: onnxruntime cannot load it: {exc}") from exc
            _check_tensors(graph, session)
            self.sessions[key] = session
            padding = self.settings.batch_padding
            if padding == "on" or (padding == "auto" and uses_gpu(session.get_providers())):
                self.sized_sessions[key] = {}
        _check_labels(self.manifest, self.sessions)

    @abstractmethod
    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run inference on dummy inputs at each batch size the model will see, so that no request pays
        for lazy initialisation (memory arenas, kernel choice, TensorRT engines)."""

    @abstractmethod
    def batcher(self, name: str, config: BatchConfig, metrics: ModelMetrics) -> QueueWorker[Any, Any]:
        """The queue (and its worker thread, started now) through which the service runs this model's
        requests together; the task's routes submit to it."""

    def providers(self) -> dict[str, list[str]]:
        """Per graph key, the execution providers its session actually got."""
        return {key: session.get_providers() for key, session in self.sessions.items()}

    def run(
        self, key: str, feeds: dict[str, np.ndarray], outputs: list[str], shared: Collection[str] = ()
    ) -> list[np.ndarray]:
        """Run one graph; returns the named outputs in order. For a padded graph (``batch_padding``), the
        batch is padded to the next power of two and the outputs keep only the real rows. Feeds named in
        ``shared`` are not rows of the batch (a caption decoder's per-image features, which the rows
        index): they are neither counted nor padded."""
        padded = key in self.sized_sessions  # else nothing to count: no dict built on an unpadded run
        batched = {name: value for name, value in feeds.items() if name not in shared} if padded else {}
        rows = batch_rows(batched)
        if not rows:
            return [np.asarray(value) for value in self.sessions[key].run(outputs, feeds)]
        size = padded_size(rows)
        if size != rows:
            feeds = {**feeds, **{name: pad_rows(value, size) for name, value in batched.items()}}
        result: list[Any] = self._sized_session(key, size).run(outputs, feeds)
        return [np.asarray(v)[:rows] if np.ndim(v) and len(v) == size else np.asarray(v) for v in result]

    def _sized_session(self, key: str, size: int) -> ort.InferenceSession:
        """The session that runs ``key`` at batch ``size`` and no other size. onnxruntime's CUDA
        convolutions set themselves up again whenever a session's input shape differs from its previous
        run's (measured on an H100: ~250 ms for pets-resnet18, against 2-3 ms for a run at the same
        shape), so each padded size gets a session of its own: made during warm-up, or at the first run
        of a size warm-up did not cover. Its providers are those the graph's own session actually got, so
        that a provider that failed there (TensorRT without its libraries) is not tried again per size."""
        sized = self.sized_sessions[key]
        if size not in sized:
            with self._sizing:
                if size not in sized:
                    first = self.sessions[key]
                    path = self.directory / self.manifest.graphs[key].file
                    settings = self.settings.model_copy(update={"providers": first.get_providers()})
                    sized[size] = first if not sized else create_session(path, settings)
        return sized[size]

    def close(self) -> None:
        """Release the sessions."""
        self.sessions.clear()
        self.sized_sessions.clear()


def batch_rows(feeds: dict[str, np.ndarray]) -> int | None:
    """The batch size of ``feeds``: the first axis they all share, or None (none, or no shared first
    axis: then nothing is padded)."""
    sizes = {value.shape[0] if np.ndim(value) else None for value in feeds.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def padded_size(rows: int) -> int:
    """The power of two a batch of ``rows`` is padded to."""
    return 1 << (rows - 1).bit_length()


def pad_rows(value: np.ndarray, size: int) -> np.ndarray:
    """``value`` with its last row repeated up to ``size`` rows (real inputs, so no padding value can
    upset a graph: a zero length, a blank image's statistics)."""
    return np.concatenate([value, np.repeat(value[-1:], size - len(value), axis=0)])


def _check_tensors(graph: GraphSpec, session: ort.InferenceSession) -> None:
    actual_inputs = {t.name for t in session.get_inputs()}
    actual_outputs = {t.name for t in session.get_outputs()}
    missing = [t.name for t in graph.inputs if t.name not in actual_inputs]
    missing += [t.name for t in graph.outputs if t.name not in actual_outputs]
    if missing:
        raise RuntimeLoadError(
            f"{graph.file}: tensors in the manifest but not in the graph: {', '.join(missing)}"
        )


def _check_labels(manifest: Manifest, sessions: dict[str, ort.InferenceSession]) -> None:
    """A classifier's labels name its graph's classes: as many labels as the first output has classes
    (when the graph fixes that number), or every request would fail."""
    if manifest.labels is None or "model" not in sessions:
        return
    output = sessions["model"].get_outputs()[0]
    classes = output.shape[-1] if output.shape else None
    if isinstance(classes, int) and classes != len(manifest.labels):
        raise RuntimeLoadError(
            f"the graph's output {output.name} has {classes} classes and the manifest {len(manifest.labels)} "
            "labels"
        )


def rank(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row of ``probabilities`` [N, classes], its ``k`` most probable (label, probability) pairs, most
    probable first (ties: the lower class index first)."""
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(labels[i], float(row[i])) for i in top] for row, top in zip(probabilities, order, strict=True)]
