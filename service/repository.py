"""Verified loading of one version of the model repository (``contract.versions`` finds them): its
manifest read, its files checked, its runtime loaded and warmed, or the reason why not."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from contract.files import sha256_file
from contract.manifest import Manifest, first_error
from contract.versions import VersionDir

from .batching import BatchConfig
from .runtimes import RUNTIMES, Runtime, RuntimeLoadError
from .settings import Settings


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
