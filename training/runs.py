"""Run directories: seeds, devices, configs, metrics, curves, confusion matrices and checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.data import DataError

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def pick_device(name: str = "auto") -> torch.device:
    """Return ``cuda`` when available for ``"auto"``, else the named device; ``cuda`` where torch sees no
    GPU is a ``DataError`` (a one-line message, exit status 2), not torch's traceback at the first copy."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise DataError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"--device {name}: torch sees no CUDA GPU here; use --device cpu or auto")
    return torch.device(name)


def make_run_dir(root: Path, name: str) -> Path:
    """Create and return ``root/<name>-<timestamp>`` (a numeric suffix avoids collisions)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(root) / f"{name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(root) / f"{name}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


@contextlib.contextmanager
def removed_on_early_failure(run_dir: Path) -> Iterator[Path]:
    """Run the block that trains into ``run_dir``; when it fails (an exception or Ctrl-C) while ``run_dir``
    holds nothing but its ``config.json`` (a missing dataset, a failed download, an error in the first
    epoch), remove ``run_dir`` so no empty run is left to be mistaken for a result. A failed run that wrote
    anything else (a tokenizer, a checkpoint, a log) is kept as it is. The error itself propagates."""
    try:
        yield run_dir
    except BaseException:
        with contextlib.suppress(OSError):  # a directory left behind must not hide the run's own error
            if [p.name for p in Path(run_dir).iterdir()] == [CONFIG_NAME]:
                (Path(run_dir) / CONFIG_NAME).unlink()
                Path(run_dir).rmdir()  # refuses, keeping the directory, if anything appeared meanwhile
        raise


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_config(run_dir: Path, config: dict) -> None:
    """Write the resolved configuration of a run to ``config.json``."""
    _write_json(Path(run_dir) / CONFIG_NAME, config)


def save_metrics(run_dir: Path, metrics: dict) -> None:
    """Write the metrics of a run to ``metrics.json``."""
    _write_json(Path(run_dir) / "metrics.json", metrics)


def plot_curves(run_dir: Path, history: dict[str, list[float]]) -> list[Path]:
    """Plot one PNG per metric, train against val.

    ``history`` maps keys such as ``train_loss`` and ``val_loss`` to per-epoch values; keys sharing the
    part after the first ``_`` go on one plot named ``curve-<metric>.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[float]]] = {}
    for key, values in history.items():
        split, _, metric = key.partition("_")
        groups.setdefault(metric or split, {})[split if metric else key] = values
    paths = []
    for metric, series in groups.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for split, values in series.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(run_dir) / f"curve-{metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_confusion(path: Path, matrix: Any, labels: list[str]) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) with counts to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    size = max(3.0, 0.5 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(int(value)),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_checkpoint(
    path: Path, *, kind: str, model: nn.Module | dict[str, torch.Tensor], model_args: dict, extra: dict
) -> None:
    """Save ``{"kind", "model_args", "state_dict", **extra}``: enough to rebuild the net without a script.
    ``model`` is the network or its state dict (``python -m training average`` has no network)."""
    weights = model.state_dict() if isinstance(model, nn.Module) else model
    state = {k: v.detach().cpu() for k, v in weights.items()}
    torch.save({"kind": kind, "model_args": model_args, "state_dict": state, **extra}, path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    path = find_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "kind" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a project checkpoint (needs 'kind', 'model_args', 'state_dict')")
    return checkpoint


def find_checkpoint(run_dir_or_file: Path) -> Path:
    """Return ``run_dir/checkpoint.pt`` for a run directory, or the file itself."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path
