"""Helpers of the batch command's tests: inputs on disk and running the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.batch.__main__ import main
from tests.model_factory import make_repository

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-classifier, tiny-sentiment and tiny-captioner (version 1 each); read-only."""
    return make_repository(tmp_path_factory.mktemp("models"))


def batch(models: Path, *args: str | Path) -> int:
    """Run ``python -m service.batch`` in this process; its exit status."""
    return main([*map(str, args), "--models-dir", str(models), "--no-progress"])


def batch_process(models: Path, *args: str | Path) -> subprocess.Popen[str]:
    """Start ``python -m service.batch`` as a process of its own."""
    command = [sys.executable, "-m", "service.batch", *map(str, args), "--models-dir", str(models)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
