"""The connection layer's limits, on uvicorn's httptools protocol (the default parser): the size and time a
request's head may take, how many connections are open at once, and the one JSON error shape for what
the parser refuses. uvicorn has none of these for httptools (a 64 MB header was read whole; 2,000
connections trickling their headers were held for ever, and 1,100 of them, under a 1,024-file limit,
made the service unreachable), and its parser errors were plain text. uvicorn takes the protocol class
as its ``http`` option: this is that class, made per settings."""

from __future__ import annotations

import asyncio
import collections
import json
import resource
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .admission import PROBE_PATHS
from .errors import (
    BadRequest,
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    ServiceError,
    TooManyConnections,
    error_content,
)
from .settings import Settings

PROBE_PATHS_RAW = frozenset(path.encode() for path in PROBE_PATHS)
RESERVED_FILES = 128  # descriptors kept for the process itself (model files, logs, worker pipes)


def connection_cap(settings: Settings) -> int:
    """``max_connections``, or with 0 the open-file limit less what the process needs for itself."""
    if settings.max_connections:
        return settings.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft - RESERVED_FILES) if soft != resource.RLIM_INFINITY else 65536


def error_bytes(error: ServiceError) -> bytes:
    """A whole HTTP response of ``error`` in the one error shape (its headers too), closing the connection."""
    body = json.dumps(error_content(error)).encode()
    headers = {**error.headers(), "Connection": "close"}
    head = [f"HTTP/1.1 {error.status_code} {HTTPStatus(error.status_code).phrase}"]
    head += ["content-type: application/json", f"content-length: {len(body)}"]
    head += [f"{name.lower()}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def guarded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """The httptools protocol class with the settings' limits."""
    limits = {
        "max_head_bytes": settings.max_header_bytes,
        "head_timeout_s": settings.header_timeout_s,
        "max_connections": connection_cap(settings),
        "max_in_flight": settings.max_requests_in_flight,
        "in_flight": InFlight(),
    }
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), limits)


class InFlight:
    """The requests being answered over every connection of one server: taken, and not yet answered
    (uvicorn's own task set also holds the tasks of requests already answered that have not ended yet,
    which a client sending its next request at once finds still counted)."""

    def __init__(self) -> None:
        self.count = 0


class Refused(Exception):
    """Raised from a parser callback to stop parsing a request already answered (431, 503)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A request's head (request line and headers) must arrive within ``head_timeout_s`` of its first
    byte (or of the connection, for a connection that sends nothing) and stay within ``max_head_bytes``;
    beyond ``max_connections`` open connections, a new one is answered 503 and closed. Every refusal
    (and the parser's own 400) is the one JSON error body, and closes the connection."""

    max_head_bytes = 65536
    head_timeout_s = 10.0
    max_connections = 1000
    max_in_flight = 0  # requests being answered beyond which a new one is refused
    in_flight = InFlight()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received since the head began (a head that has not ended yet)
        self._head_size = 0  # the request line and headers the parser has read of this head
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted: collections.deque[bool] = collections.deque()  # per request taken, in order: counted?

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(
                TooManyConnections(
                    f"the server holds {self.max_connections} connections, the most it takes; retry later"
                )
            )
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self.in_flight.count -= sum(self._counted)  # requests that will not be answered now
        self._counted.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_timer is None:  # the first byte of the next request on a kept-alive connection
                self._arm_head_timer()
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes:  # a head still coming
            self._head_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # as sent: "name: value\r\n"
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        """A head that arrived whole in one read is measured as the parser reads it."""
        self._head_size += size
        if self._head_size > self.max_head_bytes:
            self._head_too_large()
            raise Refused  # stops the parser: httptools raises it on as its callback error

    def _head_too_large(self) -> None:
        self._refuse(
            HeadersTooLarge(f"the request's headers are larger than the limit of {self.max_head_bytes} bytes")
        )

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm_head_timer()
        counted = not self._exempt()
        if self.max_in_flight and counted and self.in_flight.count >= self.max_in_flight:
            # the cheapest refusal there is: no request cycle, no task, no middleware (a request that is
            # turned away costs a tenth of one that is served, so that refusing the excess of an overload
            # leaves the CPU to the requests taken)
            self._refuse(
                Overloaded(
                    f"{self.in_flight.count} requests are being answered, the most this server takes at "
                    "once; retry later"
                )
            )
            raise Refused
        self._counted.append(counted)
        self.in_flight.count += counted
        super().on_headers_complete()

    def _exempt(self) -> bool:
        return self.url.split(b"?", 1)[0] in PROBE_PATHS_RAW

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # the parser has this request whole: what comes next on this connection is a new head (the
        # keep-alive timer closes the connection while nothing comes). Not at the response's end: a
        # response may go before its request's body is in (a 413 for a declared size), and the rest of
        # that body is not a head.
        self._in_head = True

    def on_response_complete(self) -> None:
        if self._counted:
            self.in_flight.count -= self._counted.popleft()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest(f"the request is not valid HTTP/1.1: {msg}"))

    def _refuse(self, error: ServiceError) -> None:
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(error_bytes(error))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._refuse(
                RequestTimeout(f"the request's headers did not arrive within {self.head_timeout_s:g} s")
            )
