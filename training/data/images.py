"""Image datasets: MNIST in torchvision's layout and any ImageFolder tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset, Subset
from torchvision import datasets

from training.data import DataError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
VAL_SPLITS = ("val", "validation", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def load_mnist(root: Path, train: bool, transform: Callable | None, download: bool = False) -> Dataset:
    """MNIST from ``root/MNIST/raw`` (``root`` may also be the MNIST folder itself); download if asked."""
    root = Path(root)
    if root.name == "MNIST":
        root = root.parent
    raw = root / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).exists() and not (raw / f"{f}.gz").exists()]
    if missing and not download:
        raise DataError(f"MNIST not found: {raw} lacks {', '.join(missing)} (torchvision's raw layout); "
                        "pass --download to fetch it")
    try:
        return datasets.MNIST(str(root), train=train, transform=transform, download=download)
    except (RuntimeError, ValueError, OSError, AssertionError) as exc:
        raise DataError(f"MNIST under {raw} is malformed: {exc}") from exc


def find_split(root: Path, split: str) -> Path:
    """``root/split``, where ``split="val"`` also accepts ``validation`` or ``test``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    # the named split first, then the other spellings of a held-out split
    candidates = (split, *(c for c in VAL_SPLITS if c != split)) if split in VAL_SPLITS else (split,)
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise DataError(f"{root} has no '{split}' split folder (looked for {', '.join(candidates)}; "
                    f"found: {', '.join(present) or 'nothing'}); expected <root>/<split>/<class>/<image>")


def load_image_folder(root: Path, split: str, transform: Callable | None) -> datasets.ImageFolder:
    """An ImageFolder tree ``root/<split>/<class>/*.<image>``, checked for at least one image per class."""
    folder = find_split(root, split)
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder} has no class folders; expected {folder}/<class>/<image files>")
    empty = [c.name for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in c.iterdir())]
    if empty:
        raise DataError(f"{folder}: class folders without images ({', '.join(empty)}); "
                        f"supported suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}")
    return datasets.ImageFolder(str(folder), transform=transform)


def limit(dataset: Dataset, count: int, seed: int = 0) -> Dataset:
    """A fixed random subset of ``count`` samples (all of them when ``count`` is 0 or larger)."""
    import torch

    if not count or count >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    return Subset(dataset, indices.tolist())
