"""``python -m training``: one subcommand per model, plus ``export`` and ``evaluate``."""

from __future__ import annotations

import argparse
import sys

from training import finetune
from training.data import DataError


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
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train the models, export them to model versions, evaluate "
                                                 "exported versions through onnxruntime.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (finetune,):
        module.register(subparsers)
    _register_caption(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; dataset problems exit with status 2 and a message."""
    args = get_args_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


