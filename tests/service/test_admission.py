"""Process-wide admission: beyond max_requests_in_flight requests, or max_body_bytes_in_flight bytes of
bodies, a request is refused at once with 503 overloaded and Retry-After (the one error shape; the v2
one under /v2), health endpoints exempt; a slot frees when its request is answered."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from service.admission import Admission

from .conftest import error


def make(max_requests: int, max_body_bytes: int) -> tuple[Admission, asyncio.Event]:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return Admission(app, max_requests, max_body_bytes, max_upload_bytes=1000), release


def test_requests_beyond_the_bound_are_refused_at_once() -> None:
    async def scenario() -> None:
        admission, release = make(max_requests=2, max_body_bytes=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(admission), base_url="http://t") as client:
            held = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
            await asyncio.sleep(0.05)
            refused = await client.get("/v1/models")
            assert (refused.status_code, refused.headers["retry-after"]) == (503, "1")
            message = "2 requests are being answered, the most this server takes at once; retry later"
            assert refused.json() == error("overloaded", message, 503)
            v2 = await client.get("/v2/models/x")
            assert (v2.status_code, v2.json()) == (503, {"error": message})
            assert (await client.get("/health/ready")).status_code == 200  # probes are never refused
            release.set()
            assert [(await task).status_code for task in held] == [200, 200]
            assert (await client.get("/v1/models")).status_code == 200  # the slots are free again
            assert admission.requests == 0

    asyncio.run(scenario())


def test_bodies_beyond_the_byte_bound_are_refused() -> None:
    async def scenario() -> None:
        admission, release = make(max_requests=0, max_body_bytes=1500)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(admission), base_url="http://t") as client:
            held = asyncio.create_task(client.post("/slow", content=b"x" * 900))
            await asyncio.sleep(0.05)
            refused = await client.post("/v1/sentiment", content=b"y" * 700)
            assert refused.status_code == 503
            assert "hold 900 bytes, and this one's 700 would pass the limit of 1500" in refused.text
            assert (await client.post("/v1/sentiment", content=b"z" * 500)).status_code == 200
            release.set()
            assert (await held).status_code == 200
            assert admission.body_bytes == 0

    asyncio.run(scenario())
