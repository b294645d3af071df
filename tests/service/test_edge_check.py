"""The edge check script's quick scenarios pass against the service as it is, and a check that fails
makes it exit 1 (so that it can fail)."""

from __future__ import annotations

import pytest

from bench import edge_check


def test_the_quick_scenarios_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert edge_check.main(["--only", "corpus,header-flood,repository,keys"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("PASS") >= 50


def test_a_failed_check_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(report: edge_check.Report, *_: object) -> None:
        report.check("corpus", "a check that does not hold", False, "measured")

    monkeypatch.setitem(edge_check.SCENARIOS, "corpus", broken)
    assert edge_check.main(["--only", "corpus"]) == 1
    assert "FAIL  corpus       a check that does not hold: measured" in capsys.readouterr().out


def test_an_unknown_scenario_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        edge_check.main(["--only", "corpse"])
    assert exit_info.value.code == 2
