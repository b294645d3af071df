"""Run directories: a run that fails before it wrote anything but its config leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from training import runs


def _run_dir(root: Path) -> Path:
    run_dir = runs.make_run_dir(root, "demo")
    runs.save_config(run_dir, {"seed": 0})
    return run_dir


@pytest.mark.parametrize("error", [RuntimeError("bad batch"), KeyboardInterrupt()])
def test_a_run_that_fails_with_only_its_config_is_removed(tmp_path: Path, error: BaseException) -> None:
    run_dir = _run_dir(tmp_path)
    with pytest.raises(type(error)), runs.removed_on_early_failure(run_dir):
        raise error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("output", ["checkpoint.pt", "epochs.log", "cache"])
def test_a_failed_run_with_partial_outputs_is_kept(tmp_path: Path, output: str) -> None:
    run_dir = _run_dir(tmp_path)
    with pytest.raises(RuntimeError, match="epoch 3"), runs.removed_on_early_failure(run_dir):
        if output == "cache":
            (run_dir / output).mkdir()
        else:
            (run_dir / output).write_text("partial")
        raise RuntimeError("epoch 3 failed")
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(["config.json", output])


def test_a_run_that_does_not_fail_is_kept(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path)
    with runs.removed_on_early_failure(run_dir) as inside:
        assert inside == run_dir
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]
