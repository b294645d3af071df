"""A real uvicorn process: ``python -m service`` starts, becomes ready, serves every endpoint, survives
bad input, and stops on SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import image_bytes, running_server, upload


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
