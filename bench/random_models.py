"""Models at the default models' real architectures with random weights, exported by the training
package (the same export as trained models), for benchmarking before trained models exist:

    python -m bench.random_models --out /tmp/bench-models

Writes ``<out>/checkpoints/*.pt`` and ``<out>/{pets-resnet18,sentiment-lstm,captioner}/1/``; each
manifest's ``provenance.checkpoint`` names its checkpoint, which the naive server loads.

    python -m bench.random_models --like models/sentiment-lstm/3 --checkpoint /tmp/ckpt/sentiment-lstm.pt

writes only a checkpoint, with random weights, at the architecture of a trained version whose training
run is not on this machine (pets-resnet18, sentiment-lstm), for the naive server's ``--checkpoints``: the
same network does the same work whatever its weights, so its speed is the trained one's.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from tokenizers import Tokenizer

from bench.checkpoints import REBUILDABLE
from training import runs
from training.backbone import build_image_model
from training.caption.export import export_version as export_captioner
from training.caption.model import KIND as CAPTIONER_KIND
from training.caption.model import Captioner, CaptionerConfig
from training.caption.vocab import build_tokenizer as build_caption_tokenizer
from training.data.text import build_tokenizer as build_text_tokenizer
from training.export import export_version
from training.nets import SentimentConfig, SentimentLSTM
from training.presets import resnet_preset

# the shipped defaults' sizes: pets-resnet18 v1 (cats vs dogs at 160 px), sentiment-lstm v3 (20,000 words),
# captioner v5 (EfficientNet-Lite0 cut at its head, 224 px, 2,541 tokens, length penalty 0.5, no repeated
# trigram)
PETS_LABELS = ["cats", "dogs"]
PETS_SIZE = 160
SENTIMENT_VOCAB = 20000  # training/sentiment.py's default --vocab-size
CAPTION_VOCAB = 2541
CAPTION_ARCH = "efficientnet_lite0"
CAPTION_SIZE = 224
CAPTION_LENGTH_PENALTY = 0.5
CAPTION_NO_REPEAT_NGRAM = 3


def _provenance(what: str) -> dict:
    return {
        "dataset": {"name": "none (random weights)", "path": None, "licence": "n/a"},
        "initialisation": f"random: {what}, for benchmarking only",
        "seed": 0,
    }


def _classifier_checkpoint(path: Path, labels: list[str], image: dict, provenance: dict) -> Path:
    """A ResNet-18 with one output per label, random weights, saved at ``path``."""
    runs.save_checkpoint(
        path,
        kind="resnet",
        model=build_image_model("resnet18", len(labels)),
        model_args={"arch": "resnet18", "num_classes": len(labels)},
        extra={"labels": labels, "image": image, "provenance": provenance},
    )
    return path


def _sentiment_checkpoint(
    path: Path, tokenizer: Tokenizer, text: dict, labels: list[str], provenance: dict
) -> Path:
    """The sentiment network at SentimentConfig's sizes over ``tokenizer``'s vocabulary, random weights,
    saved at ``path``."""
    config = SentimentConfig(vocab_size=tokenizer.get_vocab_size(), pad_id=text["pad_id"])
    runs.save_checkpoint(
        path,
        kind="sentiment",
        model=SentimentLSTM(config),
        model_args=asdict(config),
        extra={"labels": labels, "tokenizer": tokenizer.to_str(), "text": text, "provenance": provenance},
    )
    return path


def make_classifier(checkpoints: Path, out: Path) -> Path:
    image = resnet_preset(PETS_SIZE).manifest()
    path = _classifier_checkpoint(
        checkpoints / "pets-resnet18.pt", PETS_LABELS, image, _provenance("resnet18")
    )
    return export_version(path, out, "pets-resnet18", 1)


def make_sentiment(checkpoints: Path, out: Path) -> Path:
    words = [f"word{i}" for i in range(SENTIMENT_VOCAB)]
    tokenizer = build_text_tokenizer([" ".join(words)] * 2, SENTIMENT_VOCAB)  # SENTIMENT_VOCAB words
    text = {"max_length": 256, "pad_id": 0, "unk_id": 1}
    path = _sentiment_checkpoint(
        checkpoints / "sentiment-lstm.pt", tokenizer, text, ["negative", "positive"], _provenance("BiLSTM")
    )
    return export_version(path, out, "sentiment-lstm", 1)


def make_captioner(checkpoints: Path, out: Path) -> Path:
    words = CAPTION_VOCAB - 4  # the tokenizer adds its four special tokens
    tokenizer = build_caption_tokenizer([" ".join(f"w{i}" for i in range(words))], min_freq=1)
    config = CaptionerConfig(vocab_size=tokenizer.get_vocab_size(), arch=CAPTION_ARCH, feature_layer="head")
    model = Captioner(config)
    path = checkpoints / "captioner.pt"
    image = resnet_preset(CAPTION_SIZE, crop=False, arch=CAPTION_ARCH).manifest()
    runs.save_checkpoint(
        path,
        kind=CAPTIONER_KIND,
        model=model,
        model_args=asdict(model.config),
        extra={
            "tokenizer": tokenizer.to_str(),
            "image": image,
            "max_length": 20,
            "provenance": _provenance("EfficientNet-Lite0 + attention LSTM"),
        },
    )
    return export_captioner(
        path,
        out,
        "captioner",
        1,
        length_penalty=CAPTION_LENGTH_PENALTY,
        no_repeat_ngram=CAPTION_NO_REPEAT_NGRAM,
    )


def checkpoint_like(version_dir: Path, path: Path) -> Path:
    """A random-weight checkpoint at ``path`` with the architecture of the trained version in
    ``version_dir``, read from the repository alone: pets-resnet18's ResNet-18 with one output per label,
    or sentiment-lstm's network at SentimentConfig's sizes (those of every shipped version's training
    command) over its tokenizer's vocabulary. The captioner's encoder and vocabulary are in its
    checkpoint only, so it is refused (ValueError)."""
    manifest = json.loads((version_dir / "manifest.json").read_text())
    name, labels = manifest["name"], manifest.get("labels", [])
    provenance = _provenance(f"the architecture of {name} v{manifest['version']}")
    if name not in REBUILDABLE:
        raise ValueError(
            f"{name}: only {' and '.join(REBUILDABLE)} can be rebuilt from a repository version "
            "(a captioner's encoder and vocabulary are in its training checkpoint only)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "pets-resnet18":
        return _classifier_checkpoint(path, labels, manifest["image"], provenance)
    text = manifest["text"]
    tokenizer = Tokenizer.from_file(str(version_dir / text["tokenizer"]))
    return _sentiment_checkpoint(path, tokenizer, text, labels, provenance)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, help="a new model repository")
    what.add_argument(
        "--like", type=Path, help="a trained version directory: write only a checkpoint at its architecture"
    )
    parser.add_argument("--checkpoint", type=Path, help="with --like: the checkpoint file to write")
    args = parser.parse_args(argv)
    if args.like is not None:
        if args.checkpoint is None:
            parser.error("--like needs --checkpoint FILE")
        if not (args.like / "manifest.json").is_file():
            parser.error(f"--like: {args.like} is not a version directory (no manifest.json)")
        torch.manual_seed(0)
        try:
            print(f"wrote {checkpoint_like(args.like, args.checkpoint)}", flush=True)
        except ValueError as exc:
            parser.error(f"--like: {exc}")
        return
    if args.checkpoint is not None:
        parser.error("--checkpoint goes with --like")
    there = [
        name for name in ("pets-resnet18", "sentiment-lstm", "captioner") if (args.out / name / "1").exists()
    ]
    if there:
        parser.error(
            f"{args.out} already holds {', '.join(f'{name}/1' for name in there)}: choose another --out"
        )
    torch.manual_seed(0)
    checkpoints = args.out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for make in (make_classifier, make_sentiment, make_captioner):
        print(f"exported {make(checkpoints, args.out)}", flush=True)


if __name__ == "__main__":
    main()
