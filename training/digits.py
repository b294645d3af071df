"""``digits``: the MNIST CNN recipe (AdamW, one-cycle schedule, optional small random affine)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from training import engine, presets
from training.data.images import limit, load_mnist
from training.nets import DigitsCNN, DigitsConfig
from training.provenance import provenance

KIND = "digits"
LABELS = [str(d) for d in range(10)]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``digits`` subcommand."""
    parser = subparsers.add_parser(
        "digits",
        help="train the digits CNN on MNIST",
        description="Train a small CNN (two conv-ReLU-conv-ReLU-maxpool blocks, an MLP head: dropout, "
        "linear-ReLU, dropout, linear) on "
        "MNIST train and validate on MNIST test. AdamW with a one-cycle schedule.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder holding MNIST/raw (torchvision's layout), or the MNIST folder itself",
    )
    parser.add_argument("--download", action="store_true", help="download MNIST into --data when missing")
    parser.add_argument(
        "--augment",
        action="store_true",
        help="small random affine augmentation (±10°, ±10%% shift and scale)",
    )
    parser.add_argument(
        "--dropout", type=engine.probability, default=0.25, help="dropout rate (default 0.25)"
    )
    engine.add_common_args(parser, epochs=5, batch_size=128, lr=3e-3, weight_decay=1e-4, name="digits-cnn")
    parser.set_defaults(func=train)


def train(args: argparse.Namespace) -> Path:
    """Train the digits CNN; return the run directory."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        preset = presets.digits_preset()
        train_tf = (
            preset.train_transform(presets.digits_augment()) if args.augment else preset.eval_transform()
        )
        train_set = limit(load_mnist(args.data, True, train_tf, args.download), args.limit, args.seed)
        val_set = limit(load_mnist(args.data, False, preset.eval_transform()), args.limit, args.seed)
        loaders = engine.make_loaders(train_set, val_set, args)
        config = DigitsConfig(dropout=args.dropout, num_classes=len(LABELS))
        model = DigitsCNN(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        scheduler = engine.one_cycle(optimizer, args.lr, args.epochs * len(loaders[0]))
        history: dict[str, list[float]] = {}
        confusion = engine.run_epochs(
            model,
            nn.CrossEntropyLoss(),
            optimizer,
            loaders,
            device,
            args.epochs,
            history,
            len(LABELS),
            scheduler,
        )
        engine.finish_run(
            run_dir,
            kind=KIND,
            model=model,
            model_args=dataclasses.asdict(config),
            labels=LABELS,
            history=history,
            confusion=confusion,
            started=started,
            extra={
                "image": preset.manifest(),
                "provenance": provenance(
                    args.data, seed=args.seed, device=device, initialisation="random initialisation"
                ),
            },
        )
    return run_dir
