"""Model version directories (``models/<name>/<version>/``) and the ONNX checks every export runs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contract.files import MANIFEST_NAME, file_hashes

MANIFEST_FORMAT = "modelserve.manifest/v1"
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")


class ParityError(AssertionError):
    """onnxruntime and PyTorch disagree beyond tolerance: the export is refused."""


def _write_manifest(version_dir: Path, manifest: dict) -> None:
    (version_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def next_version(model_dir: Path) -> int:
    """One more than the highest integer version in ``model_dir`` (1 when there is none)."""
    existing = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(existing, default=0) + 1


def write_version(
    out_root: Path,
    name: str,
    manifest: dict,
    files: dict[str, Path | bytes | str],
    version: int | None = None,
) -> Path:
    """Write ``out_root/name/version/`` with ``files`` and a complete manifest; return its path.

    ``files`` maps file names to a path to copy, bytes, or text. ``format``, ``name``, ``version``,
    ``created`` and ``files`` (sha256 of every file) are filled in here. The directory is assembled under
    a temporary name and renamed, so a reader never sees half a version.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"model name {name!r} must use lowercase letters, digits and '-'")
    model_dir = Path(out_root) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else version
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; pick another --version")
    staging = model_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for file_name, content in files.items():
        target = staging / file_name
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    full = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **{k: v for k, v in manifest.items() if k not in ("format", "name", "version", "created")},
    }
    full["files"] = file_hashes(staging)
    _write_manifest(staging, full)
    staging.rename(final)
    return final


def read_manifest(version_dir: Path) -> dict:
    """Read ``manifest.json`` of a version directory, with a clear error when it is missing."""
    path = Path(version_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{version_dir} is not a model version directory (no {MANIFEST_NAME})")
    return json.loads(path.read_text())


def update_manifest(version_dir: Path, **changes: object) -> None:
    """Replace top-level manifest fields and recompute the sha256 of every file in the version."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    manifest.update(changes)
    manifest["files"] = file_hashes(version_dir)
    _write_manifest(version_dir, manifest)


def check_onnx(path: Path) -> None:
    """Run ``onnx.checker`` on an exported graph (raises on an invalid model)."""
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def onnx_parity(
    onnx_path: Path,
    reference: Callable[..., Sequence[np.ndarray]],
    feeds: list[dict[str, np.ndarray]],
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> float:
    """Compare onnxruntime with ``reference`` on each feed; return the largest absolute difference.

    ``reference`` takes the feed's arrays as keyword arguments and returns the outputs in graph order.
    Raises :class:`ParityError` when any output differs beyond ``atol + rtol * |reference|``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for feed in feeds:
        got = session.run(None, feed)
        expected = reference(**feed)
        for name, g, e in zip([o.name for o in session.get_outputs()], got, expected, strict=True):
            if g.shape != e.shape:
                raise ParityError(f"{onnx_path.name}: output {name} has shape {g.shape}, PyTorch {e.shape}")
            diff = np.abs(g - e)
            worst = max(worst, float(diff.max(initial=0.0)))
            if np.any(diff > atol + rtol * np.abs(e)):
                shapes = {k: v.shape for k, v in feed.items()}
                raise ParityError(
                    f"{onnx_path.name}: output {name} differs from PyTorch by up to "
                    f"{diff.max():.3g} (atol {atol}, rtol {rtol}) for inputs {shapes}"
                )
    return worst
