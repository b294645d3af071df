"""``python -m training``: one subcommand per model, plus ``export`` and ``evaluate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from training import calibrate, digits, evaluate, export, finetune, sentiment
from training.data import DataError
from training.engine import positive_int


class Parser(argparse.ArgumentParser):
    """A subcommand's parser: no abbreviated options (``--epoch 1`` is an error, not ``--epochs 1``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _register_caption(subparsers: argparse._SubParsersAction) -> None:
    try:
        from training.caption.cli import register
    except ModuleNotFoundError as exc:  # the captioner is optional; any other import error is a bug
        if not (exc.name or "").startswith("training.caption"):
            raise
        return
    register(subparsers)


def get_args_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand's ``--help`` explains its options."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m training",
        description="Train the models, export them to model versions, evaluate "
        "exported versions through onnxruntime.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for module in (digits, sentiment, finetune):
        module.register(subparsers)
    _register_caption(subparsers)
    calibrate.register(subparsers)
    exp = subparsers.add_parser(
        "export",
        help="export a training run to a model version directory",
        description="Export RUN (a run directory or checkpoint file) to <out>/<name>/<version>/: ONNX "
        f"(opset {export.OPSET}, dynamic batch and sequence axes) checked with onnx.checker and "
        "compared with PyTorch through onnxruntime (the export fails beyond tolerance), plus "
        "manifest.json, labels, tokenizer, card.md and the sha256 of every file.",
    )
    exp.add_argument("run", type=Path, help="run directory (or its checkpoint.pt)")
    exp.add_argument("--out", type=Path, default=Path("models"), help="model repository (default models/)")
    exp.add_argument(
        "--name",
        default=None,
        help="model name (default by kind: digits-cnn, sentiment-lstm, pets-resnet18, captioner)",
    )
    exp.add_argument("--version", type=positive_int, default=None, help="version number (default: next free)")
    exp.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a known limit of this version, listed in its model card (repeatable)",
    )
    exp.add_argument(
        "--flip-average",
        action="store_true",
        help="image classifiers only: the graph averages the logits of each image and its "
        "horizontal mirror (test-time augmentation, twice the compute)",
    )
    exp.add_argument(
        "--length-penalty",
        type=float,
        default=0.0,
        help="captioner only, written to the manifest: beam search returns the caption with "
        "the highest summed log-probability / length ** this (default 0: the summed "
        "log-probability; 1: the mean per token, which favours longer captions)",
    )
    exp.set_defaults(func=export.run)
    ev = subparsers.add_parser(
        "evaluate",
        help="measure an exported version through onnxruntime and record it in its manifest",
        description="Run VERSION_DIR's ONNX model with onnxruntime over --data/--split using the "
        "preprocessing its manifest describes; write accuracy (and confusion matrix) into the "
        "manifest's metrics, provenance and card.md, and refresh the sha256 entries.",
    )
    ev.add_argument("version_dir", type=Path, help="model version directory, e.g. models/digits-cnn/1")
    ev.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset: folder holding MNIST/raw, an ImageFolder root, a text CSV folder or "
        "aclImdb, or the captioner's data",
    )
    ev.add_argument(
        "--split",
        default="test",
        help="split to evaluate, optionally sliced: 'test[5000:]' is all but its first 5,000 samples "
        "(default test)",
    )
    ev.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="inference batch size (default 64; a captioner's: 32)",
    )
    ev.add_argument("--beam-size", type=int, default=None, help="captioner only: beam width")
    ev.set_defaults(func=evaluate.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; dataset problems, files or directories that cannot be
    read or written (an existing version, a read-only --out) and failed downloads (``--weights imagenet``
    without internet access) exit with status 2 and a message."""
    args = get_args_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
