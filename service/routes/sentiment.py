"""POST /v1/sentiment."""

from __future__ import annotations

from fastapi import APIRouter

from ..batching import Batcher
from ..deps import RegistryDep, SettingsDep
from ..limits import text_outcomes
from ..runtimes import SentimentRuntime
from ..runtimes.sentiment import TextScores
from ..schemas import SentimentRequest, SentimentResponse, SentimentResult, TextError
from .common import ModelInQuery, answerable, error_responses, in_slots, requested_model, resolve_runtime

router = APIRouter(prefix="/v1", tags=["tasks"])


@router.post("/sentiment", response_model=SentimentResponse, responses=error_responses(404, 413, 422, 503))
async def sentiment(
    request: SentimentRequest,
    registry: RegistryDep,
    settings: SettingsDep,
    model_in_query: ModelInQuery = None,
) -> SentimentResponse:
    """The sentiment of each text: its label and probability, and every class's probability. A text
    longer than the model reads is read up to its window (``truncated``). A text that cannot be read
    (blank, say) gets its error in its own slot, and the others are answered (200); when none can be,
    the request fails with the first one's error."""
    outcomes = text_outcomes(request.items(), settings)
    texts = answerable(outcomes)
    entry, runtime = resolve_runtime(
        registry,
        SentimentRuntime,
        requested_model(request.model, model_in_query),
        settings.default_sentiment_model,
    )
    # tokenized in the batcher's thread, with the texts of the other requests of its batch
    scores: list[TextScores] = await entry.serving_batcher(Batcher).infer(texts)
    labels = runtime.labels

    def answered(_: int, score: TextScores) -> SentimentResult:
        best = int(score.probabilities.argmax())
        return SentimentResult(
            label=labels[best],
            probability=float(score.probabilities[best]),
            probabilities={label: float(p) for label, p in zip(labels, score.probabilities, strict=True)},
            truncated=score.truncated,
        )

    results = in_slots(outcomes, scores, answered, lambda _, error: TextError(error=error))
    return SentimentResponse(model=entry.name, version=entry.version, results=results)
