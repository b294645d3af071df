"""The model repository on disk: discovery of ``<name>/<version>/`` and verified loading of one version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from contract.files import sha256_file
from contract.manifest import Manifest, first_error, is_model_name

from .batching import BatchConfig
from .runtimes import RUNTIMES, Runtime, RuntimeLoadError
from .settings import Settings


@dataclass(frozen=True)
class VersionDir:
    """A ``<name>/<version>/`` directory of the repository."""

    name: str
    version: int
    path: Path


def discover(models_dir: Path) -> list[VersionDir]:
    """Every ``<name>/<version>/`` with a valid name and an integer version, sorted by name and version.
    A missing repository directory holds no models."""
    if not models_dir.is_dir():
        return []
    found = []
    for model_dir in models_dir.iterdir():
        if not model_dir.is_dir() or not is_model_name(model_dir.name):
            continue
        for version_dir in model_dir.iterdir():
            if version_dir.is_dir() and version_dir.name.isdigit() and int(version_dir.name) > 0:
                found.append(VersionDir(model_dir.name, int(version_dir.name), version_dir))
    return sorted(found, key=lambda v: (v.name, v.version))


def read_manifest(version: VersionDir) -> Manifest:
    """Read and validate a version's manifest, and check it names its own directory."""
    path = version.path / "manifest.json"
    try:
        manifest = Manifest.read(path)
    except FileNotFoundError as exc:
        raise RuntimeLoadError("manifest.json is missing") from exc
    except ValidationError as exc:
        raise RuntimeLoadError(f"invalid manifest.json: {first_error(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise RuntimeLoadError(f"unreadable manifest.json: {exc}") from exc
    if (manifest.name, manifest.version) != (version.name, version.version):
        raise RuntimeLoadError(
            f"manifest.json describes {manifest.name}/{manifest.version}, "
            f"not {version.name}/{version.version}"
        )
    return manifest


def verify_files(manifest: Manifest, directory: Path) -> None:
    """Every file listed in the manifest exists and has its recorded sha256."""
    for filename, expected in sorted(manifest.files.items()):
        path = directory / filename
        if not path.is_file():
            raise RuntimeLoadError(f"{filename} is missing")
        if sha256_file(path) != expected:
            raise RuntimeLoadError(f"{filename} does not match its sha256 in manifest.json")


def load_version(manifest: Manifest, directory: Path, settings: Settings) -> Runtime:
    """Verify and load a version whose manifest was read, then warm it up. Raises ``RuntimeLoadError``
    with the reason when the version cannot be served."""
    verify_files(manifest, directory)
    runtime = RUNTIMES[manifest.task](manifest, directory, settings)
    try:
        runtime.load()
    except RuntimeLoadError:
        raise
    except Exception as exc:  # a tokenizer or graph that does not load is a reason, not a crash
        raise RuntimeLoadError(f"cannot load: {type(exc).__name__}: {exc}") from exc
    try:
        runtime.warmup(BatchConfig.for_model(settings, manifest.name).warmup_sizes())
    except Exception as exc:
        runtime.close()
        raise RuntimeLoadError(f"warm-up inference failed: {type(exc).__name__}: {exc}") from exc
    return runtime
