"""The one manifest (contract.manifest): one model-name rule, and a manifest is written only once it
validates, as given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.manifest import (
    MANIFEST_FORMAT,
    InvalidManifest,
    Manifest,
    is_model_name,
    validate_manifest,
    write_manifest,
)

DIGEST = "0" * 64


def classifier_fields(**changes: object) -> dict[str, object]:
    """A valid image-classification manifest as JSON holds it."""
    tensor = {"name": "pixels", "dtype": "float32", "shape": [-1, 1, 8, 8]}
    logits = {"name": "logits", "dtype": "float32", "shape": [-1, 2]}
    fields: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "name": "tiny",
        "version": 1,
        "task": "image-classification",
        "files": {"model.onnx": DIGEST},
        "graphs": {"model": {"file": "model.onnx", "inputs": [tensor], "outputs": [logits]}},
        "image": {"color_mode": "L", "resize": None, "size": [8, 8], "mean": [0.5], "std": [0.5]},
        "labels": ["a", "b"],
        "output": "logits",
    }
    return {**fields, **changes}


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("digits-cnn", True),
        ("0-model", True),
        ("a", True),
        ("-leading-dash", False),  # training's old rule took it; the service skipped its directory
        ("Upper", False),
        ("under_score", False),
        ("", False),
        ("trailing\n", False),
    ],
)
def test_one_name_rule_for_directories_and_manifests(name: str, valid: bool) -> None:
    assert is_model_name(name) is valid
    if valid:
        assert validate_manifest(classifier_fields(name=name)).name == name
    else:
        with pytest.raises(InvalidManifest) as refused:
            validate_manifest(classifier_fields(name=name))
        assert str(refused.value).startswith("invalid manifest: name: String should match pattern")


def test_a_manifest_is_written_as_given_once_it_validates(tmp_path: Path) -> None:
    fields = classifier_fields(
        metrics={"test": {"accuracy": 0.5, "samples": 10}}, future_field={"kept": True}
    )
    manifest = write_manifest(tmp_path, fields)
    assert isinstance(manifest, Manifest) and manifest.labels == ["a", "b"]
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written == fields  # unknown fields kept, the integer count still an integer
    assert isinstance(written["metrics"]["test"]["samples"], int)
    assert Manifest.read(tmp_path / "manifest.json") == manifest


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"labels": None}, "invalid manifest: Value error, task image-classification needs labels"),
        ({"files": {}}, "files referenced but not listed in files: model.onnx"),
        ({"version": 0}, "invalid manifest: version: Input should be greater than 0"),
        ({"task": "captioning"}, "invalid manifest: task: Input should be"),
    ],
)
def test_an_invalid_manifest_is_refused_and_nothing_is_written(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidManifest) as refused:
        write_manifest(tmp_path, classifier_fields(**changes))
    assert reason in str(refused.value)
    assert not (tmp_path / "manifest.json").exists()
