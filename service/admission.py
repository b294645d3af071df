"""Admission for the whole process, before a route runs: at most ``max_requests_in_flight`` requests are
being answered at once, and their bodies hold at most ``max_body_bytes_in_flight`` (a request counts its
declared Content-Length, or ``max_upload_bytes`` when it declares none); beyond either, a request is
refused at once with 503 ``overloaded`` and Retry-After, before its body is read. Each model's queue then
applies its own bounds (``batch_queue_size``, ``batch_max_wait_ms``); together they keep the event loop's
backlog and the memory of bodies bounded under any load, instead of answering everyone late. The health
endpoints are exempt: probes must see an overloaded process as alive (and ready)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import Overloaded, error_response

# the health endpoints: never refused, never behind a key (probes and load balancers must reach them)
PROBE_PATHS = frozenset({"/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"})


class Admission:
    """ASGI middleware: the process-wide bound on requests in flight and on their bodies' bytes."""

    def __init__(self, app: ASGIApp, max_requests: int, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.requests = 0  # one event loop: no lock needed
        self.body_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        size = self._declared_size(scope)
        refusal = None
        if self.max_requests and self.requests >= self.max_requests:
            refusal = f"{self.requests} requests are being answered, the most this server takes at once"
        elif self.max_body_bytes and self.body_bytes and self.body_bytes + size > self.max_body_bytes:
            refusal = (
                f"the request bodies being answered hold {self.body_bytes} bytes, and this one's "
                f"{size} would pass the limit of {self.max_body_bytes}"
            )
        if refusal is not None:
            await error_response(Overloaded(f"{refusal}; retry later"), scope)(scope, receive, send)
            return
        self.requests += 1
        self.body_bytes += size
        answered = False

        def release() -> None:
            nonlocal answered
            if not answered:
                answered = True
                self.requests -= 1
                self.body_bytes -= size

        async def send_and_release(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()  # answered: the client may send its next request before this task ends

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            release()

    def _declared_size(self, scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return min(int(value), self.max_upload_bytes) if value.isdigit() else self.max_upload_bytes
            if name == b"transfer-encoding":
                return self.max_upload_bytes  # no size given: it may be the largest allowed
        return 0
