"""The runtime base class: one onnxruntime session per graph of a model version, numpy in and out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from ..manifest import GraphSpec, Manifest
from ..providers import create_session
from ..settings import Settings


class RuntimeLoadError(Exception):
    """A model version cannot be served; the message is the reason shown to operators."""


class Runtime(ABC):
    """Serves one model version. Subclasses implement the task: ``warmup`` and their own
    ``preprocess``/``infer``/``postprocess`` steps; they never touch HTTP."""

    task: ClassVar[str]

    def __init__(self, manifest: Manifest, directory: Path, settings: Settings) -> None:
        self.manifest = manifest
        self.directory = directory
        self.settings = settings
        self.sessions: dict[str, ort.InferenceSession] = {}

    def load(self) -> None:
        """Create a session per graph and check its tensors against the manifest."""
        for key, graph in self.manifest.graphs.items():
            try:
                session = create_session(self.directory / graph.file, self.settings)
            except Exception as exc:  # onnxruntime raises its own exception types for unloadable graphs
                raise RuntimeLoadError(f"{graph.file}: onnxruntime cannot load it: {exc}") from exc
            _check_tensors(graph, session)
            self.sessions[key] = session

    @abstractmethod
    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run inference on dummy inputs at each batch size the model will see, so that no request pays
        for lazy initialisation (memory arenas, kernel choice, TensorRT engines)."""

    def providers(self) -> dict[str, list[str]]:
        """Per graph key, the execution providers its session actually got."""
        return {key: session.get_providers() for key, session in self.sessions.items()}

    def run(self, key: str, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """Run one graph; returns the named outputs in order."""
        result: list[Any] = self.sessions[key].run(outputs, feeds)
        return [np.asarray(value) for value in result]

    def close(self) -> None:
        """Release the sessions."""
        self.sessions.clear()


def _check_tensors(graph: GraphSpec, session: ort.InferenceSession) -> None:
    actual_inputs = {t.name for t in session.get_inputs()}
    actual_outputs = {t.name for t in session.get_outputs()}
    missing = [t.name for t in graph.inputs if t.name not in actual_inputs]
    missing += [t.name for t in graph.outputs if t.name not in actual_outputs]
    if missing:
        raise RuntimeLoadError(
            f"{graph.file}: tensors in the manifest but not in the graph: {', '.join(missing)}"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def rank(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row of ``probabilities`` [N, classes], its ``k`` most probable (label, probability) pairs, most
    probable first (ties: the lower class index first)."""
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(labels[i], float(row[i])) for i in top] for row, top in zip(probabilities, order, strict=True)]
