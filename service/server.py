"""The HTTP server: uvicorn, with a shutdown that takes the instance out of rotation before it stops.

On SIGTERM (or SIGINT): readiness answers 503 at once; after ``shutdown_delay_s`` the server stops
accepting connections; it waits up to ``shutdown_timeout_s`` for the requests in flight, releases the models
and returns, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .main import begin_shutdown
from .settings import Settings

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Server(uvicorn.Server):
    """uvicorn's server with a readiness-first shutdown. The first stop signal calls ``on_stop`` (from the
    event loop, not from the signal handler) and starts a ``delay_s`` countdown during which connections are
    still accepted; then uvicorn's own graceful shutdown runs (stop accepting, wait for requests in flight
    at most ``config.timeout_graceful_shutdown`` seconds, lifespan shutdown). A second signal ends the
    countdown; a second SIGINT while draining forces the exit, as in uvicorn."""

    def __init__(self, config: uvicorn.Config, *, delay_s: float, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self.on_stop = on_stop
        self.stop_requested_at: float | None = None
        self.stopping = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: only records the request; ``on_tick`` acts on it."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s: turn readiness off once a stop was requested, and stop once the delay is over."""
        if self.stop_requested_at is not None:
            if not self.stopping:
                self.stopping = True
                self.on_stop()
                logger.info(
                    "stop requested: readiness is off; accepting for %ss more, then draining (at most %ss)",
                    self.delay_s,
                    self.config.timeout_graceful_shutdown,
                )
            if time.monotonic() - self.stop_requested_at >= self.delay_s:
                self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle the stop signals while serving. Unlike uvicorn, do not raise the signal again once the
        server has stopped: a drained shutdown ends the process with status 0, not killed by the signal."""
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` on the settings' host and port until a stop signal, then shut down gracefully."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    Server(config, delay_s=settings.shutdown_delay_s, on_stop=partial(begin_shutdown, app)).run()
