"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import RegistryDep
from ..schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health)
@router.head("/live", include_in_schema=False)  # HEAD too: some load balancers and probes use it
async def live() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
@router.head("/ready", include_in_schema=False)
async def ready(registry: RegistryDep) -> JSONResponse:
    """200 once every enabled model is loaded and has answered a warm-up inference; else 503 with the
    reasons."""
    reasons = registry.readiness()
    body = Health(status="not_ready" if reasons else "ok", reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)
