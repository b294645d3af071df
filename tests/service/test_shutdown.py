"""Graceful shutdown of a real ``python -m service`` process: on SIGTERM, readiness turns 503 first, then
the server stops accepting, finishes the requests in flight (at most ``shutdown_timeout_s``) and exits 0.

A request is held in flight by its client: it sends the headers with ``Expect: 100-continue``, waits for
the server's ``100 Continue`` (the application is now reading the body), and sends the body only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .conftest import start_server

BODY = json.dumps({"texts": ["a great film", "awful"]}).encode()


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def read_until(sock: socket.socket, marker: bytes | None) -> bytes:
    """What the server sends, up to ``marker`` or (``None``) up to the end of the connection."""
    data = b""
    while marker is None or marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def start_request(url: str) -> socket.socket:
    """POST /v1/sentiment with the headers only; returns once the application waits for the body."""
    sock = socket.create_connection(address(url), timeout=30)
    head = (
        "POST /v1/sentiment HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode())
    assert read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")
    return sock


def finish_request(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Send the body; read the response up to the end of the connection: (status, headers, body)."""
    sock.sendall(BODY)
    data = read_until(sock, None)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@contextmanager
def server(models_dir: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A ready server process and its URL; the test stops it (killed here if it did not)."""
    process, url = start_server(models_dir, **env)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_not_ready(url: str, timeout_s: float) -> httpx.Response:
    """Poll readiness until it is not 200; return that answer."""
    deadline = time.monotonic() + timeout_s
    while (ready := httpx.get(f"{url}/health/ready")).status_code == 200:
        assert time.monotonic() < deadline, "readiness stayed 200 after SIGTERM"
        time.sleep(0.05)
    return ready


def accepts_connections(url: str) -> bool:
    try:
        socket.create_connection(address(url), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_sigterm_turns_readiness_off_then_drains_the_requests_in_flight(tiny_repo: Path) -> None:
    delay_s = 3  # long enough to observe readiness 503 while connections are still accepted
    env = {"MODELSERVE_SHUTDOWN_DELAY_S": str(delay_s), "MODELSERVE_SHUTDOWN_TIMEOUT_S": "30"}
    with server(tiny_repo, **env) as (process, url):
        in_flight = start_request(url)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)

        # first: readiness turns false while connections are still accepted
        ready = wait_not_ready(url, timeout_s=delay_s / 2)
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "reasons": ["shutting down"]}
        assert httpx.get(f"{url}/health/live").status_code == 200

        # then: once the delay is over, the server stops accepting
        while accepts_connections(url):
            assert time.monotonic() < signalled + delay_s + 10, "the server kept accepting connections"
            time.sleep(0.05)
        assert time.monotonic() - signalled >= delay_s

        # and waits for the request in flight, which completes; then it exits 0
        time.sleep(0.5)
        assert process.poll() is None, "the server exited with a request in flight"
        status, headers, body = finish_request(in_flight)
        assert status == 200 and headers["connection"] == "close"
        assert [r["label"] for r in json.loads(body)["results"]] == ["positive", "negative"]
        assert process.wait(timeout=30) == 0


def test_shutdown_timeout_bounds_the_wait_for_requests_in_flight(tiny_repo: Path) -> None:
    with server(tiny_repo, MODELSERVE_SHUTDOWN_TIMEOUT_S="1") as (process, url):
        stalled = start_request(url)  # its body never comes
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - signalled < 10
        # the request cut off is told so, in the one error shape (uvicorn's own answer: a plain-text 500)
        head, _, body = read_until(stalled, None).partition(b"\r\n\r\n")
        stalled.close()
        assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower()
        assert json.loads(body)["error"]["code"] == "shutting_down"


def test_a_second_sigterm_ends_the_delay(tiny_repo: Path) -> None:
    with server(tiny_repo, MODELSERVE_SHUTDOWN_DELAY_S="60") as (process, url):
        process.send_signal(signal.SIGTERM)
        wait_not_ready(url, timeout_s=10)
        assert accepts_connections(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_work_cut_off_by_the_shutdown_is_abandoned() -> None:
    """A caption whose request the server cancels (shutdown_timeout_s ran out) is abandoned too: its
    search leaves the decoder at the next step instead of decoding on for nobody."""
    from service.batching import Ticket
    from service.routes.common import answer_unless_gone

    async def scenario() -> Ticket[object]:
        ticket: Ticket[object] = Ticket()
        ticket.set_running_or_notify_cancel()  # being decoded

        async def receive() -> dict[str, object]:
            await asyncio.sleep(3600)  # the client stays
            return {"type": "http.disconnect"}

        waiting = asyncio.ensure_future(answer_unless_gone(receive, ticket))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return ticket

    assert asyncio.run(scenario()).abandoned
