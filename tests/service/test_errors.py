"""Every bad input gets its status and the one error body, and the service keeps serving."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

from service.main import create_app
from service.settings import Settings

from .conftest import error, free_port, image_bytes, running_client, upload

LIMITS = {
    "max_upload_bytes": 50_000,
    "max_image_pixels": 100_000,
    "max_batch_items": 3,
    "max_text_chars": 40,
    "max_top_k": 10,
    "max_caption_length": 30,
    "max_beam_size": 4,
}
FORMATS = "send JPEG, PNG, WebP, BMP or GIF"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client with small limits; the repository also holds a version whose graph is corrupt."""
    from tests.model_factory import make_classifier, make_repository

    repo = make_repository(tmp_path_factory.mktemp("models"))
    broken = make_classifier(repo, name="broken-classifier")
    (broken / "model.onnx").write_bytes(b"not onnx")
    with running_client(repo, **LIMITS) as shared:
        yield shared


def classify(
    client: TestClient, *files: tuple[str, tuple[str, bytes, str]], **data: str
) -> tuple[int, object]:
    response = client.post("/v1/classify-image", files=list(files), data=data)
    return response.status_code, response.json()


def test_not_an_image(client: TestClient) -> None:
    assert classify(client, upload(b"hello world", "a.png")) == (
        400,
        error("invalid_image", "a.png: the file is not an image", 400),
    )


def test_empty_file(client: TestClient) -> None:
    assert classify(client, upload(b"", "a.png")) == (
        400,
        error("invalid_image", "a.png: the file is empty", 400),
    )


def test_truncated_image(client: TestClient) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    data = buffer.getvalue()
    assert classify(client, upload(data[: len(data) // 2], "cut.jpg", "image/jpeg")) == (
        400,
        error("invalid_image", "cut.jpg: the image is truncated or corrupt", 400),
    )


def test_unsupported_declared_media_type(client: TestClient) -> None:
    assert classify(client, upload(b"plain text", "notes.txt", "text/plain")) == (
        415,
        error(
            "unsupported_media_type", f"notes.txt: media type 'text/plain' is not supported; {FORMATS}", 415
        ),
    )


def test_unsupported_image_format(client: TestClient) -> None:
    tiff = image_bytes(fmt="TIFF")
    assert classify(client, upload(tiff, "scan.tiff", "application/octet-stream")) == (
        415,
        error("unsupported_media_type", f"scan.tiff: image format TIFF is not supported; {FORMATS}", 415),
    )


def test_upload_over_limit_refused_from_content_length(client: TestClient) -> None:
    big = upload(b"\0" * 60_000, "big.png")
    assert classify(client, big) == (
        413,
        error("payload_too_large", "request body is larger than the limit of 50000 bytes", 413),
    )


def test_upload_over_limit_refused_while_streaming(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they arrive
        yield b"--b\r\nContent-Disposition: form-data; name=files; filename=big.png\r\n\r\n"
        for _ in range(100):
            yield b"\0" * 1000

    response = client.post(
        "/v1/classify-image", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert (response.status_code, response.json()) == (
        413,
        error("payload_too_large", "request body is larger than the limit of 50000 bytes", 413),
    )


def test_decompression_bomb_refused_from_header(client: TestClient) -> None:
    bomb = image_bytes((0, 0, 0), size=(1000, 1000))  # compresses to a few KB, decodes to 3 MB
    assert len(bomb) < LIMITS["max_upload_bytes"]
    assert classify(client, upload(bomb, "bomb.png")) == (
        413,
        error("image_too_large", "bomb.png: image is 1000x1000 pixels, more than the limit of 100000", 413),
    )


def test_too_many_images(client: TestClient) -> None:
    files = [upload(image_bytes(size=(4, 4)), f"{i}.png") for i in range(4)]
    assert classify(client, *files) == (
        413,
        error("too_many_items", "4 images in one request, more than the limit of 3", 413),
    )


def test_top_k_out_of_range(client: TestClient) -> None:
    assert classify(client, upload(image_bytes()), top_k="11") == (
        422,
        error("invalid_input", "top_k must be between 1 and 10, got 11", 422),
    )


def test_no_files_is_a_validation_error(client: TestClient) -> None:
    response = client.post("/v1/classify-image", data={"top_k": "1"})
    assert (response.status_code, response.json()) == (
        422,
        error("validation_error", "body.files: Field required", 422),
    )


def test_unknown_model(client: TestClient) -> None:
    assert classify(client, upload(image_bytes()), model="no-such-model") == (
        404,
        error("model_not_found", "unknown model 'no-such-model'", 404),
    )


def test_model_of_another_task(client: TestClient) -> None:
    assert classify(client, upload(image_bytes()), model="tiny-sentiment") == (
        404,
        error(
            "model_not_found", "model 'tiny-sentiment' is a sentiment model, not image-classification", 404
        ),
    )


def test_model_not_ready(client: TestClient) -> None:
    assert classify(client, upload(image_bytes()), model="broken-classifier") == (
        503,
        error(
            "model_not_ready",
            "model 'broken-classifier' is not ready: model.onnx does not match its sha256 in manifest.json",
            503,
        ),
    )


NOTHING_VISIBLE = "only spaces, control or zero-width characters, or combining marks"


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ({"text": ""}, "empty_text", "text 0 is empty"),
        ({"text": "   "}, "empty_text", "text 0 is empty"),
        ({"texts": []}, "empty_text", "texts must not be empty"),
        *(
            ({"texts": [invisible]}, "empty_text", f"text 0 has nothing visible: {NOTHING_VISIBLE}")
            for invisible in ("\u200b\u200d\ufeff", "\u0000", "\u0301\u0301", "\x01 \u2028\u00a0\u200b")
        ),
        (
            {"texts": ["x" * 41, " "]},
            "text_too_long",
            "text 0 has 41 characters, more than the limit of 40",
        ),
        (
            {"text": "a", "texts": ["b"]},
            "validation_error",
            "body: Value error, give exactly one of 'text' and 'texts'",
        ),
        ({"text": 3}, "validation_error", "body.text: Input should be a valid string"),
        (
            {"text": "good", "colour": "red"},
            "validation_error",
            "body.colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_text(client: TestClient, payload: object, code: str, message: str) -> None:
    response = client.post("/v1/sentiment", json=payload)
    assert (response.status_code, response.json()) == (422, error(code, message, 422))


def test_too_many_texts(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"texts": ["good"] * 4})
    assert (response.status_code, response.json()) == (
        413,
        error("too_many_items", "4 texts in one request, more than the limit of 3", 413),
    )


def test_invalid_json(client: TestClient) -> None:
    response = client.post(
        "/v1/sentiment", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()) == (
        422,
        error("validation_error", "body.1: JSON decode error", 422),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"beam_size": "5"}, "beam_size must be between 1 and 4, got 5"),
        ({"beam_size": "0"}, "beam_size must be between 1 and 4, got 0"),
        ({"max_length": "31"}, "max_length must be between 1 and 30, got 31"),
    ],
)
def test_caption_bounds(client: TestClient, data: dict[str, str], message: str) -> None:
    response = client.post("/v1/caption", files=[upload(image_bytes())], data=data)
    assert (response.status_code, response.json()) == (422, error("invalid_input", message, 422))


def test_unknown_route_and_method(client: TestClient) -> None:
    assert client.get("/v1/nope").json() == error("not_found", "Not Found", 404)
    assert client.get("/v1/sentiment").json() == error("method_not_allowed", "Method Not Allowed", 405)
    assert client.get("/v1/sentiment").headers["allow"] == "POST"


def test_still_serving_after_bad_inputs(client: TestClient) -> None:
    classify(client, upload(b"junk", "junk.png"))
    status, body = classify(client, upload(image_bytes((0, 255, 0))), top_k="1")
    assert status == 200
    assert body["results"][0]["predictions"][0]["label"] == "green"  # type: ignore[index]


def test_text_that_is_not_unicode(client: TestClient) -> None:
    """JSON can spell a lone surrogate ("\\ud800"), which no tokenizer takes (it was a 500); quoted back in
    a message, it is written as its JSON escape."""
    body = b'{"texts": ["bad \\ud800 film"]}'
    response = client.post("/v1/sentiment", content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.json()) == (
        422,
        error("invalid_input", "text 0 is not valid Unicode: a lone surrogate at character 4", 422),
    )
    body = b'{"texts": ["good", "bad \\ud800 film"]}'  # among good texts: its own slot
    response = client.post("/v1/sentiment", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["results"][1] == error(
        "invalid_input", "text 1 is not valid Unicode: a lone surrogate at character 4", 422
    )
    body = b'{"text": "good", "model": "x\\udfff"}'
    response = client.post("/v1/sentiment", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "unknown model 'x\\udfff'"


def test_a_colon_with_no_version_is_no_model(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"text": "good", "model": "tiny-sentiment:"})
    assert (response.status_code, response.json()) == (
        404,
        error("model_not_found", "unknown model 'tiny-sentiment:'", 404),
    )


def test_health_answers_head(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready"):
        response = client.head(path)
        assert (response.status_code, response.content) == (200, b"")


def test_an_unexpected_error_is_a_500_body_and_the_connection_stays_usable(tiny_repo: Path) -> None:
    """A defect (an exception no handler knows) is answered with the 500 error body, and the client's next
    request on the same keep-alive connection is answered: left to Starlette, the server closed the
    connection after the 500, so that next request failed, however valid."""
    app = create_app(Settings(models_dir=tiny_repo))

    @app.get("/defect")
    async def defect() -> None:
        raise RuntimeError("a bug")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rb")
            answers = []
            for path in ("/defect", "/health/live", "/defect"):
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
                status = stream.readline().split()[1]
                headers = {}
                while (line := stream.readline().strip()) != b"":
                    key, _, value = line.partition(b":")
                    headers[key.strip().lower()] = value.strip()
                assert b"connection" not in headers or headers[b"connection"] != b"close"
                answers.append((int(status), json.loads(stream.read(int(headers[b"content-length"])))))
        assert answers == [
            (500, error("internal_error", "internal error: RuntimeError", 500)),
            (200, {"status": "ok", "reasons": []}),
            (500, error("internal_error", "internal error: RuntimeError", 500)),
        ]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
