"""Response bodies of the v2 protocol, for the OpenAPI documentation."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorV2(BaseModel):
    """Every v2 error: ``{"error": "<message>"}``."""

    error: str = Field(examples=["unknown model 'no-such-model'"])


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str = Field(examples=["modelserve"])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data", "model_repository"]])


class TensorMetadata(BaseModel):
    """An input or output of a model; -1 marks a dimension of any size."""

    name: str = Field(examples=["image"])
    datatype: str = Field(examples=["BYTES"], description="FP32, INT64 or BYTES")
    shape: list[int] = Field(examples=[[-1]])


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{version}]``."""

    name: str = Field(examples=["pets-resnet18"])
    versions: list[str] = Field(examples=[["1", "2"]], description="Versions that serve requests.")
    platform: str = Field(examples=["modelserve_image_classification", "onnxruntime_onnx"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class IndexEntry(BaseModel):
    """One model version in ``POST /v2/repository/index``."""

    name: str = Field(examples=["captioner.encoder"])
    version: str = Field(examples=["1"])
    state: str = Field(examples=["READY"], description="LOADING, READY or UNAVAILABLE")
    reason: str = Field(examples=[""], description="Why the version is unavailable.")
