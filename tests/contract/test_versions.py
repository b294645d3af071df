"""The repository's directory rules (contract.versions): which directories are versions, the next version
number, and a version written whole and valid or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.files import sha256_file
from contract.manifest import InvalidManifest, Manifest
from contract.versions import VersionDir, discover, next_version, write_version

GRAPH = {
    "file": "model.onnx",
    "inputs": [{"name": "pixels", "dtype": "float32", "shape": [-1, 1, 8, 8]}],
    "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 2]}],
}
IMAGE = {"color_mode": "L", "resize": None, "size": [8, 8], "mean": [0.5], "std": [0.5], "invert": False}


def classifier(**changes: object) -> dict[str, object]:
    """What an export passes write_version for an image classifier: everything but the filled-in fields."""
    fields: dict[str, object] = {
        "task": "image-classification",
        "description": "a test classifier",
        "graphs": {"model": GRAPH},
        "image": IMAGE,
        "labels": ["a", "b"],
        "output": "logits",
        "metrics": {},
        "provenance": {"command": "test"},
    }
    return {key: value for key, value in {**fields, **changes}.items() if value is not None}


FILES = {"model.onnx": b"graph bytes", "card.md": "# card\n"}


def test_versions_are_integer_directories_of_named_models(tmp_path: Path) -> None:
    for directory in ("good/1", "good/3", "good/0", "good/²", "good/x", "good/.staging-4", "-bad/1", "Bad/1"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "good" / "5").write_text("a file, not a version")
    assert discover(tmp_path) == [
        VersionDir("good", 1, tmp_path / "good" / "1"),
        VersionDir("good", 3, tmp_path / "good" / "3"),
    ]
    assert next_version(tmp_path / "good") == 4
    assert next_version(tmp_path / "absent") == 1
    assert discover(tmp_path / "absent") == []


def test_a_version_is_written_whole_with_its_checksums(tmp_path: Path) -> None:
    version_dir = write_version(tmp_path / "models", "tiny", classifier(), FILES)
    assert version_dir == tmp_path / "models" / "tiny" / "1"
    assert sorted(p.name for p in version_dir.parent.iterdir()) == ["1"]  # no staging directory left
    manifest = Manifest.read(version_dir / "manifest.json")
    assert (manifest.format, manifest.name, manifest.version) == ("modelserve.manifest/v1", "tiny", 1)
    assert manifest.created.endswith("Z") and manifest.provenance == {"command": "test"}
    assert manifest.files == {name: sha256_file(version_dir / name) for name in FILES}
    assert write_version(tmp_path / "models", "tiny", classifier(), FILES).name == "2"
    with pytest.raises(FileExistsError, match="already exists"):
        write_version(tmp_path / "models", "tiny", classifier(), FILES, version=2)


@pytest.mark.parametrize(
    ("name", "fields", "error", "message"),
    [
        ("tiny", classifier(labels=None), InvalidManifest, "task image-classification needs labels"),
        ("tiny", classifier(image=None), InvalidManifest, "task image-classification needs image"),
        ("tiny", classifier(graphs={"encoder": GRAPH}), InvalidManifest, "needs graphs ['model']"),
        ("-tiny", classifier(), ValueError, "model name '-tiny' must be lowercase letters, digits and '-'"),
        ("Tiny", classifier(), ValueError, "model name 'Tiny' must be lowercase letters, digits and '-'"),
    ],
)
def test_an_invalid_version_is_refused_at_export_and_nothing_is_left(
    tmp_path: Path, name: str, fields: dict[str, object], error: type[Exception], message: str
) -> None:
    models = tmp_path / "models"
    with pytest.raises(error) as refused:
        write_version(models, name, fields, FILES)
    assert message in str(refused.value)
    assert not models.exists()  # not even the directories made for it
    # beside a version that exists, the refused one leaves nothing either
    write_version(models, "tiny", classifier(), FILES)
    with pytest.raises(error):
        write_version(models, name, fields, FILES)
    assert [p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_dir()] == ["tiny", "tiny/1"]


def test_the_refusal_names_the_version_and_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest) as refused:
        write_version(tmp_path, "tiny", classifier(labels=None), FILES, version=3)
    assert str(refused.value) == (
        "tiny/3 was not written: invalid manifest: Value error, task image-classification needs labels"
    )
