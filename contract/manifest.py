"""``manifest.json`` (models/README.md): its pydantic model, the model-name rule, and writing a manifest
only once it validates, so that training refuses at export what the service would refuse at load."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .files import MANIFEST_NAME

MANIFEST_FORMAT = "modelserve.manifest/v1"  # the `format` field's one value (Manifest.format)
# A model's name, which is its directory's: lowercase letters, digits and '-', not starting with '-'.
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
Task = Literal["image-classification", "sentiment", "image-captioning"]
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_model_name(name: str) -> bool:
    """Whether ``name`` may name a model (and its directory in the repository)."""
    return _MODEL_NAME.fullmatch(name) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One graph input or output; ``-1`` marks a dynamic dimension."""

    name: str
    dtype: Literal["float32", "int64"]
    shape: list[int]


class GraphSpec(_Strict):
    """One ONNX file and its declared inputs and outputs."""

    file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class ImageSpec(_Strict):
    """Image preprocessing: decode, orient, convert, resize/crop, scale, invert, normalise, NCHW."""

    color_mode: Literal["RGB", "L"]
    resize: int | None = Field(gt=0)
    size: tuple[int, int] = Field(description="[height, width] fed to the network")
    mean: list[float]
    std: list[float]
    invert: bool = False

    @model_validator(mode="after")
    def _channels_match(self) -> ImageSpec:
        channels = 3 if self.color_mode == "RGB" else 1
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean and std need {channels} values for color_mode {self.color_mode}")
        if any(s <= 0 for s in self.std) or min(self.size) <= 0:
            raise ValueError("std and size must be positive")
        return self


class TextSpec(_Strict):
    """Tokenisation of the sentiment models."""

    tokenizer: str
    max_length: int = Field(gt=0)
    pad_id: int = Field(ge=0)
    unk_id: int = Field(ge=0)
    input_ids: str
    lengths: str | None


class CaptionEncoderNames(_Strict):
    """Tensor names of the caption encoder. ``projected``, when the encoder has it, is the attention's
    projection of the features, computed once per image instead of at every decoder step."""

    pixels: str
    features: str
    h0: str
    c0: str
    projected: str | None = None


class CaptionDecoderNames(_Strict):
    """Tensor names of the one-step caption decoder. With ``image_index``, the decoder takes the features
    (and ``projected``) once per image and, per row, the index of its image; without it, per row."""

    tokens: str
    h: str
    c: str
    features: str
    log_probs: str
    h_out: str
    c_out: str
    alpha: str
    projected: str | None = None
    image_index: str | None = None


class CaptionSpec(_Strict):
    """Decoding of the captioners."""

    tokenizer: str
    bos_id: int = Field(ge=0)
    eos_id: int = Field(ge=0)
    pad_id: int = Field(ge=0)
    unk_id: int = Field(ge=0)
    max_length: int = Field(gt=0)
    length_penalty: float = Field(
        1.0, ge=0, description="Beam search's final choice: summed log-probability / length ** this."
    )
    no_repeat_ngram_size: int = Field(
        0, ge=0, description="Beam search: no beam repeats one of its own n-grams of this size (0: off)."
    )
    encoder: CaptionEncoderNames
    decoder: CaptionDecoderNames

    @model_validator(mode="after")
    def _projection_both_sides(self) -> CaptionSpec:
        if (self.encoder.projected is None) != (self.decoder.projected is None):
            raise ValueError("caption: encoder and decoder name `projected` both or neither")
        return self


_TASK_PARTS: dict[str, tuple[set[str], set[str]]] = {
    # task: (graph keys, sections that must be present)
    "image-classification": ({"model"}, {"image", "labels", "output"}),
    "sentiment": ({"model"}, {"text", "labels", "output"}),
    "image-captioning": ({"encoder", "decoder"}, {"image", "caption"}),
}


class Manifest(BaseModel):
    """A model version's manifest. Unknown top-level fields are allowed (forward compatible);
    the sections a task needs must be present."""

    model_config = ConfigDict(frozen=True)

    format: Literal["modelserve.manifest/v1"]
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    version: int = Field(gt=0)
    task: Task
    description: str = ""
    created: str = ""
    files: dict[str, str]
    graphs: dict[str, GraphSpec]
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    image: ImageSpec | None = None
    text: TextSpec | None = None
    caption: CaptionSpec | None = None
    labels: list[str] | None = None
    output: Literal["logits", "probabilities"] | None = None

    @field_validator("files")
    @classmethod
    def _hex_digests(cls, files: dict[str, str]) -> dict[str, str]:
        for filename, digest in files.items():
            if Path(filename).name != filename or filename == MANIFEST_NAME:
                raise ValueError(f"files: {filename!r} is not a plain file name of the version directory")
            if not _SHA256.match(digest):
                raise ValueError(f"files: {filename!r} has no sha256 hex digest")
        return files

    @model_validator(mode="after")
    def _task_parts(self) -> Manifest:
        graph_keys, sections = _TASK_PARTS[self.task]
        if set(self.graphs) != graph_keys:
            raise ValueError(f"task {self.task} needs graphs {sorted(graph_keys)}, got {sorted(self.graphs)}")
        missing = sorted(s for s in sections if getattr(self, s) is None)
        if missing:
            raise ValueError(f"task {self.task} needs {', '.join(missing)}")
        referenced = [g.file for g in self.graphs.values()]
        referenced += [spec.tokenizer for spec in (self.text, self.caption) if spec is not None]
        unlisted = sorted(f for f in referenced if f not in self.files)
        if unlisted:
            raise ValueError(f"files referenced but not listed in files: {', '.join(unlisted)}")
        if self.labels is not None and not self.labels:
            raise ValueError("labels must not be empty")
        return self

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Parse and validate ``manifest.json``; raises ``ValueError`` (pydantic's too) or ``OSError``."""
        return cls.model_validate_json(path.read_bytes())


class InvalidManifest(ValueError):
    """A manifest that does not validate, with the first reason as its message."""


def first_error(error: ValidationError) -> str:
    """The first problem of a failed validation in one line: ``location: message``."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}" if location else first["msg"]


def validate_manifest(fields: Mapping[str, Any]) -> Manifest:
    """``fields`` (a manifest as JSON holds it) as a :class:`Manifest`; raises :class:`InvalidManifest`."""
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:
        raise InvalidManifest(f"invalid manifest: {first_error(exc)}") from exc


def write_manifest(version_dir: Path, fields: Mapping[str, Any]) -> Manifest:
    """Validate ``fields`` and write them as ``version_dir``'s manifest.json; return the typed manifest.

    The fields are written as given, not as the model dumps them: top-level fields the model does not
    know yet are kept, and numbers stay as they were (a count of samples stays an integer). Nothing is
    written when they do not validate (:class:`InvalidManifest`)."""
    manifest = validate_manifest(fields)
    (Path(version_dir) / MANIFEST_NAME).write_text(json.dumps(dict(fields), indent=2) + "\n")
    return manifest
