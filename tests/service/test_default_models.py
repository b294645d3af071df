"""The default models shipped in models/: what a new user gets from the README's run command."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from .conftest import ROOT, running_client, upload

SHIPPED = {
    "digits-cnn": "image-classification",
    "sentiment-lstm": "sentiment",
    "pets-resnet18": "image-classification",
    "imagenet-lite0": "image-classification",
    "pets-lite2": "image-classification",
    "captioner": "image-captioning",
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The service on the repository's own models/, default settings."""
    with running_client(ROOT / "models") as shared:
        yield shared


def _encoded(image: Image.Image, fmt: str = "PNG", **save: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _photo(pixels: Any, filename: str) -> tuple[str, tuple[str, bytes, str]]:
    """A ``files`` part holding an RGB array as a JPEG."""
    return upload(_encoded(Image.fromarray(pixels), "JPEG", quality=90), filename, "image/jpeg")


def test_the_defaults_load_and_carry_their_cards(client: TestClient) -> None:
    assert client.get("/health/ready").status_code == 200
    served = {m["name"]: m for m in client.get("/v1/models").json()["models"] if m["serving"]}
    assert {name: served[name]["task"] for name in SHIPPED} == SHIPPED
    assert all(served[name]["status"] == "ready" for name in SHIPPED)
    for name in SHIPPED:
        card = (ROOT / "models" / name / str(served[name]["version"]) / "card.md").read_text()
        assert "python -m training" in card and "## Known limits" in card


def test_a_drawn_one_is_a_one(client: TestClient) -> None:
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(14, 5), (14, 23)], fill=255, width=3)  # MNIST style: light on dark
    response = client.post(
        "/v1/classify-image", data={"model": "digits-cnn"}, files=[upload(_encoded(image), "one.png")]
    )
    assert response.json()["results"][0]["predictions"][0]["label"] == "1"


def test_everyday_photos_get_meaningful_answers_from_the_default_classifier(client: TestClient) -> None:
    from skimage import data

    photos = [_photo(data.chelsea(), "chelsea.jpg"), _photo(data.coffee(), "coffee.jpg")]
    body = client.post("/v1/classify-image", files=photos).json()
    assert body["model"] == "imagenet-lite0"
    cat, coffee = (result["predictions"][0]["label"] for result in body["results"])
    assert cat in {"Egyptian cat", "tabby, tabby cat", "tiger cat"}, cat
    assert coffee in {"espresso", "cup", "coffee mug"}, coffee


@pytest.mark.parametrize("model", ["pets-lite2", "pets-resnet18"])
def test_a_photo_of_a_cat_is_a_cat_by_the_pets_classifiers(client: TestClient, model: str) -> None:
    from skimage import data

    photo = [_photo(data.chelsea(), "chelsea.jpg")]
    body = client.post("/v1/classify-image", data={"model": model}, files=photo).json()
    assert body["model"] == model
    assert body["results"][0]["predictions"][0]["label"] == "cats"


def test_the_default_captioner_writes_a_caption(client: TestClient) -> None:
    from skimage import data

    photos = [_photo(data.chelsea(), "chelsea.jpg"), _photo(data.astronaut(), "astronaut.jpg")]
    body = client.post("/v1/caption", files=photos).json()
    assert body["model"] == "captioner"
    for result in body["results"]:
        words = result["caption"].split()
        assert 2 <= len(words) <= 20 and all(w.isalpha() for w in words), result
        assert result["score"] < 0


def test_sentiment_of_clear_reviews(client: TestClient) -> None:
    texts = [
        "A wonderful, moving film with brilliant acting. I loved every minute of it.",
        "Dull, boring and badly acted: a complete waste of time. The worst film this year.",
    ]
    body = client.post("/v1/sentiment", json={"texts": texts}).json()
    assert body["model"] == "sentiment-lstm"
    assert [r["label"] for r in body["results"]] == ["positive", "negative"]
