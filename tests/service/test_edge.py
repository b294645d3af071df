"""The connection layer's limits on a real uvicorn process (the default httptools parser): a head over
max_header_bytes is 431, a head that trickles in (slowloris) or never comes is 408 after
header_timeout_s, a connection beyond max_connections is 503, the parser's own refusal is 400; each in
the one JSON error shape, closing the connection; and ordinary requests, kept-alive ones included, are
served as before."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.edge_check import read_answer

from .conftest import running_server

LIMITS = {
    "MODELSERVE_MAX_HEADER_BYTES": "4096",
    "MODELSERVE_HEADER_TIMEOUT_S": "1",
    "MODELSERVE_MAX_CONNECTIONS": "24",
}


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Iterator[tuple[str, int]]:
    with running_server(tiny_repo, **LIMITS) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=10)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """The status and JSON body of the one response the server sends before it closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def test_a_head_over_the_limit_is_431(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
        assert answer(sock) == (
            431,
            {
                "error": {
                    "code": "headers_too_large",
                    "message": "the request's headers are larger than the limit of 4096 bytes",
                    "status": 431,
                }
            },
        )


def test_a_trickling_head_is_cut_off_with_408(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(20):  # a header line every 0.2 s, never the end of the head
                time.sleep(0.2)
                sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = answer(sock)
        assert time.monotonic() - started < 3.0
    assert (status, body["error"]["code"]) == (408, "request_timeout")  # type: ignore[index]


def test_a_silent_connection_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        status, _ = answer(sock)
        assert status == 408 and time.monotonic() - started < 3.0


def test_the_parser_s_refusal_is_json(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, body = answer(sock)
    assert status == 400
    assert body["error"]["code"] == "bad_request"  # type: ignore[index]
    assert body["error"]["message"].startswith("the request is not valid HTTP/1.1")  # type: ignore[index]


def test_connections_beyond_the_cap_are_503(server: tuple[str, int]) -> None:
    held = [connect(server) for _ in range(24)]
    try:
        time.sleep(0.2)
        with connect(server) as extra:
            status, body = answer(extra)
        assert (status, body["error"]["code"]) == (503, "too_many_connections")  # type: ignore[index]
    finally:
        for sock in held:
            sock.close()


def test_ordinary_and_kept_alive_requests_are_served(server: tuple[str, int]) -> None:
    host, port = server
    time.sleep(1.5)  # the held connections of other tests are gone
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):  # one connection, idle longer than header_timeout_s between requests
            assert client.get("/health/live").status_code == 200
            time.sleep(1.2)
        long_text = "good film " * 9_000  # a body far larger than max_header_bytes
        answered = client.post("/v1/sentiment", json={"text": long_text, "model": "tiny-sentiment"})
        assert answered.status_code == 200 and answered.json()["results"][0]["truncated"] is True


def test_requests_beyond_the_in_flight_bound_are_refused_by_the_protocol(tiny_repo: Path) -> None:
    """With max_requests_in_flight reached, a new request is answered 503 overloaded with Retry-After
    straight from the connection layer (no request cycle); health stays reachable."""
    env = {"MODELSERVE_MAX_REQUESTS_IN_FLIGHT": "1", "MODELSERVE_REQUEST_BODY_TIMEOUT_S": "30"}
    with running_server(tiny_repo, **env) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as held:
            # a request whose body never comes holds the one slot
            held.sendall(b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.3)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower()
            assert json.loads(body)["error"]["code"] == "overloaded"
            assert httpx.get(f"{url}/health/ready").status_code == 200


def test_the_rest_of_a_body_answered_early_is_not_read_as_a_head(tiny_repo: Path) -> None:
    """A 413 for a declared size goes before the body; the body that follows on the kept-alive connection
    is the refused request's, not the next request's head (it was counted as one: 431)."""
    env = {"MODELSERVE_MAX_UPLOAD_BYTES": "1000", "MODELSERVE_MAX_HEADER_BYTES": "4096"}
    with running_server(tiny_repo, **env) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            sock.sendall(head + b"Content-Length: 50000\r\n\r\n")
            assert read_answer(sock).status == 413
            for _ in range(10):  # the refused request's body, after its answer, in pieces
                sock.sendall(b" " * 5000)
                time.sleep(0.05)
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(sock).status == 200


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_as_many_clients_as_the_bound_are_never_refused(tiny_repo: Path, parser: str) -> None:
    """N clients sending back to back on kept-alive connections, with max_requests_in_flight N: a request
    counts until it is answered, not until its task ends, so a client's next request never finds its own
    answered one still counted (the task set did: at 32 clients, 7,571 of about 23,700 sentiments were
    refused)."""
    clients, each = 8, 60
    env = {"MODELSERVE_MAX_REQUESTS_IN_FLIGHT": str(clients), "MODELSERVE_HTTP_PARSER": parser}
    statuses: list[int] = []
    with running_server(tiny_repo, **env) as url:

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                for _ in range(each):
                    statuses.append(http.post("/v1/sentiment", json={"text": "a good film"}).status_code)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * (clients * each)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(
    tiny_repo: Path, parser: str
) -> None:
    with running_server(tiny_repo, MODELSERVE_HTTP_PARSER=parser) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            body = b'{"text": "good"}'
            sock.sendall(
                b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
                + b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"  # smuggled behind it: never answered
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1 ") == 1, data[:300]
        body = json.loads(data.partition(b"\r\n\r\n")[2])
        assert body["error"]["code"] == "bad_request"  # httptools' parser refuses it itself; h11's, we do
