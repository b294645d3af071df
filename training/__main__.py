"""Entry point for ``python -m training``.

``--help`` and argument errors need nothing of the train extra (building the parser imports no torch); a
subcommand imports its recipe when it runs, and without the train extra that ends in one line naming the
missing package and how to install it (exit status 2), not a traceback.
"""

import sys

from training.cli import main

TRAIN_EXTRA = {"torch", "torchvision", "onnx", "onnxscript", "tqdm", "matplotlib", "nltk", "timm"}


def run(argv: list[str] | None = None) -> int:
    """:func:`training.cli.main`, with a missing package of the train extra as a one-line error."""
    try:
        return main(argv)
    except ModuleNotFoundError as exc:  # torch and the rest of the train extra are optional
        if exc.name is None or exc.name.split(".")[0] not in TRAIN_EXTRA:
            raise
        print(
            f"error: python -m training needs the train extra ({exc.name} is not installed): "
            "uv pip install -p .venv/bin/python -e '.[train]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(run())
