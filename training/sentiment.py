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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sentiment`` subcommand."""
    parser = subparsers.add_parser(
        "sentiment",
        help="train the sentiment LSTM on a CSV or aclImdb dataset",
        description="Build a word-level tokenizer (lowercase, <br /> and punctuation removed, capped "
        "vocabulary, <pad>=0, <unk>=1) on the training texts, then train embedding + (Bi)LSTM + "
        "linear head with Adam. Trains on the 'train' split, validates on --val-split.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a folder with train.csv[.gz] and test.csv[.gz], an aclImdb folder "
        "(train/pos/*.txt, train/neg/*.txt, test/...), or one CSV file for training",
    )
    parser.add_argument("--val-split", default="test", help="split used for validation (default test)")
    parser.add_argument("--text-column", default="text", help="CSV text column (default text)")
    parser.add_argument("--label-column", default="label", help="CSV label column (default label)")
    parser.add_argument(
        "--vocab-size", type=int, default=20000, help="vocabulary cap incl. specials (default 20000)"
    )
    parser.add_argument("--max-length", type=int, default=256, help="tokens kept per text (default 256)")
    parser.add_argument("--embed-dim", type=int, default=128, help="embedding size (default 128)")
    parser.add_argument(
        "--hidden", type=int, default=128, help="LSTM hidden size per direction (default 128)"
    )
    parser.add_argument("--unidirectional", action="store_true", help="forward LSTM only (default: BiLSTM)")
    parser.add_argument(
        "--pooling",
        choices=("max-mean", "last"),
        default="max-mean",
        help="max and mean over real tokens, or the state at each end (default max-mean)",
    )
    parser.add_argument("--dropout", type=engine.probability, default=0.3, help="dropout rate (default 0.3)")
    engine.add_common_args(parser, epochs=4, batch_size=64, lr=2e-3, weight_decay=0.0, name="sentiment-lstm")
    parser.set_defaults(func=train)


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
