"""The one error hierarchy and the one JSON error body: ``{"error": {"code", "message", "status"}}``;
under ``/v2`` the Open Inference Protocol's own body, ``{"error": "<message>"}``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of every error the service reports; subclasses fix the HTTP status and the code."""

    status_code = 500
    code = "internal_error"
    # the answer closes the connection: what the client sent after it must not be read as a request
    closes_connection = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries: ``Connection: close`` for the errors that close it,
        ``Retry-After`` for ``QueueFull``, ``WWW-Authenticate`` for ``Unauthorized``."""
        return {"Connection": "close"} if self.closes_connection else {}


class InvalidImage(ServiceError):
    """Not an image, or a truncated or corrupt one."""

    status_code = 400
    code = "invalid_image"


class BadRequest(ServiceError):
    """A malformed request: a body that does not parse, a tensor of the wrong datatype or shape, ..."""

    status_code = 400
    code = "bad_request"


class UpgradeRefused(BadRequest):
    """A request with a body that offers a protocol upgrade, under the httptools parser. Its answer closes
    the connection: the parser took the rest of the connection's bytes for the other protocol, so a
    request pipelined behind it would never be answered."""

    closes_connection = True


class AmbiguousFraming(BadRequest):
    """A request that gives its body's length twice (Content-Length and Transfer-Encoding). Its answer
    closes the connection: where the body ends, and so where a next request would start, is not known."""

    closes_connection = True


class Unauthorized(ServiceError):
    """API keys are on (``api_keys_file``) and the request has no key, or a key that is not known."""

    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="modelserve"'}


class Forbidden(ServiceError):
    """The request's API key has a scope below the endpoint's (``inference`` asking for an admin one)."""

    status_code = 403
    code = "forbidden"


class ModelNotFound(ServiceError):
    """No model of the requested task has that name (or version)."""

    status_code = 404
    code = "model_not_found"


class PayloadTooLarge(ServiceError):
    """The request body is over ``max_upload_bytes``."""

    status_code = 413
    code = "payload_too_large"


class RequestTimeout(ServiceError):
    """The request body did not arrive within ``request_body_timeout_s``; the connection is closed."""

    status_code = 408
    code = "request_timeout"
    closes_connection = True  # what is left of the body must not be read as the next request


class ImageTooLarge(ServiceError):
    """The image has more than ``max_image_pixels`` pixels (a decompression bomb, say)."""

    status_code = 413
    code = "image_too_large"


class HeadersTooLarge(ServiceError):
    """A request head (request line and headers) over ``max_header_bytes``; the connection is closed."""

    status_code = 431
    code = "headers_too_large"
    closes_connection = True


class TooManyConnections(ServiceError):
    """``max_connections`` connections are open already; the new one is answered and closed."""

    status_code = 503
    code = "too_many_connections"
    closes_connection = True


class TooManyItems(ServiceError):
    """More than ``max_batch_items`` images or texts in one request."""

    status_code = 413
    code = "too_many_items"


class TensorTooLarge(ServiceError):
    """A /v2 graph input longer than ``max_axis_size`` along a free axis other than the first."""

    status_code = 413
    code = "tensor_too_large"


class UnsupportedMediaType(ServiceError):
    """An upload that is not one of the supported image formats."""

    status_code = 415
    code = "unsupported_media_type"


class InvalidInput(ServiceError):
    """A well-formed request whose values are out of bounds (empty or over-long text, top_k, ...)."""

    status_code = 422
    code = "invalid_input"


class EmptyText(InvalidInput):
    """A text that is empty or only whitespace."""

    code = "empty_text"


class TextTooLong(InvalidInput):
    """A text over ``max_text_chars`` characters."""

    code = "text_too_long"


class ValidationFailed(ServiceError):
    """The request does not match its schema (pydantic validation)."""

    status_code = 422
    code = "validation_error"


class ClientGone(ServiceError):
    """The client closed the connection before its answer (nginx's 499; nobody reads it, the metrics do)."""

    status_code = 499
    code = "client_closed_request"


class ModelNotReady(ServiceError):
    """The model exists but is not loaded (still loading, or every version failed)."""

    status_code = 503
    code = "model_not_ready"


class ShuttingDown(ServiceError):
    """The server stopped, and the request could not finish within ``shutdown_timeout_s``."""

    status_code = 503
    code = "shutting_down"
    closes_connection = True

    def headers(self) -> dict[str, str]:
        return {"Connection": "close", "Retry-After": "1"}


class Overloaded(ServiceError):
    """The process answers as many requests (or holds as many bytes of bodies) as it takes at once."""

    status_code = 503
    code = "overloaded"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class QueueFull(ServiceError):
    """The model's batching queue is full: the client should retry after ``retry_after_s`` seconds."""

    status_code = 503
    code = "queue_full"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


V2_PREFIX = "/v2"
# Statuses the v2 protocol keeps; its other client errors are 400 ("typically 400", says the protocol).
_V2_STATUSES = frozenset({401, 403, 404, 405, 408, 413, 499})


def is_v2_request(scope: Scope) -> bool:
    """Whether the request is one of the Open Inference Protocol v2 (its path is under ``/v2``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


class ErrorJSON(JSONResponse):
    """A JSON error body that renders whatever the message quotes from the request: a lone surrogate
    (``"\\ud800"`` is valid JSON, and not valid Unicode) is written as its JSON escape instead of failing
    the UTF-8 encoding, which would turn the error into a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", errors="backslashreplace")


def error_response(error: ServiceError, scope: Scope | None = None) -> JSONResponse:
    """Render an error as the one JSON error body, or as the v2 protocol's when ``scope`` is a v2 request."""
    if scope is not None and is_v2_request(scope):
        status = error.status_code
        if 400 <= status < 500 and status not in _V2_STATUSES:
            status = 400
        return ErrorJSON({"error": error.message}, status_code=status, headers=error.headers())
    return ErrorJSON(error_content(error), status_code=error.status_code, headers=error.headers())


def error_content(error: ServiceError) -> dict[str, Any]:
    """The one error body of ``error``: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": error.code, "message": error.message, "status": error.status_code}}


def _format_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err.get("loc", ()))
        parts.append(f"{location}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, request.scope)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(ValidationFailed(_format_validation(exc)), request.scope)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    # FastAPI wraps errors raised while it reads the body (our upload limit among them) in a 400.
    if isinstance(exc.__cause__, ServiceError):
        return error_response(exc.__cause__, request.scope)
    if isinstance(exc.__cause__, ClientDisconnect):
        return error_response(_client_gone(), request.scope)
    error = ServiceError(str(exc.detail))
    error.status_code = exc.status_code
    error.code = _HTTP_CODES.get(
        exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error"
    )
    response = error_response(error, request.scope)
    if exc.headers:  # a 405's Allow, which the protocol requires
        response.headers.update(exc.headers)
    return response


def _internal_error(exc: Exception) -> ServiceError:
    return ServiceError(f"internal error: {type(exc).__name__}")


def _client_gone() -> ClientGone:
    return ClientGone("the client closed the connection before sending the whole request")


async def _disconnect_handler(request: Request, exc: Exception) -> JSONResponse:
    return error_response(_client_gone(), request.scope)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    return error_response(_internal_error(exc), request.scope)


class UnexpectedErrors:
    """ASGI middleware: an exception no handler knows (a defect) is logged with its traceback and answered
    with the 500 error body, and the connection stays usable. (Left to Starlette, the 500 is sent and the
    exception raised again, and the server then closes the connection: the client's next request on it
    fails, however valid.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # the server's graceful shutdown ran out of time (shutdown_timeout_s) and cancels what is left:
            # an answer that says so, in the one shape (uvicorn's own is a plain-text 500)
            if started:
                raise
            error = ShuttingDown(
                "the server is shutting down and this request did not finish in time; retry it (another "
                "replica will answer)"
            )
            await error_response(error, scope)(scope, receive, send)
        except Exception as exc:
            if started:  # part of the answer is out: nothing to do but let the server end the connection
                raise
            logger.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            await error_response(_internal_error(exc), scope)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error, ours and the framework's, to the one JSON error body."""
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(ClientDisconnect, _disconnect_handler)  # reading a body whose client left
    app.add_exception_handler(Exception, _unexpected_handler)
