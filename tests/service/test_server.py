"""A real uvicorn process: ``python -m service`` starts, becomes ready, serves every endpoint, survives
bad input, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import image_bytes, upload

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELSERVE_MAX_UPLOAD_BYTES": "100000"}
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--models-dir", str(tiny_repo), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled


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
