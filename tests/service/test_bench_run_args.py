"""The benchmark refuses bad options with one line naming the option, before it starts anything."""

from __future__ import annotations

import pytest

from bench.run import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "classify,captoin"], "--tasks: unknown 'captoin'; known: classify, sentiment, caption"),
        (["--batch-sizes", "1,eight"], "--batch-sizes: comma-separated whole numbers, not '1,eight'"),
        (["--workers", "1,0"], "--workers: each must be at least 1"),
        (["--duration", "0"], "--duration must be positive"),
        (["--load-processes", "-2"], "--load-processes must be positive"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--models-dir", "/nonexistent", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {message}")
