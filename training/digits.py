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
