"""Entry point for ``python -m training``."""

import sys

try:
    from training.cli import main
except ModuleNotFoundError as exc:  # torch and the rest of the train extra are optional
    if exc.name is None or exc.name.split(".")[0] not in {
        "torch",
        "torchvision",
        "onnx",
        "onnxscript",
        "tqdm",
        "matplotlib",
        "nltk",
    }:
        raise
    print(
        f"error: python -m training needs the train extra ({exc.name} is not installed): "
        "uv pip install -p .venv/bin/python -e '.[train]'",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

if __name__ == "__main__":
    raise SystemExit(main())
