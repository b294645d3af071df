"""Upload handling: the request-body limit (an ASGI middleware) and reading uploaded image files."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import UploadFile
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.manifest import ImageSpec

from .errors import (
    AmbiguousFraming,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    UnsupportedMediaType,
    UpgradeRefused,
    error_response,
)
from .limits import check_item_count, named_pixels
from .settings import Settings

# Declared types we accept; a missing or generic type is accepted and the bytes decide.
IMAGE_MEDIA_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp", "image/gif"}
)
GENERIC_MEDIA_TYPES = frozenset({"", "application/octet-stream"})


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413: from Content-Length before reading anything,
    and by counting bytes as they stream in (chunked uploads, lying headers); and bodies that take longer
    than ``timeout_s`` to arrive, from the first read, with 408 (a stalled or trickling upload). Under
    the httptools parser (``drops_upgrade_bodies``), a request with a body that offers a protocol upgrade
    is refused with 400: the parser hands its body to no one, and the request would otherwise go on
    without it (a 422 "field required" that names no cause)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float, drops_upgrade_bodies: bool) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.drops_upgrade_bodies = drops_upgrade_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"content-length" in headers and b"transfer-encoding" in headers:
            # two framings at once: the way request smuggling starts, whichever one a proxy in front reads
            framing = AmbiguousFraming("the request has both Content-Length and Transfer-Encoding; send one")
            await error_response(framing, scope)(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._error(), scope)(scope, receive, send)
            return
        if self.drops_upgrade_bodies and b"upgrade" in headers and _has_body(headers, declared):
            connection = headers.get(b"connection", b"").lower()
            if b"upgrade" in (token.strip() for token in connection.split(b",")):
                offered = headers[b"upgrade"].decode("latin-1")
                error = UpgradeRefused(
                    f"the request offers a protocol upgrade (Upgrade: {offered}), and this server's HTTP "
                    "parser (httptools) then drops its body: send it without the Upgrade and Connection: "
                    "Upgrade headers (HTTP/1.1), or run the service with http_parser h11"
                )
                await error_response(error, scope)(scope, receive, send)
                return
        received = 0
        deadline: float | None = None
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:  # the body is in; what may come is the disconnect, whenever it comes
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s ({received} bytes did)"
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._error()  # the error handlers turn it into the 413 body
            return message

        await self.app(scope, limited_receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.max_bytes} bytes")


def _has_body(headers: dict[bytes, bytes], declared: str) -> bool:
    return (declared.isdigit() and int(declared) > 0) or b"transfer-encoding" in headers


async def read_images(
    files: list[UploadFile], settings: Settings, spec: ImageSpec
) -> list[np.ndarray | ServiceError]:
    """Check the count (a fault of the whole request), then decode and preprocess every upload for
    ``spec``: in worker threads, in parallel (Pillow and numpy release the GIL), off the event loop. Per
    upload, in order, its pixels or the error that keeps it from being answered (an unsupported media
    type, an image that is corrupt or too large)."""
    check_item_count(len(files), "images", settings.max_batch_items)
    names = [upload.filename or "upload" for upload in files]
    contents = [await upload.read() for upload in files]

    async def one(upload: UploadFile, name: str, data: bytes) -> np.ndarray | ServiceError:
        media_type = (upload.content_type or "").split(";")[0].strip().lower()
        if media_type not in IMAGE_MEDIA_TYPES | GENERIC_MEDIA_TYPES:
            return UnsupportedMediaType(
                f"{name}: media type {media_type!r} is not supported; send JPEG, PNG, WebP, BMP or GIF"
            )
        try:
            return await run_in_threadpool(named_pixels, name, data, settings, spec)
        except ServiceError as exc:
            return exc

    return list(await asyncio.gather(*map(one, files, names, contents)))
