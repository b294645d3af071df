"""Where a model came from: dataset and licence, command line, hardware, git commit."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import torch

# Licences of the datasets users are likely to train on, keyed by folder name (see shared/data/README.md).
KNOWN_LICENCES = {
    "mnist": "CC BY-SA 3.0 (LeCun, Cortes, Burges)",
    "imdb": "research use; cite Maas et al., ACL 2011 (Large Movie Review Dataset)",
    "aclimdb": "research use; cite Maas et al., ACL 2011 (Large Movie Review Dataset)",
    "cifar10-subset": "cite Krizhevsky 2009 (CIFAR-10)",
    "cifar10": "cite Krizhevsky 2009 (CIFAR-10)",
    "cats_vs_dogs": "Asirra / Kaggle Dogs vs. Cats: non-commercial research use",
    "flickr8k": "research use; cite Hodosh, Young, Hockenmaier 2013",
}


def dataset_info(path: Path) -> dict[str, str]:
    """Path, name and (when known) licence of a dataset folder or file; a torchvision root (holding
    ``MNIST/raw``) is MNIST."""
    path = Path(path).resolve()
    torchvision_root = ["MNIST"] if (path / "MNIST" / "raw").is_dir() else []
    for part in (*torchvision_root, path.name, *(p.name for p in path.parents)):
        key = part.lower().removesuffix(".csv.gz").removesuffix(".csv")
        if key in KNOWN_LICENCES:
            return {"path": str(path), "name": part, "licence": KNOWN_LICENCES[key]}
    return {"path": str(path), "name": path.name, "licence": "unknown: check the dataset's own licence"}


def hardware(device: torch.device) -> str:
    """One line naming the device, e.g. 'cpu (2 threads, x86_64)' or the CUDA device name."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({torch.get_num_threads()} threads, {cpu})"


def git_commit() -> str | None:
    """The project's current git commit, or None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def command_line() -> str:
    """The command that started this process, as ``python -m training ...``."""
    return " ".join(["python -m training", *sys.argv[1:]])


def provenance(data: Path, *, seed: int, device: torch.device, initialisation: str, **extra: object) -> dict:
    """The provenance block stored in a checkpoint and copied into the manifest on export."""
    return {
        "dataset": dataset_info(data),
        "seed": seed,
        "command": command_line(),
        "hardware": hardware(device),
        "initialisation": initialisation,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        **extra,
    }
