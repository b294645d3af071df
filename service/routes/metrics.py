"""GET /metrics: Prometheus's text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Requests and latency per endpoint and status; per model: queue wait, compute time, batch sizes,
    queue depth, refusals, and its info labelled with the execution providers it actually got."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
