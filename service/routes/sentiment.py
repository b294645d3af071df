"""POST /v1/sentiment."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from ..deps import RegistryDep, SettingsDep
from ..errors import EmptyText, TextTooLong, TooManyItems
from ..runtimes import SentimentRuntime
from ..schemas import SentimentRequest, SentimentResponse, SentimentResult
from ..settings import Settings
from .common import error_responses, resolve_runtime

router = APIRouter(prefix="/v1", tags=["tasks"])


def _check_texts(texts: list[str], settings: Settings) -> None:
    if not texts:
        raise EmptyText("texts must not be empty")
    if len(texts) > settings.max_batch_items:
        raise TooManyItems(
            f"{len(texts)} texts in one request, more than the limit of {settings.max_batch_items}"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise EmptyText(f"text {i} is empty")
        if len(text) > settings.max_text_chars:
            raise TextTooLong(
                f"text {i} has {len(text)} characters, more than the limit of {settings.max_text_chars}"
            )


@router.post("/sentiment", response_model=SentimentResponse, responses=error_responses(404, 413, 422, 503))
async def sentiment(
    request: SentimentRequest, registry: RegistryDep, settings: SettingsDep
) -> SentimentResponse:
    """The sentiment of each text: its label and probability, and every class's probability."""
    texts = request.items()
    _check_texts(texts, settings)
    name, version, runtime = resolve_runtime(
        registry, SentimentRuntime, request.model, settings.default_sentiment_model
    )
    probabilities = await run_in_threadpool(runtime.predict, texts)
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
    return SentimentResponse(model=name, version=version, results=results)
