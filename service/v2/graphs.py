"""Each ONNX graph of a version as a v2 model (``<name>.<graph>``: ``captioner.encoder``,
``pets-resnet18.model``), with the tensors its manifest declares, run straight through its session."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

from contract.manifest import Manifest

from ..errors import BadRequest
from ..registry import ModelVersion
from ..settings import Settings
from .base import Servable, Started, TensorMeta
from .tensors import MANIFEST_DATATYPES


class GraphModel(Servable):
    """One ONNX graph of a version, with the tensors its manifest declares."""

    platform = "onnxruntime_onnx"

    def __init__(
        self, name: str, entry: ModelVersion, manifest: Manifest, settings: Settings, key: str
    ) -> None:
        super().__init__(name, entry, manifest, settings)
        self.key = key
        self.graph = manifest.graphs[key]

    @property
    def inputs(self) -> list[TensorMeta]:
        return [TensorMeta(t.name, MANIFEST_DATATYPES[t.dtype], tuple(t.shape)) for t in self.graph.inputs]

    @property
    def outputs(self) -> list[TensorMeta]:
        return [TensorMeta(t.name, MANIFEST_DATATYPES[t.dtype], tuple(t.shape)) for t in self.graph.outputs]

    def first_axes(self) -> dict[str, str]:
        """The graph's own names of its inputs' first axes: a caption decoder that takes its features
        once per image has ``images`` there and ``batch`` (its rows) elsewhere. A fixed or unnamed first
        axis counts as the batch."""
        return self._first_axes

    @cached_property
    def _first_axes(self) -> dict[str, str]:  # read once per request (inputs checked, then run)
        session = self.runtime().sessions[self.key]
        return {
            t.name: t.shape[0] if t.shape and isinstance(t.shape[0], str) else "batch"
            for t in session.get_inputs()
        }

    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]) -> Started:
        runtime = self.runtime()
        axes = self.first_axes()
        rows = axes[self.graph.inputs[0].name]
        shared = [name for name, axis in axes.items() if axis != rows]  # not padded with the rows
        try:
            arrays = runtime.run(self.key, inputs, outputs, shared=shared)
        except (InvalidArgument, Fail) as exc:  # values the graph cannot take: token ids out of range, ...
            raise BadRequest(f"{self.graph.file} cannot run on these inputs: {exc}") from exc
        return Started.done(dict(zip(outputs, arrays, strict=True)))
