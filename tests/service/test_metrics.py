"""GET /metrics: Prometheus's text format, one registry per application."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.server import ShortAccessPaths

from .conftest import image_bytes, running_client, upload


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics body, by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_batches_and_name_the_providers(tiny_repo: Path) -> None:
    with running_client(tiny_repo) as client:
        files = [upload(image_bytes((255, 0, 0))), upload(image_bytes((0, 255, 0)))]
        assert client.post("/v1/classify-image", files=files).status_code == 200
        assert client.post("/v1/sentiment", json={"text": ""}).status_code == 422
        assert client.get("/nowhere").status_code == 404
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    post = {"method": "POST"}
    assert value("modelserve_http_requests_total", **post, endpoint="/v1/classify-image", status="200") == 1
    assert value("modelserve_http_requests_total", **post, endpoint="/v1/sentiment", status="422") == 1
    assert value("modelserve_http_requests_total", method="GET", endpoint="unmatched", status="404") == 1
    latency = "modelserve_http_request_duration_seconds_count"
    assert value(latency, **post, endpoint="/v1/classify-image", status="200") == 1
    model = {"model": "tiny-classifier", "version": "1"}
    assert value("modelserve_batch_size_count", **model) == 1
    assert value("modelserve_batch_size_sum", **model) == 2
    assert value("modelserve_queue_wait_seconds_count", **model) == 1
    assert value("modelserve_compute_seconds_count", **model) == 1
    assert value("modelserve_queue_depth", **model) == 0
    info = {
        "task": "image-classification",
        "providers": "CPUExecutionProvider",  # what the session got, not what was asked for
        "requested_providers": "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider",
    }
    assert value("modelserve_model_info", **model, **info) == 1
    sentiment = {"model": "tiny-sentiment", "version": "1"}
    assert value("modelserve_batch_size_count", **sentiment) == 0  # refused before its queue


def test_each_application_has_its_own_registry(tiny_repo: Path) -> None:
    with running_client(tiny_repo) as first, running_client(tiny_repo) as second:
        first.post("/v1/sentiment", json={"text": "good"})
        counted = 'modelserve_http_requests_total{endpoint="/v1/sentiment",method="POST",status="200"}'
        assert counted in first.get("/metrics").text
        assert counted not in second.get("/metrics").text


def test_an_unknown_method_counts_as_other(client: TestClient) -> None:
    for method in ("FROB", "XYZZY", "FROB"):
        client.request(method, "/v1/models")
    text = client.get("/metrics").text
    assert 'method="other"' in text and "FROB" not in text and "XYZZY" not in text


def test_the_access_log_cuts_long_paths() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/models?" + "a" * 60_000, "1.1", 404),
        None,
    )
    assert ShortAccessPaths().filter(record)
    message = record.getMessage()
    assert len(message) < 300 and message.endswith('...(60011 characters) HTTP/1.1" 404')
