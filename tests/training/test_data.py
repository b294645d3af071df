"""Each data format loads, and a missing or malformed dataset raises a DataError that names the problem."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training.data import DataError  # noqa: E402
from training.data.images import load_image_folder, load_mnist  # noqa: E402
from training.data.text import build_tokenizer, encode, encode_labels, label_names, load_text  # noqa: E402


def test_mnist_raw_layout(mnist_root: Path) -> None:
    train = load_mnist(mnist_root, True, None)
    assert len(train) == 40 and train[3][1] == 3 and train[0][0].size == (28, 28)
    assert len(load_mnist(mnist_root / "MNIST", False, None)) == 20


def test_mnist_missing_and_malformed(tmp_path: Path, mnist_root: Path) -> None:
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte"):
        load_mnist(tmp_path / "nowhere", True, None)
    bad = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"not an idx file")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is malformed"):
        load_mnist(mnist_root, True, None)


def test_image_folder(image_folder: Path) -> None:
    data = load_image_folder(image_folder, "val", None)  # "val" finds validation/
    assert data.classes == ["cats", "dogs"] and len(data) == 8


def test_image_folder_errors(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no 'val' split folder.*found: train"):
        (image_folder / "validation").rename(tmp_path / "elsewhere")
        load_image_folder(image_folder, "val", None)
    for f in (image_folder / "train" / "dogs").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="without images \\(dogs\\)"):
        load_image_folder(image_folder, "train", None)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing", "train", None)


def test_csv_and_aclimdb_agree_on_labels(text_csv: Path, aclimdb: Path) -> None:
    texts, raw = load_text(text_csv, "train")
    assert len(texts) == 40 and set(raw) == {"pos", "neg"}
    names = label_names(raw)
    assert names == ["negative", "positive"]
    acl_texts, _ = load_text(aclimdb, "test")
    assert len(acl_texts) == 8
    assert encode_labels(["neg", "pos", "negative"], names) == [0, 1, 0]


def test_text_errors(tmp_path: Path, text_csv: Path) -> None:
    with pytest.raises(DataError, match="no 'dev' data"):
        load_text(text_csv, "dev")
    bad = tmp_path / "bad.csv"
    bad.write_text("review,sentiment\nfine,pos\n")
    with pytest.raises(DataError, match="missing column\\(s\\) label, text"):
        load_text(bad, "train")
    (tmp_path / "acl" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(DataError, match=r"neg: no \.txt reviews"):
        load_text(tmp_path / "acl", "train")
    with pytest.raises(DataError, match="not among the training labels"):
        encode_labels(["maybe"], ["negative", "positive"])


def test_tokenizer_cleans_caps_and_truncates(text_csv: Path) -> None:
    texts, _ = load_text(text_csv, "train")
    tokenizer = build_tokenizer(texts, vocab_size=8, min_frequency=1)
    assert tokenizer.get_vocab_size() == 8
    assert tokenizer.token_to_id("<pad>") == 0 and tokenizer.token_to_id("<unk>") == 1
    cleaned = tokenizer.normalizer.normalize_str("Great<br />Film, 10/10!")
    assert cleaned.split() == ["great", "film", "10", "10"]
    assert "br" not in tokenizer.get_vocab()
    ids = encode(tokenizer, ["great " * 50, "", "zzz"], max_length=5)
    assert [len(i) for i in ids] == [5, 1, 1] and ids[1] == [1] and ids[2] == [1]


def test_dataset_info_names_the_dataset_and_its_licence(mnist_root: Path, tmp_path: Path) -> None:
    from training.provenance import KNOWN_LICENCES, dataset_info

    assert dataset_info(mnist_root)["name"] == "MNIST"  # a torchvision root, as `--data` gives it
    assert dataset_info(mnist_root)["licence"] == KNOWN_LICENCES["mnist"]
    (tmp_path / "imdb").mkdir()
    assert dataset_info(tmp_path / "imdb" / "train.csv.gz")["licence"] == KNOWN_LICENCES["imdb"]
    assert dataset_info(tmp_path)["licence"].startswith("unknown")
