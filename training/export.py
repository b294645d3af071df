"""``export``: checkpoint -> ONNX (checked, parity-tested against PyTorch) -> model version directory."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.versions import write_version
from training import card, runs
from training.backbone import build_image_model
from training.nets import DigitsCNN, DigitsConfig, SentimentConfig, SentimentLSTM
from training.version import check_onnx, onnx_parity, read_manifest, update_manifest

OPSET = 17
DEFAULT_NAMES = {"digits": "digits-cnn", "sentiment": "sentiment-lstm", "resnet": "pets-resnet18"}
DESCRIPTIONS = {
    "digits": "Handwritten digit classifier (MNIST-style CNN).",
    "sentiment": "Binary sentiment of English text (word-level BiLSTM).",
    "resnet": "Image classifier ({arch}, fine-tuned).",
}


def build_model(checkpoint: dict) -> nn.Module:
    """Rebuild the net of a project checkpoint from its ``model_args`` and load its weights."""
    args, kind = checkpoint["model_args"], checkpoint["kind"]
    if kind == "digits":
        model: nn.Module = DigitsCNN(DigitsConfig(**args))
    elif kind == "sentiment":
        model = SentimentLSTM(SentimentConfig(**args))
    elif kind == "resnet":  # any image backbone; the kind's name predates the EfficientNet-Lites
        model = build_image_model(args["arch"], args["num_classes"])
    else:
        raise ValueError(
            f"unsupported checkpoint kind {kind!r}; supported: digits, sentiment, resnet, captioner"
        )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


class FlipAverage(nn.Module):
    """Test-time augmentation inside the graph: the mean of the logits of the image and its mirror image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (self.model(pixels) + self.model(torch.flip(pixels, dims=[3]))) / 2


def _tensor(name: str, dtype: str, shape: list[int]) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def _export_image(model: nn.Module, checkpoint: dict, path: Path) -> dict:
    spec = checkpoint["image"]
    channels = 1 if spec["color_mode"] == "L" else 3
    shape = [channels, *spec["size"]]
    torch.onnx.export(
        model,
        (torch.randn(2, *shape),),
        str(path),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    feeds = [{"pixels": rng.standard_normal((n, *shape)).astype(np.float32)} for n in (1, 3, 7)]
    onnx_parity(path, lambda pixels: [model(torch.from_numpy(pixels)).detach().numpy()], feeds)
    return {
        "graphs": {
            "model": {
                "file": "model.onnx",
                "inputs": [_tensor("pixels", "float32", [-1, *shape])],
                "outputs": [_tensor("logits", "float32", [-1, len(checkpoint["labels"])])],
            }
        },
        "image": spec,
    }


def _random_batch(rng: np.random.Generator, batch: int, seq: int, vocab: int) -> dict[str, np.ndarray]:
    lengths = rng.integers(1, seq + 1, size=batch)
    lengths[0] = seq  # the longest row sets the padded width, as the service pads
    ids = rng.integers(2, vocab, size=(batch, seq))
    ids[np.arange(seq)[None, :] >= lengths[:, None]] = 0
    return {"input_ids": ids.astype(np.int64), "lengths": lengths.astype(np.int64)}


def _export_sentiment(model: nn.Module, checkpoint: dict, path: Path) -> dict:
    vocab = checkpoint["model_args"]["vocab_size"]
    sample = _random_batch(np.random.default_rng(1), 2, 9, vocab)
    torch.onnx.export(
        model,
        (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["lengths"])),
        str(path),
        input_names=["input_ids", "lengths"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "lengths": {0: "batch"},
            "logits": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    feeds = [_random_batch(rng, b, s, vocab) for b, s in ((1, 1), (3, 17), (5, 64), (2, 300))]
    onnx_parity(
        path,
        lambda input_ids, lengths: [
            model(torch.from_numpy(input_ids), torch.from_numpy(lengths)).detach().numpy()
        ],
        feeds,
    )
    return {
        "graphs": {
            "model": {
                "file": "model.onnx",
                "inputs": [_tensor("input_ids", "int64", [-1, -1]), _tensor("lengths", "int64", [-1])],
                "outputs": [_tensor("logits", "float32", [-1, len(checkpoint["labels"])])],
            }
        },
        "text": {
            "tokenizer": "tokenizer.json",
            **checkpoint["text"],
            "input_ids": "input_ids",
            "lengths": "lengths",
        },
    }


def export_version(
    checkpoint_path: Path,
    out_root: Path,
    name: str | None = None,
    version: int | None = None,
    notes: list[str] | None = None,
    length_penalty: float = 0.0,
    flip_average: bool = False,
    no_repeat_ngram: int = 0,
) -> Path:
    """Export a run (or checkpoint file) to ``out_root/<name>/<version>/``; return the version directory.

    ``notes`` are known limits specific to this version, kept in the manifest's provenance and listed in
    the card after the task's own. ``length_penalty`` and ``no_repeat_ngram`` are the captioner's (see
    ``contract.beam``); ``flip_average`` makes an image classifier's graph average its logits over the
    image and its mirror."""
    checkpoint_path = runs.find_checkpoint(checkpoint_path)
    checkpoint = runs.load_checkpoint(checkpoint_path)
    kind = checkpoint["kind"]
    if kind == "captioner":
        from training.caption.export import export_version as export_captioner

        return export_captioner(
            checkpoint_path, out_root, name or "captioner", version, notes, length_penalty, no_repeat_ngram
        )
    model = build_model(checkpoint)
    if flip_average:
        if kind == "sentiment":
            raise ValueError("--flip-average is for image classifiers, not sentiment models")
        model = FlipAverage(model).eval()
    name = name or DEFAULT_NAMES[kind]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        with torch.no_grad():
            part = (_export_sentiment if kind == "sentiment" else _export_image)(model, checkpoint, onnx_path)
        check_onnx(onnx_path)
        files: dict[str, Path | bytes | str] = {
            "model.onnx": onnx_path,
            "labels.txt": "\n".join(checkpoint["labels"]) + "\n",
        }
        if kind == "sentiment":
            files["tokenizer.json"] = checkpoint["tokenizer"]
        confusion = checkpoint_path.parent / "confusion.png"
        if confusion.is_file():
            files["confusion-training.png"] = confusion
        provenance = {
            **checkpoint.get("provenance", {}),
            "training_time_s": checkpoint.get("training_time_s"),
            "training_metrics": checkpoint.get("metrics", {}).get("val", {}),
            "checkpoint": str(checkpoint_path.resolve()),
            "export_command": f"python -m training export {checkpoint_path.parent} "
            f"--out {out_root}" + (" --flip-average" if flip_average else ""),
            "notes": list(notes or []),
        }
        if flip_average:
            provenance["test_time_augmentation"] = "logits averaged over the image and its horizontal mirror"
        manifest = {
            "task": "sentiment" if kind == "sentiment" else "image-classification",
            "description": checkpoint.get("description")
            or DESCRIPTIONS[kind].format(**checkpoint["model_args"]),
            **part,
            "labels": checkpoint["labels"],
            "output": "logits",
            "metrics": {},
            "provenance": provenance,
        }
        version_dir = write_version(out_root, name, manifest, files, version)
    (version_dir / "card.md").write_text(card.render(read_manifest(version_dir), version_dir))
    update_manifest(version_dir)
    return version_dir


def run(args: argparse.Namespace) -> Path:
    """CLI entry: export and print the version directory."""
    version_dir = export_version(
        args.run,
        args.out,
        args.name,
        args.version,
        args.note,
        args.length_penalty,
        args.flip_average,
        args.no_repeat_ngram,
    )
    print(f"exported {version_dir}")
    return version_dir
