"""POST /v1/caption."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile

from ..deps import RegistryDep, SettingsDep
from ..runtimes import CaptionerRuntime
from ..runtimes.caption_steps import CaptionBatcher
from ..runtimes.captioner import DEFAULT_BEAM_SIZE
from ..schemas import Caption, CaptionResponse, ImageError
from ..uploads import read_images
from .common import (
    ModelInQuery,
    answer_unless_gone,
    answerable,
    check_range,
    error_responses,
    in_slots,
    requested_model,
    resolve_runtime,
)

router = APIRouter(prefix="/v1", tags=["tasks"])


@router.post(
    "/caption", response_model=CaptionResponse, responses=error_responses(400, 404, 413, 415, 422, 503)
)
async def caption(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile], File(description="One or several images (JPEG, PNG, WebP, BMP, GIF).")
    ],
    model: Annotated[str | None, Form(description="Captioner name, or name:version.")] = None,
    model_in_query: ModelInQuery = None,
    max_length: Annotated[
        int | None, Form(description="Most tokens per caption; default: the model's manifest.")
    ] = None,
    beam_size: Annotated[
        int, Form(description="Beams of the search; 1 is greedy decoding.")
    ] = DEFAULT_BEAM_SIZE,
) -> CaptionResponse:
    """Caption each uploaded image; returns the caption and its mean log-probability per token. Decoding
    is batched per step with the other requests in flight (service/runtimes/caption_steps.py); a request
    whose client goes away leaves it at the next step. An image that cannot be read gets its error in its
    own slot, and the others are answered (200); when none can be, the request fails with the first one's
    error."""
    check_range("beam_size", beam_size, 1, settings.max_beam_size)
    if max_length is not None:
        check_range("max_length", max_length, 1, settings.max_caption_length)
    entry, runtime = resolve_runtime(
        registry, CaptionerRuntime, requested_model(model, model_in_query), settings.default_captioner
    )
    length = max_length or runtime.default_max_length()
    outcomes = await read_images(files, settings, runtime.image_spec)
    ticket = entry.serving_batcher(CaptionBatcher).submit(np.stack(answerable(outcomes)), length, beam_size)
    hypotheses = await answer_unless_gone(request.receive, ticket)
    results = in_slots(
        outcomes,
        hypotheses,
        lambda i, h: Caption(filename=files[i].filename, caption=runtime.detokenize(h.tokens), score=h.score),
        lambda i, error: ImageError(filename=files[i].filename, error=error),
    )
    return CaptionResponse(model=entry.name, version=entry.version, results=results)
