"""Model repository: verification, skipping broken versions, version choice and readiness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contract.files import sha256_file
from contract.manifest import Manifest
from tests.model_factory import make_classifier

from .conftest import image_bytes, running_client, upload


def models_by_version(client: TestClient) -> dict[tuple[str, int], dict[str, Any]]:
    return {(m["name"], m["version"]): m for m in client.get("/v1/models").json()["models"]}


def rewrite_manifest(version_dir: Path, **changes: Any) -> None:
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_corrupt_version_is_skipped_and_the_others_serve(repo: Path) -> None:
    v2 = make_classifier(repo, version=2)
    (v2 / "model.onnx").write_bytes(b"corrupt")
    sentiment = repo / "tiny-sentiment" / "1"
    (sentiment / "tokenizer.json").unlink()
    with running_client(repo) as client:
        assert client.get("/health/ready").status_code == 200
        listed = models_by_version(client)
        assert listed[("tiny-classifier", 2)]["status"] == "failed"
        assert (
            listed[("tiny-classifier", 2)]["reason"]
            == "model.onnx does not match its sha256 in manifest.json"
        )
        assert listed[("tiny-classifier", 2)]["serving"] is False
        assert listed[("tiny-classifier", 1)]["serving"] is True
        assert listed[("tiny-sentiment", 1)]["reason"] == "tokenizer.json is missing"
        response = client.post("/v1/classify-image", files=[upload(image_bytes((0, 0, 255)))])
        assert (response.json()["model"], response.json()["version"]) == ("tiny-classifier", 1)
        assert response.json()["results"][0]["predictions"][0]["label"] == "blue"
        assert client.post("/v1/caption", files=[upload(image_bytes())]).status_code == 200
        assert (
            client.post("/v1/sentiment", json={"text": "good"}).json()["error"]["code"] == "model_not_found"
        )


def test_each_kind_of_broken_version_has_its_reason(repo: Path) -> None:
    invalid_json = make_classifier(repo, name="bad-json")
    (invalid_json / "manifest.json").write_text("{")
    no_manifest = make_classifier(repo, name="no-manifest")
    (no_manifest / "manifest.json").unlink()
    wrong_name = make_classifier(repo, name="wrong-name")
    rewrite_manifest(wrong_name, name="other-name")
    no_labels = make_classifier(repo, name="no-labels")
    rewrite_manifest(no_labels, labels=None)
    four_labels = make_classifier(repo, name="four-labels")
    rewrite_manifest(four_labels, labels=["red", "green", "blue", "grey"])
    bad_onnx = make_classifier(repo, name="bad-onnx")
    (bad_onnx / "model.onnx").write_bytes(b"not an onnx graph")
    rewrite_manifest(
        bad_onnx,
        files={
            "model.onnx": sha256_file(bad_onnx / "model.onnx"),
            "card.md": sha256_file(bad_onnx / "card.md"),
        },
    )
    with running_client(repo) as client:
        reasons = {name: m["reason"] for (name, _), m in models_by_version(client).items()}
        assert client.get("/health/ready").status_code == 200
    assert reasons["bad-json"].startswith("invalid manifest.json: Invalid JSON")
    assert reasons["no-manifest"] == "manifest.json is missing"
    assert reasons["wrong-name"] == "manifest.json describes other-name/1, not wrong-name/1"
    assert (
        reasons["no-labels"] == "invalid manifest.json: Value error, task image-classification needs labels"
    )
    assert reasons["bad-onnx"].startswith("model.onnx: onnxruntime cannot load it")
    assert reasons["four-labels"] == "the graph's output logits has 3 classes and the manifest 4 labels"
    assert reasons["tiny-classifier"] is None


def test_highest_loadable_version_serves_and_a_version_can_be_pinned(repo: Path) -> None:
    make_classifier(repo, version=3, labels=["r", "g", "b"])
    with running_client(repo) as client:
        latest = client.post("/v1/classify-image", files=[upload(image_bytes((255, 0, 0)))]).json()
        pinned = client.post(
            "/v1/classify-image",
            files=[upload(image_bytes((255, 0, 0)))],
            data={"model": "tiny-classifier:1"},
        ).json()
    assert (latest["version"], latest["results"][0]["predictions"][0]["label"]) == (3, "r")
    assert (pinned["version"], pinned["results"][0]["predictions"][0]["label"]) == (1, "red")


def test_default_model_setting_and_fallback(repo: Path) -> None:
    make_classifier(repo, name="another-classifier", labels=["x", "y", "z"])
    with running_client(repo, default_image_classifier="tiny-classifier") as client:
        assert (
            client.post("/v1/classify-image", files=[upload(image_bytes())]).json()["model"]
            == "tiny-classifier"
        )
    # the default "pets-resnet18" is absent: the first image classifier by name serves
    with running_client(repo) as client:
        assert (
            client.post("/v1/classify-image", files=[upload(image_bytes())]).json()["model"]
            == "another-classifier"
        )


def test_empty_repository_is_ready_with_no_models(tmp_path: Path) -> None:
    with running_client(tmp_path) as client:
        assert client.get("/health/ready").json() == {"status": "ok", "reasons": []}
        assert client.get("/v1/models").json() == {"models": []}
        response = client.post("/v1/sentiment", json={"text": "good"})
        assert (response.status_code, response.json()["error"]["message"]) == (
            404,
            "no sentiment model is loaded",
        )


def test_require_gpu_fails_readiness_when_a_model_runs_on_cpu(tiny_repo: Path) -> None:
    with running_client(tiny_repo, require_gpu=True, enabled_models=["tiny-sentiment"]) as client:
        response = client.get("/health/ready")
        # then the requested providers that cannot be created here, with onnxruntime's reasons
        unavailable = client.get("/v1/models").json()["models"][0]["unavailable_providers"]
        assert (response.status_code, response.json()) == (
            503,
            {
                "status": "not_ready",
                "reasons": [
                    "model tiny-sentiment/1 runs on ['CPUExecutionProvider'], and require_gpu is set",
                    *(f"{name}: {reason}" for name, reason in unavailable.items()),
                ],
            },
        )
        # not ready, but it still answers
        assert client.post("/v1/sentiment", json={"text": "good"}).status_code == 200


def test_an_enabled_model_that_does_not_load_fails_readiness(tiny_repo: Path) -> None:
    with running_client(tiny_repo, enabled_models=["tiny-classifier", "pets-resnet18"]) as client:
        assert client.get("/health/ready").json() == {
            "status": "not_ready",
            "reasons": ["enabled model 'pets-resnet18' has no loadable version"],
        }
        assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["tiny-classifier"]


def test_cpu_only_provider_list(tiny_repo: Path) -> None:
    with running_client(
        tiny_repo, providers=["CPUExecutionProvider"], enabled_models=["tiny-classifier"]
    ) as client:
        (model,) = client.get("/v1/models").json()["models"]
    assert model["requested_providers"] == model["providers"] == ["CPUExecutionProvider"]


def test_a_caption_projection_must_be_named_on_both_sides(per_image_repo: Path) -> None:
    manifest = json.loads((per_image_repo / "tiny-captioner" / "1" / "manifest.json").read_text())
    assert Manifest.model_validate(manifest).caption is not None  # the per-image contract is valid
    del manifest["caption"]["encoder"]["projected"]  # the decoder would wait for a tensor nobody makes
    with pytest.raises(ValueError, match="`projected` both or neither"):
        Manifest.model_validate(manifest)


def test_a_default_model_that_fails_answers_503_and_holds_readiness_back(repo: Path) -> None:
    (repo / "tiny-classifier" / "1" / "model.onnx").write_bytes(b"broken")
    make_classifier(repo, name="other-classifier", labels=["r", "g", "b"])
    with running_client(repo, default_image_classifier="tiny-classifier") as client:
        response = client.post("/v1/classify-image", files=[upload(image_bytes())])
        assert response.status_code == 503  # never the other classifier's digits for cat photos
        assert response.json()["error"]["message"] == (
            "model 'tiny-classifier' is not ready: model.onnx does not match its sha256 in manifest.json"
        )
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == [
            "default model 'tiny-classifier' has no version that serves: model.onnx does not match its "
            "sha256 in manifest.json"
        ]


def test_a_model_in_the_query_string_is_honoured_or_refused(repo: Path) -> None:
    make_classifier(repo, name="other-classifier", labels=["r", "g", "b"])
    with running_client(repo, default_image_classifier="tiny-classifier") as client:
        files = [upload(image_bytes())]
        answer = client.post("/v1/classify-image?model=other-classifier", files=files).json()
        assert answer["model"] == "other-classifier"
        both = client.post(
            "/v1/classify-image?model=other-classifier", files=files, data={"model": "tiny-classifier"}
        )
        assert both.status_code == 422
        assert both.json()["error"]["message"] == (
            "the request names two models: 'tiny-classifier' and, in the query string, 'other-classifier'"
        )
        unknown = client.post("/v1/sentiment?model=nope", json={"text": "good"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")
        caption = client.post("/v1/caption?model=tiny-captioner", files=files)
        assert caption.json()["model"] == "tiny-captioner"
