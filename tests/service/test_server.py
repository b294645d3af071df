"""A real uvicorn process: ``python -m service`` starts, becomes ready, serves every endpoint, survives
bad input, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, error, image_bytes, running_server, upload


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Iterator[str]:
    with running_server(tiny_repo, MODELSERVE_MAX_UPLOAD_BYTES="100000") as url:
        yield url


def test_every_endpoint_over_http(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        assert http.get("/health/live").status_code == 200
        models = http.get("/v1/models").json()["models"]
        assert {m["providers"][0] for m in models} == {"CPUExecutionProvider"}
        assert all("CUDAExecutionProvider" in m["requested_providers"] for m in models)
        classified = http.post(
            "/v1/classify-image", files=[upload(image_bytes((0, 255, 0)))], data={"top_k": "1"}
        )
        assert classified.json()["results"][0]["predictions"][0]["label"] == "green"
        sentiment = http.post("/v1/sentiment", json={"texts": ["great", "awful"]})
        assert [r["label"] for r in sentiment.json()["results"]] == ["positive", "negative"]
        caption = http.post("/v1/caption", files=[upload(image_bytes((0, 0, 255)))], data={"beam_size": "2"})
        assert caption.json()["results"][0]["caption"] == "a blue square"


def test_bad_input_is_answered_and_the_server_keeps_serving(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        junk = http.post("/v1/classify-image", files=[upload(b"junk", "junk.png")])
        assert junk.status_code == 400 and junk.json()["error"]["code"] == "invalid_image"
        big = http.post("/v1/classify-image", files=[upload(b"\0" * 200_000, "big.png")])
        assert big.status_code == 413
        assert big.json() == {
            "error": {
                "code": "payload_too_large",
                "message": "request body is larger than the limit of 100000 bytes",
                "status": 413,
            }
        }
        assert http.post("/v1/sentiment", json={"text": ""}).status_code == 422
        assert http.get("/health/ready").status_code == 200
        assert http.post("/v1/sentiment", json={"text": "good"}).json()["results"][0]["label"] == "positive"


RETAINED = """
import sys, threading
from PIL import Image
from service.server import give_large_blocks_back
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
if sys.argv[1] == "on":
    give_large_blocks_back()
base, kept = rss(), []
def decode():  # what a decode thread does with a large image, keeping a small allocation after each
    for _ in range(5):
        image = Image.new("RGB", (4000, 4000)).convert("L").convert("RGB")
        kept.append(Image.new("RGB", (50, 50)))
        del image
threads = [threading.Thread(target=decode) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(rss() - base)
"""


REUSED = """
import resource
import numpy as np
from service.server import give_large_blocks_back
give_large_blocks_back()
images = [np.ones((3, 160, 160), dtype=np.float32) for _ in range(8)]
np.stack(images)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):  # a batcher stacking batches of 8 images (2.3 MB) over and over
    batch = np.stack(images)
    del batch
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_batch_sized_blocks_are_reused_not_faulted_in_again() -> None:
    """Below the mapping threshold, a freed batch's memory stays in the heap for the next batch: a fixed
    threshold with glibc's 128 KB trim gave it back every time, and each of 100 batches of 2.3 MB faulted
    its ~590 pages in again (~59,000 page faults, 0.2 -> 1.9 ms a batch)."""
    faults = subprocess.run(
        [sys.executable, "-c", REUSED], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(faults.stdout) < 5000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_large_blocks_freed_by_decode_threads_go_back_to_the_system() -> None:
    """Eight threads each decode five 16-megapixel images one after the other: the process keeps none
    of it once they are done (glibc by default kept ~490 MB of it in its per-thread heaps here)."""
    retained = subprocess.run(
        [sys.executable, "-c", RETAINED, "on"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert int(retained.stdout) < 64


def test_a_client_that_goes_away_leaves_no_work_behind(tiny_repo: Path) -> None:
    """A caption request waits for company (a 2 s batch delay); its client closes the connection after
    0.3 s: the request is abandoned (cancelled in the queue, never decoded), counted, and answered 499 in
    the request metrics; the next client is served."""
    env = {"MODELSERVE_BATCH_MAX_DELAY_MS": "2000", "MODELSERVE_ENABLED_MODELS": '["tiny-captioner"]'}
    with running_server(tiny_repo, **env) as url:
        port = int(url.rsplit(":", 1)[1])
        request = httpx.Request("POST", f"{url}/v1/caption", files=[upload(image_bytes((255, 0, 0)))])
        body, content_type = request.read(), request.headers["content-type"]
        head = (
            f"POST /v1/caption HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head.encode() + body)
            time.sleep(0.3)
        time.sleep(2.5)  # past the batch delay: the worker has taken (and skipped) the request
        metrics = httpx.get(f"{url}/metrics").text
        assert 'modelserve_requests_abandoned_total{model="tiny-captioner",version="1"} 1.0' in metrics
        assert 'modelserve_batch_size_count{model="tiny-captioner",version="1"} 0.0' in metrics
        assert 'endpoint="/v1/caption",method="POST",status="499"} 1.0' in metrics
        answer = httpx.post(f"{url}/v1/caption", files=[upload(image_bytes((255, 0, 0)))], timeout=30)
        assert answer.json()["results"][0]["caption"] == "a red square"


@pytest.mark.parametrize("path", ["/v1/sentiment", "/v2/models/tiny-sentiment/infer"])
def test_a_stalled_upload_is_answered_408_and_its_connection_closed(tiny_repo: Path, path: str) -> None:
    """A client sends its headers and part of the body, then nothing: after request_body_timeout_s it gets
    408 and the connection is closed (the rest of a body must not be read as a request); others are
    served meanwhile."""
    env = {"MODELSERVE_REQUEST_BODY_TIMEOUT_S": "1", "MODELSERVE_ENABLED_MODELS": '["tiny-sentiment"]'}
    with running_server(tiny_repo, **env) as url:
        port = int(url.rsplit(":", 1)[1])
        head = (
            f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode() + b'{"text": "go')
            started = time.monotonic()
            assert httpx.post(f"{url}/v1/sentiment", json={"text": "good"}).status_code == 200
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
            waited = time.monotonic() - started
        status_line, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout"
        assert b"connection: close" in headers.lower()
        message = "the request body did not arrive within 1 s (12 bytes did)"
        expected = {"error": message} if path.startswith("/v2") else error("request_timeout", message, 408)
        assert json.loads(body) == expected
        assert 0.5 < waited < 5


def raw_exchange(url: str, request: bytes, close_after_s: float | None = None) -> bytes:
    """Send ``request`` on a new connection; the answer until the server closes it or 10 s pass, or
    nothing if the client closes it first (``close_after_s``)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if close_after_s is not None:
            time.sleep(close_after_s)
            return b""
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    head, _, body = answer.partition(b"\r\n\r\n")
                    length = re.search(rb"content-length: (\d+)", head.lower())
                    if length and len(body) >= int(length.group(1)):
                        break
        except TimeoutError:
            pass
        return answer


def upgrade_request(upgrade: str, body: bytes = b'{"text": "a great film"}') -> bytes:
    head = (
        f"POST /v1/sentiment HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        f"Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_a_request_offering_an_upgrade_is_answered(server: str, tiny_repo: Path) -> None:
    """Some HTTP/2-capable clients offer an upgrade (Upgrade: h2c) on plain HTTP/1.1 requests. uvicorn's
    httptools parser then drops the body, and the request went on without it (422 "body: Field
    required"); with Upgrade: websocket it was never answered. Now: a 400 that says why and what to do,
    and with the h11 parser (http_parser) the request is served."""
    for upgrade in ("h2c", "websocket"):
        answer = raw_exchange(server, upgrade_request(upgrade))
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nconnection: close\r\n" in answer.lower()  # a request pipelined behind it is lost
        message = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["message"]
        assert message.startswith(f"the request offers a protocol upgrade (Upgrade: {upgrade})")
        assert "http_parser h11" in message
    no_body = b"GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert raw_exchange(server, no_body).startswith(b"HTTP/1.1 200 ")
    with running_server(tiny_repo, MODELSERVE_HTTP_PARSER="h11") as h11:
        answer = raw_exchange(h11, upgrade_request("h2c"))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["results"][0]["label"] == "positive"


def test_a_client_gone_mid_body_is_a_499_not_a_500(server: str) -> None:
    """A client that closes the connection halfway through its body is counted as 499 (it went away),
    on /v1 and /v2 alike; it was a 500 (and a logged traceback) under /v2, a 400 under /v1."""
    for path in ("/v1/sentiment", "/v2/models/tiny-sentiment/infer"):
        head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        head += "Content-Length: 5000\r\n\r\n"
        raw_exchange(server, head.encode() + b'{"text": "go', close_after_s=0.3)
    time.sleep(0.5)
    metrics = httpx.get(f"{server}/metrics").text
    for path in ("/v1/sentiment", "/v2/models/{name}/infer"):
        assert f'endpoint="{path}",method="POST",status="499"}} 1.0' in metrics
    assert 'status="500"' not in metrics


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, ["--models-dir", "no/such/dir"], "error: the model repository no/such/dir does not exist"),
        ({"MODELSERVE_PORT": "99999"}, [], "error: setting port: Input should be less than or equal to"),
        ({}, ["--workers", "0"], "error: setting workers: Input should be greater than or equal to 1"),
        ({"MODELSERVE_PROVIDERS": "CPUExecutionProvider"}, [], "list and mapping settings are JSON"),
    ],
)
def test_bad_settings_exit_2_with_a_line_not_a_traceback(
    tiny_repo: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    command = [sys.executable, "-m", "service", "--models-dir", str(tiny_repo), *args]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr and "Traceback" not in done.stderr
