"""Image datasets: MNIST in torchvision's layout and any ImageFolder tree."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from training.data import DataError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
VAL_SPLITS = ("val", "validation", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _read_idx(raw: Path, stem: str, ndim: int) -> np.ndarray:
    """Read an IDX file (``stem`` or ``stem.gz``): the big-endian uint8 arrays MNIST ships as."""
    path = raw / stem if (raw / stem).exists() else raw / f"{stem}.gz"
    try:
        data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DataError(f"MNIST file {path} is unreadable: {exc}") from exc
    if len(data) < 4 + 4 * ndim or data[:4] != bytes([0, 0, 8, ndim]):
        raise DataError(f"MNIST file {path} is malformed: not a {ndim}-d uint8 IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    if len(data) != 4 + 4 * ndim + int(np.prod(shape)):
        raise DataError(f"MNIST file {path} is malformed: {len(data)} bytes do not hold shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class MnistIdx(Dataset):
    """MNIST read from torchvision's raw layout (plain or gzipped IDX files); items are (PIL "L", label)."""

    def __init__(self, raw: Path, train: bool, transform: Callable | None) -> None:
        prefix = "train" if train else "t10k"
        self.images = _read_idx(raw, f"{prefix}-images-idx3-ubyte", 3)
        self.targets = _read_idx(raw, f"{prefix}-labels-idx1-ubyte", 1).astype(np.int64)
        if len(self.images) != len(self.targets):
            raise DataError(f"MNIST {prefix} in {raw}: {len(self.images)} images, {len(self.targets)} labels")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[i], mode="L")
        return (self.transform(image) if self.transform else image), int(self.targets[i])


def load_mnist(root: Path, train: bool, transform: Callable | None, download: bool = False) -> MnistIdx:
    """MNIST from ``root/MNIST/raw`` (``root`` may also be the MNIST folder itself); download if asked."""
    root = Path(root)
    if root.name == "MNIST":
        root = root.parent
    raw = root / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).exists() and not (raw / f"{f}.gz").exists()]
    if missing and download:
        datasets.MNIST(str(root), train=train, download=True)
    elif missing:
        raise DataError(
            f"MNIST not found: {raw} lacks {', '.join(missing)} (torchvision's raw layout, "
            "plain or .gz); pass --download to fetch it"
        )
    return MnistIdx(raw, train, transform)


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
    raise DataError(
        f"{root} has no '{split}' split folder (looked for {', '.join(candidates)}; "
        f"found: {', '.join(present) or 'nothing'}); expected <root>/<split>/<class>/<image>"
    )


def load_image_folder(root: Path, split: str, transform: Callable | None) -> datasets.ImageFolder:
    """An ImageFolder tree ``root/<split>/<class>/*.<image>``, checked for at least one image per class."""
    folder = find_split(root, split)
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder} has no class folders; expected {folder}/<class>/<image files>")
    empty = [c.name for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in c.iterdir())]
    if empty:
        raise DataError(
            f"{folder}: class folders without images ({', '.join(empty)}); "
            f"supported suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return datasets.ImageFolder(str(folder), transform=transform)


def limit(dataset: Dataset, count: int, seed: int = 0) -> Dataset:
    """A fixed random subset of ``count`` samples (all of them when ``count`` is 0 or larger)."""
    import torch

    size = len(cast(Sized, dataset))
    if not count or count >= size:
        return dataset
    indices = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count]
    return Subset(dataset, indices.tolist())
