"""A version directory's files and their checksums, as ``manifest.json``'s ``files`` records them."""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(version_dir: Path) -> dict[str, str]:
    """Every file of a version directory but the manifest, by name, with its sha256."""
    return {
        p.name: sha256_file(p)
        for p in sorted(version_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }
