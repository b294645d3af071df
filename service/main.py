"""The application factory: ``create_app(settings)`` with a lifespan that loads and closes the models."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __doc__ as package_doc
from .admission import Admission
from .auth import ApiKeys, KeyRing
from .errors import UnexpectedErrors, install_error_handlers
from .metrics import Metrics, RequestMetrics
from .registry import ModelRegistry
from .routes import caption, classify, health, metrics, models, sentiment, v2
from .routes.docs import install_docs
from .settings import Settings, get_settings
from .uploads import BodySizeLimit

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Discover the repository, load and warm up models in a worker thread (the server answers
    meanwhile, not ready; with several workers, each answers only once loading is over), and release
    them on shutdown."""
    settings: Settings = app.state.settings
    registry = ModelRegistry(settings, app.state.metrics)
    app.state.registry = registry
    logger.info(
        "model repository %s: %d versions; providers requested: %s",
        settings.models_dir,
        len(registry.versions),
        registry.requested_providers,
    )
    loading = asyncio.create_task(asyncio.to_thread(registry.load_all))
    try:
        if settings.workers > 1:
            # One of several workers on a shared port (service/server.py) starts accepting only once its
            # models are loaded, so that connections go to the workers that can answer them.
            await asyncio.shield(loading)
        yield
    finally:
        registry.stop_loading()
        await loading
        await asyncio.to_thread(registry.close)  # batchers finish what they hold first


def begin_shutdown(app: FastAPI) -> None:
    """The server received its stop signal: readiness answers 503 from now on (see ``service.server``)."""
    registry: ModelRegistry | None = getattr(app.state, "registry", None)
    if registry is not None:  # None: the signal came before the lifespan started
        registry.begin_shutdown()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; nothing is loaded until its lifespan starts."""
    settings = settings or get_settings()
    app = FastAPI(
        title="modelserve",
        version="0.1.0",
        description=package_doc or "",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves it, from local assets
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app)
    app.add_middleware(UnexpectedErrors)  # innermost: a defect's 500 keeps the connection
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.request_body_timeout_s,
        drops_upgrade_bodies=settings.http_parser == "httptools",
    )
    app.add_middleware(
        Admission,
        max_requests=settings.max_requests_in_flight,
        max_body_bytes=settings.max_body_bytes_in_flight,
        max_upload_bytes=settings.max_upload_bytes,
    )
    if settings.api_keys_file is not None:
        app.add_middleware(ApiKeys, keys=KeyRing.read(settings.api_keys_file))
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)  # outermost: sees every answer
    routers = (
        classify.router,
        sentiment.router,
        caption.router,
        models.router,
        health.router,
        metrics.router,
        v2.router,
    )
    for router in routers:
        app.include_router(router)
    install_docs(app)
    return app
