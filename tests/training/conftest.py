"""Tiny synthetic datasets for the training tests (torch-dependent tests skip cleanly without torch)."""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image

WORDS = {"pos": "great wonderful superb loved brilliant", "neg": "awful boring terrible hated dull"}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 IDX file (gzipped), the format of MNIST's raw files."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """``root/MNIST/raw`` with 40 train and 20 test random 28x28 digits."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path / "mnist"


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder tree with train/ and validation/, classes cats and dogs, 6 and 4 images each."""
    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("validation", 4)):
        for c, name in enumerate(("cats", "dogs")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (40, 48, 3)) + 100 * c
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _reviews(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.choice(WORDS[label].split(), size=int(rng.integers(3, 12))).tolist()
        rows.append((" ".join(words).capitalize() + "!<br />The END.", label))
    return rows


@pytest.fixture
def text_csv(tmp_path: Path) -> Path:
    """A folder with train.csv.gz and test.csv.gz in the IMDB column layout."""
    root = tmp_path / "imdb"
    root.mkdir()
    for split, n in (("train", 40), ("test", 16)):
        with gzip.open(root / f"{split}.csv.gz", "wt", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label", "rating", "id"])
            writer.writerows([t, label, 1, i] for i, (t, label) in enumerate(_reviews(n, len(split))))
    return root


@pytest.fixture
def aclimdb(tmp_path: Path) -> Path:
    """The aclImdb layout: <split>/pos/*.txt and <split>/neg/*.txt."""
    root = tmp_path / "aclImdb"
    for split, n in (("train", 20), ("test", 8)):
        for i, (review, label) in enumerate(_reviews(n, 3)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_7.txt").write_text(review)
    return root
