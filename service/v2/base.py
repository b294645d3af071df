"""A model as the v2 protocol sees it: its tensors, checking a request's inputs against them, and
inference numpy in, numpy out, over one registry version."""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from contract.manifest import ImageSpec, Manifest

from ..batching import Ticket
from ..errors import BadRequest, ModelNotReady, TensorTooLarge
from ..limits import check_item_count, named_pixels
from ..registry import ModelState, ModelVersion
from ..runtimes import Runtime
from ..settings import Settings
from .tensors import InferenceRequest, InputTensor, to_numpy

R = TypeVar("R", bound=Runtime)


@dataclass(frozen=True)
class Started:
    """Inference under way: ``future`` (a batcher's), and ``finish``, which turns its result into the
    outputs (at least those named)."""

    future: Ticket[Any]
    finish: Callable[[Any], dict[str, np.ndarray]]

    @classmethod
    def done(cls, outputs: dict[str, np.ndarray]) -> Started:
        """Inference that is already over (a graph model runs its graph when started)."""
        future: Ticket[Any] = Ticket()
        future.set_result(outputs)
        return cls(future, lambda result: dict(result))


@dataclass(frozen=True)
class TensorMeta:
    """An input or output of a v2 model; -1 in ``shape`` is a dimension of any size, the first is the
    batch. ``base64_in_json``: an input of files, raw with the binary extension, base64 in JSON (whose
    strings hold text)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    base64_in_json: bool = False

    def metadata(self) -> dict[str, Any]:
        """The protocol's ``$metadata_tensor``."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class Servable(ABC):
    """One v2 model of one registry version: its tensors, and inference numpy in, numpy out."""

    platform: ClassVar[str]
    batch_kind: ClassVar[str] = "items"  # what the batch dimension counts, for the max_batch_items error

    def __init__(self, name: str, entry: ModelVersion, manifest: Manifest, settings: Settings) -> None:
        self.name = name
        self.entry = entry
        self.manifest = manifest
        self.settings = settings

    @property
    @abstractmethod
    def inputs(self) -> list[TensorMeta]:
        """The inputs, all required."""

    @property
    @abstractmethod
    def outputs(self) -> list[TensorMeta]:
        """The outputs, all returned unless a request names some."""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]) -> Started:
        """Start inference on checked inputs (in a worker thread: it may decode images or run a graph);
        what it returns finishes it once its future is done, and the caller waits for that future
        without holding a thread."""

    def first_axes(self) -> dict[str, str]:
        """Per input, the name of its first axis: inputs whose first axes share a name must agree on its
        size. Here every input's is the batch."""
        return {t.name: "batch" for t in self.inputs}

    @property
    def version(self) -> str:
        """The registry version this model is, as the protocol writes versions."""
        return str(self.entry.version)

    def ready(self) -> bool:
        """Whether the version is loaded and warmed up."""
        return self.entry.state is ModelState.READY and self.entry.runtime is not None

    def runtime(self) -> Runtime:
        """The version's runtime; 503 while it is not ready. A version retired a moment ago keeps its
        runtime for ``retire_grace_s``: a request that resolved it just before is still answered."""
        runtime = self.entry.runtime
        if self.entry.state not in (ModelState.READY, ModelState.UNLOADED) or runtime is None:
            reason = self.entry.reason or "loading"
            raise ModelNotReady(f"model '{self.name}' version {self.version} is not ready: {reason}")
        return runtime

    def task_runtime(self, kind: type[R]) -> R:
        """The version's runtime, which serves the task of ``kind``."""
        runtime = self.runtime()
        assert isinstance(runtime, kind), f"{self.name} has a {type(runtime).__name__}"
        return runtime

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The protocol's ``$metadata_model_response``."""
        return {
            "name": self.name,
            "versions": versions,
            "platform": self.platform,
            "inputs": [t.metadata() for t in self.inputs],
            "outputs": [t.metadata() for t in self.outputs],
        }

    def read_inputs(self, given: list[InputTensor]) -> dict[str, np.ndarray]:
        """Check the request's inputs against the model's (names, datatypes, shapes, batch size within
        ``max_batch_items``) and read them into arrays."""
        specs = {t.name: t for t in self.inputs}
        checked: dict[str, tuple[InputTensor, TensorMeta]] = {}
        for tensor in given:
            spec = specs.get(tensor.name)
            if spec is None:
                raise BadRequest(
                    f"model '{self.name}' has no input '{tensor.name}'; its inputs: {', '.join(specs)}"
                )
            if tensor.name in checked:
                raise BadRequest(f"input '{tensor.name}' is given twice")
            _check_tensor(tensor, spec, self.name)
            self._check_free_axes(tensor, spec)
            checked[tensor.name] = (tensor, spec)
        missing = [name for name in specs if name not in checked]
        if missing:
            raise BadRequest(f"model '{self.name}' needs input(s) {', '.join(missing)}")
        axes = self.first_axes()
        batches = {name: tensor.shape[0] for name, (tensor, _) in checked.items()}
        for axis in dict.fromkeys(axes.values()):
            group = {name: size for name, size in batches.items() if axes[name] == axis}
            if len(set(group.values())) > 1:
                sizes = ", ".join(f"{name} {size}" for name, size in group.items())
                raise BadRequest(f"the inputs disagree on the batch size (first dimension, {axis}): {sizes}")
        check_item_count(max(batches.values()), self.batch_kind, self.settings.max_batch_items)
        arrays = {}
        for name, (tensor, spec) in checked.items():
            array = to_numpy(tensor)
            if spec.base64_in_json and not tensor.binary:
                array = _base64_decoded(array, name)
            arrays[name] = array
        return arrays

    def _check_free_axes(self, tensor: InputTensor, spec: TensorMeta) -> None:
        """A free axis after the first (a token sequence) costs compute and memory in proportion (an LSTM
        over a million tokens: 40 s and 5 GB), so it is held to ``max_axis_size``."""
        limit = self.settings.max_axis_size
        for axis, (size, wanted) in enumerate(zip(tensor.shape, spec.shape, strict=True)):
            if axis and wanted == -1 and size > limit:
                raise TensorTooLarge(
                    f"input '{tensor.name}' has {size} along axis {axis}, more than the limit of {limit} "
                    "(max_axis_size)"
                )

    def select_outputs(self, request: InferenceRequest) -> list[tuple[TensorMeta, bool]]:
        """The outputs to return, each with whether it goes as binary data."""
        if request.outputs is None:
            return [(spec, request.binary_outputs) for spec in self.outputs]
        specs = {t.name: t for t in self.outputs}
        chosen: dict[str, tuple[TensorMeta, bool]] = {}
        for wanted in request.outputs:
            if wanted.name not in specs:
                raise BadRequest(
                    f"model '{self.name}' has no output '{wanted.name}'; its outputs: {', '.join(specs)}"
                )
            if wanted.name in chosen:
                raise BadRequest(f"output '{wanted.name}' is requested twice")
            chosen[wanted.name] = (specs[wanted.name], wanted.binary)
        return list(chosen.values())

    def image_pixels(self, files: np.ndarray, spec: ImageSpec) -> list[np.ndarray]:
        """Encoded image files -> preprocessed arrays [C, H, W] for ``spec``, with the /v1 uploads'
        checks (format, size, integrity)."""
        return [named_pixels(f"image {i}", data, self.settings, spec) for i, data in enumerate(files)]


def _check_tensor(tensor: InputTensor, spec: TensorMeta, model: str) -> None:
    if tensor.datatype != spec.datatype:
        raise BadRequest(
            f"input '{tensor.name}' has datatype {tensor.datatype}; model '{model}' expects {spec.datatype}"
        )
    fits = len(tensor.shape) == len(spec.shape) and all(
        size > 0 and want in (-1, size) for size, want in zip(tensor.shape, spec.shape, strict=True)
    )
    if not fits:
        raise BadRequest(
            f"input '{tensor.name}' has shape {list(tensor.shape)}; model '{model}' expects "
            f"{list(spec.shape)} (-1: any size from 1)"
        )


def _base64_decoded(array: np.ndarray, name: str) -> np.ndarray:
    decoded = np.empty(array.shape, dtype=object)
    for index, item in np.ndenumerate(array):
        try:
            decoded[index] = base64.b64decode(item, validate=True)
        except binascii.Error as exc:
            raise BadRequest(
                f"input '{name}' element {index[0]} is not base64; in JSON, send each file base64-encoded"
            ) from exc
    return decoded
