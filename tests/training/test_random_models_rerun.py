"""``python -m bench.random_models`` into a repository that already holds its models is a one-line error
that writes nothing (it overwrote a checkpoint, then failed with a FileExistsError traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.random_models import main


def test_a_repository_that_holds_the_models_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sentiment-lstm" / "1").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"error: {tmp_path} already holds sentiment-lstm/1: choose another --out")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentiment-lstm"]
