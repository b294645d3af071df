"""Where the naive server finds a model's training checkpoint (it serves the same weights as the service,
and the repository holds only the ONNX graphs)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_NAME = "checkpoint.pt"  # a run directory's checkpoint (training/runs.py)
# the models whose network ``bench.random_models --like`` rebuilds from their repository version alone (a
# captioner's encoder and vocabulary are in its training checkpoint only)
REBUILDABLE = ("pets-resnet18", "sentiment-lstm")


def naive_checkpoint(name: str, named: object, checkpoints: Path | None = None) -> Path | None:
    """Model ``name``'s checkpoint: ``checkpoints/<name>.pt`` when a folder of checkpoints is given (e.g.
    on a machine the training runs never reached), else ``named``, its manifest's
    ``provenance.checkpoint`` (a run directory or a file, from the project root). None when that names
    nothing or is not there."""
    if checkpoints is not None:
        path = checkpoints / f"{name}.pt"
        return path if path.is_file() else None
    if not named:
        return None
    path = ROOT / str(named)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    return path if path.is_file() else None
