"""Multi-item /v1 requests answer every item: a bad item gets its error in its own slot, the others their
results; a request none of whose items can be answered fails as a whole; /v2 keeps whole-request errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from .conftest import error, image_bytes, running_client, upload

LIMITS = {"max_image_pixels": 10_000, "max_batch_items": 4, "max_text_chars": 2_000}


@pytest.fixture(scope="module")
def client(tiny_repo: Path) -> Iterator[TestClient]:
    with running_client(tiny_repo, **LIMITS) as shared:
        yield shared


def test_a_bad_image_among_good_ones_gets_its_own_error(client: TestClient) -> None:
    files = [
        upload(image_bytes((255, 0, 0)), "red.png"),
        upload(b"not an image", "broken.png"),
        upload(image_bytes((0, 0, 200), size=(200, 100)), "huge.png"),
        upload(image_bytes((0, 0, 200), "JPEG"), "blue.jpg", "image/jpeg"),
    ]
    response = client.post("/v1/classify-image", files=files, data={"top_k": "1"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["red.png", "broken.png", "huge.png", "blue.jpg"]
    assert results[0]["predictions"][0]["label"] == "red"
    assert results[1] == {
        "filename": "broken.png",
        **error("invalid_image", "broken.png: the file is not an image", 400),
    }
    assert results[2] == {
        "filename": "huge.png",
        **error("image_too_large", "huge.png: image is 200x100 pixels, more than the limit of 10000", 413),
    }
    assert results[3]["predictions"][0]["label"] == "blue"


def test_an_unsupported_media_type_is_an_error(client: TestClient) -> None:
    files = [upload(image_bytes(), "a.tiff", "image/tiff"), upload(image_bytes(), "b.png")]
    results = client.post("/v1/classify-image", files=files).json()["results"]
    assert results[0]["error"]["code"] == "unsupported_media_type"
    assert results[1]["predictions"][0]["label"] == "red"


def test_a_request_with_no_answerable_image_fails_with_the_first_error(client: TestClient) -> None:
    files = [upload(b"", "empty.png"), upload(b"junk", "junk.png")]
    response = client.post("/v1/classify-image", files=files)
    assert (response.status_code, response.json()) == (
        400,
        error("invalid_image", "empty.png: the file is empty", 400),
    )


def test_request_level_faults_stay_whole_request_errors(client: TestClient) -> None:
    files = [upload(image_bytes(), f"{i}.png") for i in range(5)]
    response = client.post("/v1/classify-image", files=files)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_items"
    response = client.post("/v1/classify-image", files=[upload(b"junk")], data={"model": "nope"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")


def test_captions_answer_the_good_images(client: TestClient) -> None:
    files = [upload(b"junk", "junk.png"), upload(image_bytes((255, 0, 0)), "red.png")]
    response = client.post("/v1/caption", files=files, data={"beam_size": "1"})
    assert response.status_code == 200
    junk, red = response.json()["results"]
    assert junk == {
        "filename": "junk.png",
        **error("invalid_image", "junk.png: the file is not an image", 400),
    }
    assert red["filename"] == "red.png" and "red" in red["caption"]


def test_a_bad_text_among_good_ones_gets_its_own_error(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"texts": ["good film", " ", "x" * 2_001, "awful"]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r.get("label") for r in results] == ["positive", None, None, "negative"]
    assert results[1] == error("empty_text", "text 1 is empty", 422)
    assert results[2] == error(
        "text_too_long", "text 2 has 2001 characters, more than the limit of 2000", 422
    )
    assert [r.get("truncated") for r in results] == [False, None, None, False]


def test_a_text_longer_than_the_window_is_read_up_to_it(client: TestClient) -> None:
    # tiny-sentiment reads 32 tokens: 31 good words and 1 bad, of 71 (the whole text is negative)
    text = "good " * 31 + "bad " * 40
    result = client.post("/v1/sentiment", json={"text": text}).json()["results"][0]
    assert (result["label"], result["truncated"]) == ("positive", True)
    exact = client.post("/v1/sentiment", json={"text": "good " * 32}).json()["results"][0]
    assert exact["truncated"] is False


def test_v2_keeps_whole_request_errors(client: TestClient) -> None:
    good = base64.b64encode(image_bytes()).decode()
    bad = base64.b64encode(b"junk").decode()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [good, bad]}]}
    response = client.post("/v2/models/tiny-classifier/infer", json=body)
    assert (response.status_code, response.json()) == (400, {"error": "image 1: the file is not an image"})
    texts = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["good", " "]}]}
    response = client.post("/v2/models/tiny-sentiment/infer", json=texts)
    assert (response.status_code, response.json()) == (400, {"error": "text 1 is empty"})


def test_openapi_shows_both_shapes(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for response, answer, failure in (
        ("ClassifyImageResponse", "ImageClassification", "ImageError"),
        ("CaptionResponse", "Caption", "ImageError"),
        ("SentimentResponse", "SentimentResult", "TextError"),
    ):
        items = schemas[response]["properties"]["results"]["items"]
        assert {ref["$ref"].rsplit("/", 1)[1] for ref in items["anyOf"]} == {answer, failure}
    assert "truncated" in schemas["SentimentResult"]["required"]
