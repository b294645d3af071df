"""The batch benchmark refuses bad options, and data that is not there, with one line before it starts
anything; it reads the batch command's own summary line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.batch import SUMMARY, main
from service.batch.writing import Summary


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "classify,caption"], "--tasks: unknown 'caption'; known: classify, sentiment"),
        (["--engines", "embeded"], "--engines: unknown 'embeded'; known: embedded, ray"),
        (["--raw-batch-sizes", "1,0"], "--raw-batch-sizes: each must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be positive"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", "/nonexistent", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {message}")


def test_missing_data_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "test.csv.gz").write_bytes(b"")  # the reviews are there, the images are not
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"error: no such data: {tmp_path / 'cats_vs_dogs' / 'validation'} (--data)" in err


@pytest.mark.parametrize("skipped", [0, 7])
def test_the_summary_line_of_the_batch_command_is_read(skipped: int) -> None:
    summary = Summary(answered=998, failed=2, skipped=skipped)
    summary.started -= 8.0
    found = SUMMARY.findall("a warning\n" + summary.line("out.parquet") + "\n")
    assert len(found) == 1
    answered, failed, seconds, rate = found[0]
    assert (answered, failed) == ("998", "2")
    assert float(seconds) == pytest.approx(8.0, abs=0.1)
    assert float(rate) == pytest.approx(125.0, abs=2)
