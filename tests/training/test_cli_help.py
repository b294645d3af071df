"""``python -m training --help``, every subcommand's ``--help`` and argument errors import nothing of the
train extra (they took 15-30 s when the parser was built by importing every recipe); each subcommand
imports its recipe when it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from training import options
from training.cli import get_args_parser, main

HEAVY = {"torch", "torchvision", "timm", "onnx", "onnxruntime", "matplotlib", "sklearn", "scipy"}
SUBCOMMANDS = [
    "digits",
    "sentiment",
    "pretrain",
    "finetune",
    "imagenet",
    "caption",
    "caption-scst",
    "calibrate",
    "ngrams",
    "average",
    "export",
    "evaluate",
]
ROOT = Path(__file__).resolve().parents[2]


def _imported(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m training *argv``; the top-level packages it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "training", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "training" in modules  # -X importtime did report
    return result, modules


def test_the_subcommands_are_all_there() -> None:
    (subparsers,) = (a for a in get_args_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subparsers.choices) == SUBCOMMANDS


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in SUBCOMMANDS)], ids=" ".join)
def test_help_imports_no_train_extra(argv: list[str]) -> None:
    result, modules = _imported(argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m training")
    assert modules.isdisjoint(HEAVY), sorted(modules & HEAVY)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["digits", "--data", "x", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["finetune", "--data", "x", "--arch", "vgg16"], "argument --arch: invalid choice: 'vgg16'"),
        (["caption", "--data", "x", "--epoch", "1"], "unrecognized arguments: --epoch 1"),
        (
            ["caption-scst", "r", "--data", "x", "--beam-size", "0"],
            "argument --beam-size: must be at least 1",
        ),
        (
            ["caption-scst", "r", "--data", "x", "--bleu-weight", "-1"],
            "argument --bleu-weight: must be at least 0",
        ),
        (["average", "r"], "give at least two runs"),
        (["export"], "the following arguments are required: run"),
        (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_argument_errors_import_no_train_extra(argv: list[str], message: str) -> None:
    result, modules = _imported(argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert modules.isdisjoint(HEAVY), sorted(modules & HEAVY)


# Python with the train extra's packages made uninstallable, running ``python -m training``.
WITHOUT_TRAIN_EXTRA = textwrap.dedent(
    """
    import importlib.abc, runpy, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            extra = {"torch", "torchvision", "timm", "onnx", "onnxscript", "matplotlib", "sklearn"}
            if name.split(".")[0] in extra:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    sys.argv = ["python -m training", *sys.argv[1:]]
    runpy.run_module("training", run_name="__main__", alter_sys=True)
    """
)


def _without_train_extra(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("argv", [["--help"], ["finetune", "--help"], ["caption", "--help"]], ids=" ".join)
def test_help_works_without_the_train_extra(argv: list[str]) -> None:
    result = _without_train_extra(argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m training")


@pytest.mark.parametrize(
    "argv",
    [
        ["digits", "--data", "nowhere"],
        ["finetune", "--data", "nowhere"],
        ["caption", "--data", "nowhere"],
        ["export", "nowhere"],
        ["evaluate", "nowhere", "--data", "nowhere"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_subcommand_without_the_train_extra_is_one_line(argv: list[str], tmp_path: Path) -> None:
    result = _without_train_extra([*argv, "--out", str(tmp_path)] if argv[0] != "evaluate" else argv)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: python -m training needs the train extra (")
    assert "is not installed): uv pip install -p .venv/bin/python -e '.[train]'" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("argv", "module", "function"),
    [
        (["digits", "--data", "d"], "training.digits", "train"),
        (["sentiment", "--data", "d"], "training.sentiment", "train"),
        (["pretrain", "--data", "d"], "training.finetune", "pretrain"),
        (["finetune", "--data", "d"], "training.finetune", "finetune"),
        (["imagenet"], "training.finetune", "imagenet"),
        (["caption", "--data", "d"], "training.caption.train", "train"),
        (["export", "run"], "training.export", "run"),
        (["evaluate", "v", "--data", "d"], "training.evaluate", "run"),
    ],
)
def test_each_subcommand_runs_its_recipe(
    argv: list[str], module: str, function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(f"{module}.{function}", seen.append)
    assert main(argv) == 0
    (args,) = seen
    assert args.command == argv[0]


def test_calibrate_runs_calibrate_version(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple] = []
    monkeypatch.setattr("training.calibrate.calibrate_version", lambda *args: seen.append(args))
    assert main(["calibrate", "v", "--data", "d", "--split", "test[:10]", "--out", "o"]) == 0
    assert seen == [(Path("v"), Path("d"), "test[:10]", Path("o"))]


def test_the_option_choices_repeated_for_the_parser_match_their_sources() -> None:
    """training.options repeats these because their own modules import torch."""
    from training.backbone import ARCHS
    from training.caption import export as caption_export
    from training.caption.model import FEATURE_LAYERS
    from training.export import OPSET

    assert options.ARCHS == ARCHS
    assert options.FEATURE_LAYERS == FEATURE_LAYERS
    assert options.OPSET == OPSET == caption_export.OPSET
