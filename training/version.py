"""Training's side of model version directories (``contract.versions`` writes them): the manifest as a
dict for the modules that edit it, and the ONNX checks every export runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from contract.files import MANIFEST_NAME, file_hashes
from contract.manifest import write_manifest


class UnsuitableVersion(ValueError):
    """A command was given a model version it cannot work on (the wrong task or output); the message says
    what it needs."""


class ParityError(AssertionError):
    """onnxruntime and PyTorch disagree beyond tolerance: the export is refused."""


def read_manifest(version_dir: Path) -> dict:
    """Read ``manifest.json`` of a version directory, with a clear error when it is missing."""
    path = Path(version_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{version_dir} is not a model version directory (no {MANIFEST_NAME})")
    return json.loads(path.read_text())


def update_manifest(version_dir: Path, **changes: object) -> None:
    """Replace top-level manifest fields and recompute the sha256 of every file in the version; the
    manifest is validated before it is written (``contract.manifest.write_manifest``)."""
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    manifest.update(changes)
    manifest["files"] = file_hashes(version_dir)
    write_manifest(version_dir, manifest)


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


def write_successor(
    version_dir: Path,
    manifest: dict,
    graph: bytes,
    step: tuple[str, dict],
    description: str,
    out_root: Path | None = None,
    **changes: object,
) -> Path:
    """Write ``manifest``'s version (read from ``version_dir``) with its graph replaced by ``graph`` as the
    next version of the same model: the other files are copied, except the card and the evaluation plots,
    which belong to the old version; ``step`` (a provenance key and what it records) says how the new one
    was made; the old version's metrics are kept in the provenance, beside any it had kept, and the new
    one starts unevaluated. ``changes`` replace top-level manifest fields. Returns the new directory,
    carded."""
    from contract.versions import write_version
    from training import card

    entry = manifest["graphs"]["model"]
    files: dict[str, Path | bytes | str] = {
        name: Path(version_dir) / name
        for name in manifest["files"]
        if name not in (entry["file"], "card.md") and not name.startswith(("confusion-", "reliability-"))
    }
    files[entry["file"]] = graph
    provenance = dict(manifest.get("provenance", {}))
    provenance.pop("evaluation", None)
    provenance[step[0]] = step[1]
    previous = {f"v{manifest['version']} {k}": v for k, v in manifest.get("metrics", {}).items()}
    if previous:
        provenance["superseded_version_metrics"] = {
            **provenance.get("superseded_version_metrics", {}),
            **previous,
        }
    new = {
        key: value
        for key, value in manifest.items()
        if key not in ("name", "version", "files", "created", "format", "metrics")
    }
    new.update(changes, description=description, metrics={}, provenance=provenance)
    out_root = Path(out_root) if out_root else Path(version_dir).parent.parent
    new_dir = write_version(out_root, manifest["name"], new, files, None)
    (new_dir / "card.md").write_text(card.render(read_manifest(new_dir), new_dir))
    update_manifest(new_dir)
    return new_dir
