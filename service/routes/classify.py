"""POST /v1/classify-image."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile

from ..batching import Batcher
from ..deps import RegistryDep, SettingsDep
from ..runtimes import ClassifierRuntime
from ..runtimes.base import rank
from ..schemas import ClassifyImageResponse, ImageClassification, ImageError, Prediction
from ..uploads import read_images
from .common import (
    ModelInQuery,
    answerable,
    check_range,
    error_responses,
    in_slots,
    requested_model,
    resolve_runtime,
)

router = APIRouter(prefix="/v1", tags=["tasks"])


@router.post(
    "/classify-image",
    response_model=ClassifyImageResponse,
    responses=error_responses(400, 404, 413, 415, 422, 503),
)
async def classify_image(
    registry: RegistryDep,
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile], File(description="One or several images (JPEG, PNG, WebP, BMP, GIF).")
    ],
    model: Annotated[str | None, Form(description="Image classifier name, or name:version.")] = None,
    model_in_query: ModelInQuery = None,
    top_k: Annotated[int, Form(description="How many labels per image, most probable first.")] = 5,
) -> ClassifyImageResponse:
    """Classify each uploaded image; returns its ``top_k`` labels with their probabilities. An image that
    cannot be read gets its error in its own slot, and the others are answered (200); when none can be,
    the request fails with the first one's error."""
    check_range("top_k", top_k, 1, settings.max_top_k)
    entry, runtime = resolve_runtime(
        registry, ClassifierRuntime, requested_model(model, model_in_query), settings.default_image_classifier
    )
    outcomes = await read_images(files, settings, runtime.image_spec)
    probabilities = await entry.serving_batcher(Batcher).infer(answerable(outcomes))
    results = in_slots(
        outcomes,
        rank(np.stack(probabilities), runtime.labels, top_k),
        lambda i, ranked: ImageClassification(
            filename=files[i].filename,
            predictions=[Prediction(label=label, probability=p) for label, p in ranked],
        ),
        lambda i, error: ImageError(filename=files[i].filename, error=error),
    )
    return ClassifyImageResponse(model=entry.name, version=entry.version, results=results)
