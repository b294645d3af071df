"""``evaluate``: metrics of an exported version computed through onnxruntime, written into its manifest."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from contract.outputs import probabilities as class_probabilities
from contract.preprocess import preprocess_image
from contract.text import pad_ids, window
from training import card, runs
from training.calibrate import expected_calibration_error, nll, plot_reliability
from training.data import DataError, text
from training.data.images import MnistIdx, load_image_folder
from training.engine import progress
from training.version import read_manifest, update_manifest


def _batches(n: int, size: int) -> Iterator[slice]:
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def split_rows(split: str) -> tuple[str, slice]:
    """``'test'`` -> ('test', every row); ``'test[:5000]'``, ``'test[5000:]'`` -> the split and a slice of its
    rows in file order (a calibration split apart from the one reported)."""
    match = re.fullmatch(r"([\w-]+)(?:\[(\d*):(\d*)\])?", split)
    if match is None:
        raise DataError(f"split {split!r}: expected NAME or NAME[START:END], e.g. test[:5000]")
    name, start, end = match.groups()
    return name, slice(int(start) if start else None, int(end) if end else None)


def _image_samples(data: Path, split: str, labels: list[str]) -> tuple[list, list[int]]:
    """(images or paths, class indices): MNIST when ``data`` holds MNIST/raw, else an ImageFolder split."""
    mnist = data if data.name == "MNIST" else data / "MNIST"
    if (mnist / "raw").is_dir():
        if split not in ("train", "test"):  # MNIST has these two; any other name recorded test accuracy
            raise DataError(f"{mnist}: MNIST has the splits train and test, not {split!r}")
        dataset = MnistIdx(mnist / "raw", split == "train", None)
        return [Image.fromarray(a, mode="L") for a in dataset.images], dataset.targets.tolist()
    folder = load_image_folder(data, split, None)
    if folder.classes != labels:
        raise DataError(f"{data}/{split}: classes {folder.classes} differ from the model's labels {labels}")
    return [p for p, _ in folder.samples], [t for _, t in folder.samples]


def _predict_images(session, manifest: dict, data: Path, split: str, batch_size: int):
    name, rows = split_rows(split)
    images, targets = _image_samples(data, name, manifest["labels"])
    images, targets = images[rows], targets[rows]
    graph = manifest["graphs"]["model"]
    outputs = []
    for part in progress(list(_batches(len(images), batch_size)), f"evaluate {split}"):
        pixels = np.stack(
            [
                preprocess_image(Image.open(i) if isinstance(i, str) else i, manifest["image"])
                for i in images[part]
            ]
        )
        outputs.append(session.run(None, {graph["inputs"][0]["name"]: pixels})[0])
    return np.concatenate(outputs), np.asarray(targets)


def _predict_text(session, manifest: dict, version_dir: Path, data: Path, split: str, batch_size: int):
    from tokenizers import Tokenizer

    spec = manifest["text"]
    tokenizer = Tokenizer.from_file(str(version_dir / spec["tokenizer"]))
    name, selected = split_rows(split)
    texts, raw = text.load_text(data, name)
    texts, raw = texts[selected], raw[selected]
    targets = text.encode_labels(raw, manifest["labels"])
    ids = [window(e.ids, spec["max_length"], spec["unk_id"]) for e in tokenizer.encode_batch(texts)]
    outputs = []
    for part in progress(list(_batches(len(ids), batch_size)), f"evaluate {split}"):
        input_ids, lengths = pad_ids(ids[part], spec["pad_id"])
        feed = {spec["input_ids"]: input_ids}
        if spec.get("lengths"):
            feed[spec["lengths"]] = lengths
        outputs.append(session.run(None, feed)[0])
    return np.concatenate(outputs), np.asarray(targets)


def predict(
    version_dir: Path, manifest: dict, data: Path, split: str, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's outputs [N, classes] over ``data``/``split`` (sliced as :func:`split_rows` reads it)
    through onnxruntime, with the targets [N]."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(version_dir / manifest["graphs"]["model"]["file"]), providers=["CPUExecutionProvider"]
    )
    if manifest["task"] == "sentiment":
        return _predict_text(session, manifest, version_dir, data, split, batch_size)
    return _predict_images(session, manifest, data, split, batch_size)


def evaluate_version(
    version_dir: Path, data: Path, split: str = "test", batch_size: int | None = None, **opts: Any
) -> dict:
    """Accuracy and confusion matrix of a classifier version on ``data``/``split``, through onnxruntime.

    Writes ``metrics[split]``, the confusion matrix (provenance and ``confusion-<split>.png``) and the card,
    and re-computes the sha256 of every file. ``batch_size``: onnxruntime's batch (default 64). Captioning
    versions go to the captioner's evaluator, with ``batch_size`` when given (its default is 32).
    """
    version_dir, data = Path(version_dir), Path(data)
    manifest = read_manifest(version_dir)
    if manifest["task"] == "image-captioning":
        from training.caption.evaluate import evaluate_version as evaluate_captioner

        if batch_size is not None:  # else the captioner's own default
            opts["batch_size"] = batch_size
        return evaluate_captioner(version_dir, data, split, **opts)
    outputs, targets = predict(version_dir, manifest, data, split, batch_size or 64)
    probabilities = class_probabilities(outputs, manifest.get("output"))
    labels = manifest["labels"]
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (targets, outputs.argmax(1)), 1)
    metrics = {
        "accuracy": float(np.trace(confusion) / max(len(targets), 1)),
        "samples": len(targets),
        "ece": expected_calibration_error(probabilities, targets),
        "nll": nll(np.log(np.clip(probabilities, 1e-12, None)), targets),
    }
    stem = card.split_stem(split)
    runs.plot_confusion(version_dir / f"confusion-{stem}.png", confusion, labels)
    plot_reliability(
        version_dir / f"reliability-{stem}.png", probabilities, targets, f"{manifest['name']} {split}"
    )
    provenance = manifest.get("provenance", {})
    provenance.setdefault("evaluation", {})[split] = {
        "data": str(data.resolve()),
        "confusion": confusion.tolist(),
    }
    manifest["metrics"] = {**manifest.get("metrics", {}), split: metrics}
    manifest["provenance"] = provenance
    (version_dir / "card.md").write_text(card.render(manifest, version_dir))
    update_manifest(version_dir, metrics=manifest["metrics"], provenance=provenance)
    print(
        f"{manifest['name']} v{manifest['version']} {split}: accuracy {metrics['accuracy']:.4f}, "
        f"ECE {metrics['ece']:.4f}, NLL {metrics['nll']:.4f} on {len(targets)} samples"
    )
    return metrics


def run(args: argparse.Namespace) -> dict:
    """CLI entry for ``evaluate``."""
    opts = {"beam_size": args.beam_size} if args.beam_size is not None else {}
    return evaluate_version(args.version_dir, args.data, args.split, args.batch_size, **opts)
