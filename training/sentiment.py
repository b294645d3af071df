"""``sentiment``: word-level tokenizer plus the padding-invariant (Bi)LSTM, trained with Adam."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from training import engine
from training.data import text
from training.data.images import limit
from training.nets import SentimentConfig, SentimentLSTM
from training.provenance import provenance

KIND = "sentiment"


def train(args: argparse.Namespace) -> Path:
    """Train the sentiment net; return the run directory (with tokenizer.json beside the checkpoint)."""
    with engine.setup(args) as (device, run_dir):
        started = time.time()
        train_texts, train_raw = text.load_text(args.data, "train", args.text_column, args.label_column)
        val_texts, val_raw = text.load_text(args.data, args.val_split, args.text_column, args.label_column)
        labels = text.label_names(train_raw)
        tokenizer = text.build_tokenizer(train_texts, args.vocab_size)
        tokenizer.save(str(run_dir / "tokenizer.json"))
        datasets = [
            limit(
                text.EncodedTexts(
                    text.encode(tokenizer, texts, args.max_length), text.encode_labels(raw, labels)
                ),
                args.limit,
                args.seed,
            )
            for texts, raw in ((train_texts, train_raw), (val_texts, val_raw))
        ]
        train_set, val_set = datasets
        loaders = engine.make_loaders(train_set, val_set, args, collate_fn=text.pad_batch)
        config = SentimentConfig(
            vocab_size=tokenizer.get_vocab_size(),
            embed_dim=args.embed_dim,
            hidden=args.hidden,
            bidirectional=not args.unidirectional,
            pooling=args.pooling,
            dropout=args.dropout,
            num_classes=len(labels),
        )
        model = SentimentLSTM(config).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        scheduler = engine.one_cycle(optimizer, args.lr, args.epochs * len(loaders[0]), pct_start=0.2)
        history: dict[str, list[float]] = {}
        confusion = engine.run_epochs(
            model,
            nn.CrossEntropyLoss(),
            optimizer,
            loaders,
            device,
            args.epochs,
            history,
            len(labels),
            scheduler,
            clip_grad=1.0,
        )
        engine.finish_run(
            run_dir,
            kind=KIND,
            model=model,
            model_args=dataclasses.asdict(config),
            labels=labels,
            history=history,
            confusion=confusion,
            started=started,
            extra={
                "tokenizer": tokenizer.to_str(),
                "text": {
                    "max_length": args.max_length,
                    "pad_id": 0,
                    "unk_id": tokenizer.token_to_id(text.UNK),
                },
                "provenance": provenance(
                    args.data, seed=args.seed, device=device, initialisation="random initialisation"
                ),
            },
        )
    return run_dir
