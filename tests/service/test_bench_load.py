"""The benchmark's load generator against a real uvicorn process: its pre-encoded requests (JSON and
multipart) are answered 200 by the service, every answer is counted, and non-200 answers count as errors
(so a benchmark cannot report throughput for requests that failed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.load import generate, measure, request_bytes

from .conftest import running_server


def test_request_bytes_are_one_whole_http_request() -> None:
    raw = request_bytes("http://127.0.0.1:8000", "sentiment")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "POST /v1/sentiment HTTP/1.1"
    assert "Host: 127.0.0.1:8000" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert body.startswith(b'{"text":')


@pytest.mark.parametrize("task", ["sentiment", "classify", "caption"])
def test_every_request_is_answered_and_counted(tiny_repo: Path, task: str) -> None:
    with running_server(tiny_repo) as url:  # each task's only model there serves it
        result = asyncio.run(generate(url, task, concurrency=4, requests=24, duration=60))
    assert result["requests"] == 24 and result["errors"] == 0
    assert result["p50_ms"] > 0 and result["throughput"] > 0


def test_answers_other_than_200_are_errors(tiny_repo: Path) -> None:
    with running_server(tiny_repo, MODELSERVE_MAX_TEXT_CHARS="10") as url:  # the 60-word review: 422
        result = asyncio.run(generate(url, "sentiment", concurrency=3, requests=9, duration=60))
    assert result["requests"] == 0 and result["errors"] == 9


def test_several_load_processes_share_the_clients_and_pool_their_answers(tiny_repo: Path) -> None:
    with running_server(tiny_repo, MODELSERVE_WORKERS="2") as url:
        result = measure(url, "sentiment", concurrency=5, requests=41, duration=60, processes=2)
    assert result["requests"] == len(result["latencies"]) == 41 and result["errors"] == 0
    assert result["concurrency"] == 5 and result["p99_ms"] >= result["p50_ms"] > 0
