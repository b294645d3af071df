"""Request and response models of the HTTP API (with OpenAPI examples)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ErrorDetail(BaseModel):
    """The content of every error response."""

    code: str = Field(examples=["image_too_large"], description="Stable machine-readable error code.")
    message: str = Field(examples=["image is 20000x20000 pixels, more than the limit of 40000000"])
    status: int = Field(examples=[413], description="The HTTP status, repeated.")


class ErrorBody(BaseModel):
    """``{"error": {...}}``: the one error shape of the service."""

    error: ErrorDetail


class Prediction(BaseModel):
    """A label and its probability."""

    label: str = Field(examples=["cat"])
    probability: float = Field(examples=[0.93])


class ImageClassification(BaseModel):
    """The top predictions for one uploaded image."""

    filename: str | None = Field(examples=["cat.jpg"])
    predictions: list[Prediction]


class ImageError(BaseModel):
    """An image of a multi-image request that could not be answered (the others are): its error, in the
    one error shape's content."""

    filename: str | None = Field(examples=["broken.jpg"])
    error: ErrorDetail = Field(
        examples=[{"code": "invalid_image", "message": "broken.jpg: the file is not an image", "status": 400}]
    )


class TextError(BaseModel):
    """A text of a multi-text request that could not be answered (the others are)."""

    error: ErrorDetail = Field(examples=[{"code": "empty_text", "message": "text 1 is empty", "status": 422}])


class ClassifyImageResponse(BaseModel):
    """Answer of ``POST /v1/classify-image``, one result per image in upload order: its predictions, or
    the error that kept it from being answered."""

    model: str = Field(examples=["pets-resnet18"])
    version: int = Field(examples=[1])
    results: list[ImageClassification | ImageError]


class SentimentRequest(BaseModel):
    """One text (``text``) or several (``texts``), not both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "A great film."}, {"texts": ["Loved it.", "Awful acting."]}]
        },
    )

    text: str | None = Field(None, description="One text.")
    texts: list[str] | None = Field(None, description="Several texts, answered in order.")
    model: str | None = Field(None, description="Model name, or name:version; default: the configured one.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SentimentRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' and 'texts'")
        return self

    def items(self) -> list[str]:
        """The texts of the request, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])


class SentimentResult(BaseModel):
    """The predicted label of one text, its probability, and every class's probability."""

    label: str = Field(examples=["positive"])
    probability: float = Field(examples=[0.97])
    probabilities: dict[str, float] = Field(examples=[{"negative": 0.03, "positive": 0.97}])
    truncated: bool = Field(
        examples=[False],
        description="Whether the text was longer than the model reads (its manifest's max_length tokens): "
        "then only its beginning was read.",
    )


class SentimentResponse(BaseModel):
    """Answer of ``POST /v1/sentiment``, one result per text, in order: its sentiment, or the error that
    kept it from being answered."""

    model: str = Field(examples=["sentiment-lstm"])
    version: int = Field(examples=[1])
    results: list[SentimentResult | TextError]


class Caption(BaseModel):
    """The caption of one image and its score (mean log-probability per token)."""

    filename: str | None = Field(examples=["dog.jpg"])
    caption: str = Field(examples=["a dog runs on the grass"])
    score: float = Field(examples=[-0.84])


class CaptionResponse(BaseModel):
    """Answer of ``POST /v1/caption``, one result per image in upload order: its caption, or the error
    that kept it from being answered."""

    model: str = Field(examples=["captioner"])
    version: int = Field(examples=[1])
    results: list[Caption | ImageError]


class TensorInfo(BaseModel):
    """A graph input or output, as the manifest declares it."""

    name: str
    dtype: str
    shape: list[int]


class GraphInfo(BaseModel):
    """One ONNX graph of a version: its tensors and the providers its session actually got."""

    file: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    providers: list[str] = Field(examples=[["CPUExecutionProvider"]])


class ModelInfo(BaseModel):
    """One model version and what became of it."""

    name: str = Field(examples=["pets-resnet18"])
    version: int = Field(examples=[1])
    task: str | None = Field(examples=["image-classification"])
    status: str = Field(examples=["ready"], description="loading, ready or failed")
    reason: str | None = Field(None, examples=[None], description="Why the version is not loaded.")
    serving: bool = Field(description="Whether this is the version served when a request names no version.")
    load_time_s: float | None = Field(examples=[0.41], description="Seconds to verify, load and warm up.")
    requested_providers: list[str] = Field(
        examples=[["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]]
    )
    unavailable_providers: dict[str, str] = Field(
        default_factory=dict,
        examples=[
            {
                "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so: libcublasLt.so.13: cannot open "
                "shared object file: No such file or directory; Require cuDNN 9.* and CUDA 13.*"
            }
        ],
        description="Requested providers that cannot be created in this process (the same for every "
        "model), each with onnxruntime's reason; the sessions do not ask for them.",
    )
    providers: list[str] = Field(
        examples=[["CPUExecutionProvider"]], description="Providers actually in use, over all graphs."
    )
    graphs: dict[str, GraphInfo] = Field(default_factory=dict)


class ModelsResponse(BaseModel):
    """Answer of ``GET /v1/models``: every version found in the repository."""

    models: list[ModelInfo]


class Health(BaseModel):
    """Answer of the health endpoints."""

    status: str = Field(examples=["ok"], description="ok, or not_ready")
    reasons: list[str] = Field(default_factory=list, description="Why the service is not ready.")
