"""POST /v1/sentiment."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import RegistryDep, SettingsDep
from ..limits import check_texts
from ..runtimes import SentimentRuntime
from ..schemas import SentimentRequest, SentimentResponse, SentimentResult
from .common import error_responses, resolve_runtime

router = APIRouter(prefix="/v1", tags=["tasks"])


@router.post("/sentiment", response_model=SentimentResponse, responses=error_responses(404, 413, 422, 503))
async def sentiment(
    request: SentimentRequest, registry: RegistryDep, settings: SettingsDep
) -> SentimentResponse:
    """The sentiment of each text: its label and probability, and every class's probability."""
    texts = request.items()
    check_texts(texts, settings)
    entry, runtime = resolve_runtime(
        registry, SentimentRuntime, request.model, settings.default_sentiment_model
    )
    # tokenized in the batcher's thread, with the texts of the other requests of its batch
    probabilities = await entry.item_batcher().infer(texts)
    results = []
    for row in probabilities:
        best = int(row.argmax())
        results.append(
            SentimentResult(
                label=runtime.labels[best],
                probability=float(row[best]),
                probabilities={label: float(p) for label, p in zip(runtime.labels, row, strict=True)},
            )
        )
    return SentimentResponse(model=entry.name, version=entry.version, results=results)
