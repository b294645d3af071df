"""``evaluate --batch-size`` reaches the captioner's evaluator too (it was silently ignored there), and
without it each evaluator keeps its own default."""

from __future__ import annotations

from pathlib import Path

import pytest

import training.caption.evaluate as caption_evaluate
import training.evaluate as evaluate
from training.cli import get_args_parser


def test_batch_size_reaches_the_captioner_evaluator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[dict] = []
    monkeypatch.setattr(evaluate, "read_manifest", lambda _: {"task": "image-captioning"})
    record = lambda *_, **options: seen.append(options) or {}  # noqa: E731
    monkeypatch.setattr(caption_evaluate, "evaluate_version", record)
    for argv in (["--batch-size", "8"], []):
        args = get_args_parser().parse_args(["evaluate", str(tmp_path), "--data", str(tmp_path), *argv])
        evaluate.run(args)
    assert seen == [{"batch_size": 8}, {}]
