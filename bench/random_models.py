"""Models at the default models' real architectures with random weights, exported by the training
package (the same export as trained models), for benchmarking before trained models exist:

    python -m bench.random_models --out /tmp/bench-models

Writes ``<out>/checkpoints/*.pt`` and ``<out>/{pets-resnet18,sentiment-lstm,captioner}/1/``; each
manifest's ``provenance.checkpoint`` names its checkpoint, which the naive server loads.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch

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

PETS_CLASSES = 37  # Oxford-IIIT Pets breeds
SENTIMENT_VOCAB = 20000  # training/sentiment.py's default --vocab-size
CAPTION_VOCAB = 5000
CAPTION_SIZE = 160  # training/caption/cli.py's default --image-size
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _provenance(what: str) -> dict:
    return {
        "dataset": {"name": "none (random weights)", "path": None, "licence": "n/a"},
        "initialisation": f"random: {what}, for benchmarking only",
        "seed": 0,
    }


def make_classifier(checkpoints: Path, out: Path) -> Path:
    model = build_image_model("resnet18", PETS_CLASSES)
    path = checkpoints / "pets-resnet18.pt"
    runs.save_checkpoint(
        path,
        kind="resnet",
        model=model,
        model_args={"arch": "resnet18", "num_classes": PETS_CLASSES},
        extra={
            "labels": [f"breed-{i}" for i in range(PETS_CLASSES)],
            "image": resnet_preset(224).manifest(),
            "provenance": _provenance("resnet18"),
        },
    )
    return export_version(path, out, "pets-resnet18", 1)


def make_sentiment(checkpoints: Path, out: Path) -> Path:
    words = [f"word{i}" for i in range(SENTIMENT_VOCAB)]
    tokenizer = build_text_tokenizer([" ".join(words)] * 2, SENTIMENT_VOCAB)
    config = SentimentConfig(vocab_size=SENTIMENT_VOCAB)
    path = checkpoints / "sentiment-lstm.pt"
    runs.save_checkpoint(
        path,
        kind="sentiment",
        model=SentimentLSTM(config),
        model_args=asdict(config),
        extra={
            "labels": ["negative", "positive"],
            "tokenizer": tokenizer.to_str(),
            "text": {"max_length": 256, "pad_id": 0, "unk_id": 1},
            "provenance": _provenance("BiLSTM"),
        },
    )
    return export_version(path, out, "sentiment-lstm", 1)


def make_captioner(checkpoints: Path, out: Path) -> Path:
    tokenizer = build_caption_tokenizer([" ".join(f"w{i}" for i in range(CAPTION_VOCAB))], min_freq=1)
    config = CaptionerConfig(vocab_size=tokenizer.get_vocab_size(), feature_layer="layer3")
    model = Captioner(config)
    path = checkpoints / "captioner.pt"
    image = {
        "color_mode": "RGB",
        "resize": None,
        "size": [CAPTION_SIZE, CAPTION_SIZE],
        **IMAGENET,
        "invert": False,
    }
    runs.save_checkpoint(
        path,
        kind=CAPTIONER_KIND,
        model=model,
        model_args=asdict(model.config),
        extra={
            "tokenizer": tokenizer.to_str(),
            "image": image,
            "max_length": 20,
            "provenance": _provenance("resnet18 layer3 + attention LSTM"),
        },
    )
    return export_captioner(path, out, "captioner", 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="a new model repository")
    args = parser.parse_args(argv)
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
