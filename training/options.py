"""Argparse helpers shared by the subcommands: option types, the classifier recipes' common options and the
choices options offer. Importing this module imports no torch (nor anything else of the train extra), so
that ``python -m training --help`` and argument errors answer without loading it."""

from __future__ import annotations

import argparse
from pathlib import Path

# The names of training.backbone.ARCH_SPECS, training.caption.model.FEATURE_LAYERS and training.export.OPSET,
# repeated here because those modules import torch; tests/training/test_cli_help.py keeps them equal.
ARCHS = ("resnet18", "resnet34", "resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
FEATURE_LAYERS = ("layer3", "layer4", "head")
OPSET = 17
# training.ngrams' defaults: hashed bigram buckets, words read, inverse L2 strength of its regression
NGRAM_BUCKETS = 1 << 18
NGRAM_MAX_LENGTH = 1024
NGRAM_C = 0.3


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (else argparse's one-line error, exit status 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def probability(text: str) -> float:
    """An argparse type: a dropout rate, at least 0 and below 1."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    name: str,
) -> None:
    """Options every classifier recipe shares, with the recipe's own defaults."""
    parser.add_argument(
        "--epochs", type=positive_int, default=epochs, help="training epochs (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help="batch size (default %(default)s)"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=lr, help="peak learning rate (default %(default)s)"
    )
    parser.add_argument(
        "--weight-decay", type=float, default=weight_decay, help="weight decay (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for reproducibility (default 0)")
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument(
        "--workers", type=non_negative_int, default=2, help="data-loading worker processes (default 2)"
    )
    parser.add_argument(
        "--threads",
        type=non_negative_int,
        default=0,
        help="torch CPU threads; 0 keeps torch's default (default 0)",
    )
    parser.add_argument(
        "--limit",
        type=non_negative_int,
        default=0,
        help="use at most this many training and validation samples, for quick trials (default 0: all)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs"), help="root of the run directories (default runs/)"
    )
    parser.add_argument(
        "--name", default=name, help="model name, used for the run directory (default %(default)s)"
    )
