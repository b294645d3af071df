"""The endpoints on real tiny models, through TestClient with the lifespan running."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import image_bytes, upload


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok", "reasons": []}
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "reasons": []}


def test_models_lists_requested_and_actual_providers(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny-captioner", "tiny-classifier", "tiny-sentiment"}
    classifier = models["tiny-classifier"]
    assert classifier["task"] == "image-classification"
    assert (classifier["version"], classifier["status"], classifier["reason"], classifier["serving"]) == (
        1,
        "ready",
        None,
        True,
    )
    assert classifier["load_time_s"] > 0
    # onnxruntime-gpu lists CUDA and TensorRT, but with no GPU the sessions run on CPU: that is what shows.
    assert classifier["requested_providers"][-1] == "CPUExecutionProvider"
    assert "CUDAExecutionProvider" in classifier["requested_providers"]
    assert classifier["providers"] == ["CPUExecutionProvider"]
    graph = classifier["graphs"]["model"]
    assert graph["providers"] == ["CPUExecutionProvider"]
    assert graph["inputs"] == [{"name": "pixels", "dtype": "float32", "shape": [-1, 3, 16, 16]}]
    assert set(models["tiny-captioner"]["graphs"]) == {"encoder", "decoder"}


def test_classify_several_images(client: TestClient) -> None:
    files = [
        upload(image_bytes((255, 0, 0)), "red.png"),
        upload(image_bytes((0, 0, 200), "JPEG"), "blue.jpg", "image/jpeg"),
    ]
    response = client.post("/v1/classify-image", files=files, data={"top_k": "2"})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"]) == ("tiny-classifier", 1)
    assert [r["filename"] for r in body["results"]] == ["red.png", "blue.jpg"]
    assert [r["predictions"][0]["label"] for r in body["results"]] == ["red", "blue"]
    first = body["results"][0]["predictions"]
    assert (
        len(first) == 2
        and first[0]["probability"] > 0.99
        and first[0]["probability"] >= first[1]["probability"]
    )


def test_classify_top_k_is_capped_by_the_number_of_labels(client: TestClient) -> None:
    response = client.post(
        "/v1/classify-image", files=[upload(image_bytes((0, 255, 0)))], data={"top_k": "50"}
    )
    predictions = response.json()["results"][0]["predictions"]
    assert predictions[0]["label"] == "green" and len(predictions) == 3
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "data", "media_type"),
    [
        ("red.webp", image_bytes((255, 0, 0), "WEBP", lossless=True), "image/webp"),
        ("red.bmp", image_bytes((255, 0, 0), "BMP"), "image/bmp"),
        ("red.gif", image_bytes((255, 0, 0), "GIF"), "image/gif"),
        ("red-alpha.png", image_bytes((255, 0, 0, 255), mode="RGBA"), "image/png"),
        ("red-palette.png", image_bytes((255, 0, 0), mode="P"), "image/png"),
        ("red.bin", image_bytes((255, 0, 0)), "application/octet-stream"),
    ],
)
def test_classify_accepts_every_supported_format(
    client: TestClient, name: str, data: bytes, media_type: str
) -> None:
    response = client.post("/v1/classify-image", files=[upload(data, name, media_type)], data={"top_k": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["predictions"][0]["label"] == "red"


def test_sentiment_one_and_several(client: TestClient) -> None:
    one = client.post("/v1/sentiment", json={"text": "A great movie!"})
    assert one.status_code == 200
    result = one.json()["results"][0]
    assert result["label"] == "positive"
    assert result["probability"] == pytest.approx(result["probabilities"]["positive"])
    assert set(result["probabilities"]) == {"negative", "positive"}
    several = client.post(
        "/v1/sentiment", json={"texts": ["awful, terrible film", "good good good", "it is"]}
    )
    labels = [r["label"] for r in several.json()["results"]]
    assert labels[:2] == ["negative", "positive"]
    assert several.json()["results"][2]["probability"] == pytest.approx(0.5)
    assert several.json()["model"] == "tiny-sentiment"


def test_caption_greedy_and_beam(client: TestClient) -> None:
    files = [upload(image_bytes((255, 0, 0)), "red.png"), upload(image_bytes((89, 0, 0)), "dark-red.png")]
    greedy = client.post("/v1/caption", files=files, data={"beam_size": "1"}).json()
    beam = client.post("/v1/caption", files=files, data={"beam_size": "3"}).json()
    assert [r["caption"] for r in greedy["results"]] == ["a red square", "a dark square"]
    assert [r["caption"] for r in beam["results"]] == ["a red square", "a red square"]
    assert all(r["score"] <= 0 for r in beam["results"])
    assert beam["model"] == "tiny-captioner"


def test_caption_max_length_truncates(client: TestClient) -> None:
    response = client.post("/v1/caption", files=[upload(image_bytes((0, 255, 0)))], data={"max_length": "2"})
    assert response.json()["results"][0]["caption"] == "a green"


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/classify-image", "/v1/sentiment", "/v1/caption", "/v1/models", "/health/ready"):
        assert path in paths
    assert "413" in paths["/v1/classify-image"]["post"]["responses"]


def test_docs_load_nothing_from_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "https://" not in page.text  # every script, style and icon from this server
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"/docs/assets/{asset}" in page.text
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 404
