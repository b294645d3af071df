"""POST /v1/sentiment."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from ..deps import RegistryDep, SettingsDep
from ..limits import check_texts
from ..runtimes import SentimentRuntime
from ..schemas import SentimentRequest, SentimentResponse, SentimentResult
from .common import error_responses, resolve_runtime

router = APIRouter(prefix="/v1", tags=["tasks"])

# Requests up to this many characters are tokenized on the event loop (about 0.1 ms for a 90-character
# review on this project's 2-core test machine, no more than the hop to the thread pool); longer ones are
# tokenized in the pool, so that a 5000-character text (about 3 ms) never stalls other requests.
INLINE_TOKENIZE_CHARS = 512


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
    if sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:
        rows = runtime.tokenize(texts)
    else:
        rows = await run_in_threadpool(runtime.tokenize, texts)
    probabilities = await entry.item_batcher().infer(rows)
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
