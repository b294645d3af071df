"""The models of the v2 protocol, over the registry's versions and their runtimes.

- ``<name>`` is the task as a pipeline, BYTES in and BYTES/FP32 out, through the same runtime calls and
  limits as the /v1 endpoints: ``image`` (encoded image files) -> ``labels`` and ``probabilities``, most
  probable first (image classification), or -> ``caption`` and ``score`` (captioning); ``text`` (UTF-8)
  -> ``labels`` and ``probabilities`` (sentiment).
- ``<name>.<graph>`` (``captioner.encoder``, ``pets-resnet18.model``) is one ONNX graph with the tensors
  its manifest declares, run straight through its onnxruntime session.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument
from PIL import Image

from ..errors import BadRequest, ModelNotFound, ModelNotReady
from ..limits import check_item_count, check_texts
from ..manifest import Manifest
from ..registry import ModelRegistry, ModelState, ModelVersion
from ..runtimes import CaptionerRuntime, ClassifierRuntime, Runtime, SentimentRuntime
from ..runtimes.base import rank
from ..runtimes.captioner import DEFAULT_BEAM_SIZE
from ..settings import Settings
from ..uploads import decode_named_image
from .tensors import MANIFEST_DATATYPES, InferenceRequest, InputTensor, to_numpy

GRAPH_SEPARATOR = "."  # model names never hold one (models/README.md), so `<name>.<graph>` is unambiguous
R = TypeVar("R", bound=Runtime)
_STATES = {ModelState.LOADING: "LOADING", ModelState.READY: "READY", ModelState.FAILED: "UNAVAILABLE"}


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
    def infer(
        self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """Run inference on checked inputs; returns at least the named outputs (blocking)."""

    @property
    def version(self) -> str:
        """The registry version this model is, as the protocol writes versions."""
        return str(self.entry.version)

    def ready(self) -> bool:
        """Whether the version is loaded and warmed up."""
        return self.entry.state is ModelState.READY and self.entry.runtime is not None

    def runtime(self) -> Runtime:
        """The version's runtime; 503 while it is not ready."""
        runtime = self.entry.runtime
        if self.entry.state is not ModelState.READY or runtime is None:
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
            checked[tensor.name] = (tensor, spec)
        missing = [name for name in specs if name not in checked]
        if missing:
            raise BadRequest(f"model '{self.name}' needs input(s) {', '.join(missing)}")
        batches = {name: tensor.shape[0] for name, (tensor, _) in checked.items()}
        if len(set(batches.values())) > 1:
            sizes = ", ".join(f"{name} {size}" for name, size in batches.items())
            raise BadRequest(f"the inputs disagree on the batch size (first dimension): {sizes}")
        check_item_count(next(iter(batches.values())), self.batch_kind, self.settings.max_batch_items)
        arrays = {}
        for name, (tensor, spec) in checked.items():
            array = to_numpy(tensor)
            if spec.base64_in_json and not tensor.binary:
                array = _base64_decoded(array, name)
            arrays[name] = array
        return arrays

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

    def decode_images(self, files: np.ndarray) -> list[Image.Image]:
        """Encoded image files -> images, with the /v1 uploads' checks (format, size, integrity)."""
        return [
            decode_named_image(f"image {i}", data, self.settings.max_image_pixels)
            for i, data in enumerate(files)
        ]


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


def _ranked_outputs(manifest: Manifest) -> list[TensorMeta]:
    classes = len(manifest.labels or [])
    return [TensorMeta("labels", "BYTES", (-1, classes)), TensorMeta("probabilities", "FP32", (-1, classes))]


def _int_parameter(parameters: dict[str, Any], key: str, default: int, high: int) -> int:
    value = parameters.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise BadRequest(f"parameter {key} must be an integer between 1 and {high}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------- pipelines


class ClassificationPipeline(Servable):
    """``image`` (encoded files) -> ``labels``, ``probabilities`` of every class, most probable first."""

    platform = "modelserve_image_classification"
    batch_kind = "images"

    @property
    def inputs(self) -> list[TensorMeta]:
        return [TensorMeta("image", "BYTES", (-1,), base64_in_json=True)]

    @property
    def outputs(self) -> list[TensorMeta]:
        return _ranked_outputs(self.manifest)

    def infer(
        self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        runtime = self.task_runtime(ClassifierRuntime)
        images = self.decode_images(inputs["image"])
        return _ranked(runtime.predict(images, top_k=len(runtime.labels)))


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

    def infer(
        self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        runtime = self.task_runtime(SentimentRuntime)
        texts = []
        for i, data in enumerate(inputs["text"]):
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise BadRequest(f"text {i} is not UTF-8") from exc
        check_texts(texts, self.settings)
        probabilities = runtime.predict(texts)
        return _ranked(rank(probabilities, runtime.labels, len(runtime.labels)))


class CaptioningPipeline(Servable):
    """``image`` (encoded files) -> ``caption`` and its ``score`` (mean log-probability per token).
    Request parameters ``beam_size`` and ``max_length`` as in /v1/caption."""

    platform = "modelserve_image_captioning"
    batch_kind = "images"

    @property
    def inputs(self) -> list[TensorMeta]:
        return [TensorMeta("image", "BYTES", (-1,), base64_in_json=True)]

    @property
    def outputs(self) -> list[TensorMeta]:
        return [TensorMeta("caption", "BYTES", (-1,)), TensorMeta("score", "FP32", (-1,))]

    def infer(
        self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        runtime = self.task_runtime(CaptionerRuntime)
        beam_size = _int_parameter(parameters, "beam_size", DEFAULT_BEAM_SIZE, self.settings.max_beam_size)
        length = _int_parameter(
            parameters, "max_length", runtime.default_max_length(), self.settings.max_caption_length
        )
        captions = runtime.predict(self.decode_images(inputs["image"]), length, beam_size)
        return {
            "caption": _text(np.array([text for text, _ in captions], dtype=object)),
            "score": np.array([score for _, score in captions], dtype=np.float32),
        }


PIPELINES: dict[str, type[Servable]] = {
    "image-classification": ClassificationPipeline,
    "sentiment": SentimentPipeline,
    "image-captioning": CaptioningPipeline,
}


# ------------------------------------------------------------------------------------------- graphs


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

    def infer(
        self, inputs: dict[str, np.ndarray], outputs: list[str], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        runtime = self.runtime()
        try:
            arrays = runtime.run(self.key, inputs, outputs)
        except (InvalidArgument, Fail) as exc:  # values the graph cannot take: token ids out of range, ...
            raise BadRequest(f"{self.graph.file} cannot run on these inputs: {exc}") from exc
        return dict(zip(outputs, arrays, strict=True))


# ---------------------------------------------------------------------------------------- catalogue


def model_names(manifest: Manifest) -> list[str]:
    """The v2 models of a version: its pipeline, then one per graph."""
    return [manifest.name, *(f"{manifest.name}{GRAPH_SEPARATOR}{key}" for key in manifest.graphs)]


def _describes(entry: ModelVersion, graph: str) -> bool:
    return entry.manifest is not None and (not graph or graph in entry.manifest.graphs)


def resolve(registry: ModelRegistry, settings: Settings, name: str, version: str | None) -> Servable:
    """The v2 model ``name`` (at ``version``, else the highest ready version, else the highest whose
    manifest was read). 404 for an unknown name or version; 503 when no version could be read."""
    model, _, graph = name.partition(GRAPH_SEPARATOR)
    entries = [v for v in registry.versions if v.name == model]
    if not entries:
        raise ModelNotFound(f"unknown model '{name}'")
    if version is not None:
        entries = [v for v in entries if str(v.version) == version]
        if not entries:
            raise ModelNotFound(f"model '{name}' has no version {version}")
    described = [v for v in entries if _describes(v, graph)]
    if not described:
        if all(v.manifest is not None for v in entries):
            raise ModelNotFound(f"unknown model '{name}'")
        reasons = sorted({v.reason or "loading" for v in entries})
        raise ModelNotReady(f"model '{name}' is not ready: {'; '.join(reasons)}")
    ready = [v for v in described if v.state is ModelState.READY]
    entry = max(ready or described, key=lambda v: v.version)
    assert entry.manifest is not None
    if graph:
        return GraphModel(name, entry, entry.manifest, settings, graph)
    return PIPELINES[entry.manifest.task](name, entry, entry.manifest, settings)


def ready_versions(registry: ModelRegistry, name: str) -> list[str]:
    """The versions of a v2 model that serve requests, lowest first."""
    model, _, graph = name.partition(GRAPH_SEPARATOR)
    return [str(v.version) for v in registry.ready_versions() if v.name == model and _describes(v, graph)]


def repository_index(registry: ModelRegistry, ready_only: bool) -> list[dict[str, str]]:
    """The repository extension's index: every v2 model of every version, with its state and reason."""
    index = []
    for entry in registry.versions:
        if ready_only and entry.state is not ModelState.READY:
            continue
        names = model_names(entry.manifest) if entry.manifest is not None else [entry.name]
        state, reason = _STATES[entry.state], entry.reason or ""
        index += [{"name": n, "version": str(entry.version), "state": state, "reason": reason} for n in names]
    return sorted(index, key=lambda item: (item["name"], int(item["version"])))
