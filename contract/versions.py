"""The repository's directory rules: a version lives in ``<model name>/<version>/`` (the name as
``contract.manifest`` allows it, the version a positive integer); how versions are found; and how one is
written, whole and valid or not at all."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import file_hashes
from .manifest import MANIFEST_FORMAT, InvalidManifest, is_model_name, write_manifest

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²", which int() refuses


@dataclass(frozen=True)
class VersionDir:
    """A ``<name>/<version>/`` directory of the repository."""

    name: str
    version: int
    path: Path


def _versions(model_dir: Path) -> Iterator[tuple[int, Path]]:
    """The version directories of one model's directory, with their numbers, in no particular order."""
    if not model_dir.is_dir():
        return
    for path in model_dir.iterdir():
        if path.is_dir() and _DIGITS.fullmatch(path.name) and int(path.name) > 0:
            yield int(path.name), path


def discover(models_dir: Path) -> list[VersionDir]:
    """Every ``<name>/<version>/`` with a valid name and an integer version, sorted by name and version.
    A missing repository directory holds no models."""
    if not models_dir.is_dir():
        return []
    found = [
        VersionDir(model_dir.name, version, path)
        for model_dir in models_dir.iterdir()
        if model_dir.is_dir() and is_model_name(model_dir.name)
        for version, path in _versions(model_dir)
    ]
    return sorted(found, key=lambda v: (v.name, v.version))


def next_version(model_dir: Path) -> int:
    """One more than the highest version in ``model_dir`` (1 when there is none)."""
    return max((version for version, _ in _versions(model_dir)), default=0) + 1


def write_version(
    out_root: Path,
    name: str,
    manifest: Mapping[str, Any],
    files: Mapping[str, Path | bytes | str],
    version: int | None = None,
) -> Path:
    """Write ``out_root/name/version/`` with ``files`` and a complete manifest; return its path.

    ``files`` maps file names to a path to copy, bytes, or text. ``format``, ``name``, ``version``,
    ``created`` and ``files`` (sha256 of every file) are filled in here. The directory is assembled under
    a temporary name and renamed only once its manifest validates (:class:`~contract.manifest.Manifest`,
    as the service reads it), so a reader never sees half a version and an invalid one is refused here,
    not at load: ``ValueError`` (:class:`~contract.manifest.InvalidManifest` for the manifest), with
    nothing left behind.
    """
    if not is_model_name(name):
        raise ValueError(
            f"model name {name!r} must be lowercase letters, digits and '-', not starting with '-'"
        )
    model_dir = Path(out_root) / name
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; pick another --version")
    created = [d for d in (model_dir, *model_dir.parents) if not d.exists()]  # deepest first
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for file_name, content in files.items():
            target = staging / file_name
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        fixed = ("format", "name", "version", "created", "files")
        write_manifest(
            staging,
            {
                "format": MANIFEST_FORMAT,
                "name": name,
                "version": version,
                "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                **{key: value for key, value in manifest.items() if key not in fixed},
                "files": file_hashes(staging),
            },
        )
    except InvalidManifest as exc:
        _discard(staging, created)
        raise InvalidManifest(f"{name}/{version} was not written: {exc}") from exc
    except BaseException:
        _discard(staging, created)
        raise
    staging.rename(final)
    return final


def _discard(staging: Path, created: list[Path]) -> None:
    """Remove a version that was not written, and the directories made for it (deepest first) if empty."""
    shutil.rmtree(staging, ignore_errors=True)
    for directory in created:
        with contextlib.suppress(OSError):
            directory.rmdir()
