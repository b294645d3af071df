"""The benchmark refuses bad options with one line naming the option, before it starts anything; its
chart has a column per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bench.run import ROOT, latest_version, main, missing_checkpoints, plot_report


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


def test_the_chart_has_a_column_per_task(tmp_path: Path) -> None:
    rows = []
    for task in ("classify", "caption"):
        for system, clients, rate in [
            ("raw batch 1", "-", 40.0),
            ("raw batch 8", "-", 90.0),
            ("service", 16, 80.0),
            ("service", 1, 30.0),
            ("naive", 16, 20.0),
        ]:
            rows.append(
                {
                    "task": task,
                    "system": system,
                    "concurrency": clients,
                    "requests": 100,
                    "errors": 0,
                    "throughput": rate,
                    "p50_ms": 1000 / rate,
                    "p99_ms": 1500 / rate,
                }
            )
    path = plot_report(rows, ["classify", "caption"], {"service": "CPUExecutionProvider"}, tmp_path / "r.png")
    with Image.open(path) as chart:
        assert chart.format == "PNG"
        width, height = chart.size
    assert width > height  # two task columns side by side, 4.5 inches each, 7.5 high


def test_missing_training_checkpoints_are_named_before_anything_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the naive server serves each model's weights from its training checkpoint, which a clone does not have
    shipped = latest_version(ROOT / "models", "sentiment-lstm").path
    manifest = json.loads((shipped / "manifest.json").read_text())
    version = tmp_path / "models" / "sentiment-lstm" / shipped.name
    version.mkdir(parents=True)
    for checkpoint, missing in ((tmp_path / "gone.pt", True), (tmp_path / "run", False)):
        manifest["provenance"]["checkpoint"] = str(checkpoint)
        (version / "manifest.json").write_text(json.dumps(manifest))
        if not missing:
            checkpoint.mkdir()
            (checkpoint / "checkpoint.pt").write_bytes(b"")  # a run directory holding one
        assert missing_checkpoints(tmp_path / "models", ["sentiment"]) == (
            [f"sentiment-lstm ({checkpoint})"] if missing else []
        )
    manifest["provenance"]["checkpoint"] = str(tmp_path / "gone.pt")
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit) as exit_info:
        main(["--models-dir", str(tmp_path / "models"), "--tasks", "sentiment"])
    assert exit_info.value.code == 2
    assert f"these are not here: sentiment-lstm ({tmp_path / 'gone.pt'})" in capsys.readouterr().err


def test_a_folder_of_checkpoints_replaces_the_manifests(tmp_path: Path) -> None:
    # on a machine the training runs never reached (a GPU host), the naive server's checkpoints are
    # <name>.pt in one folder (bench.device writes it), whatever the manifest names
    shipped = latest_version(ROOT / "models", "sentiment-lstm").path
    version = tmp_path / "models" / "sentiment-lstm" / shipped.name
    version.mkdir(parents=True)
    (version / "manifest.json").write_bytes((shipped / "manifest.json").read_bytes())
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert missing_checkpoints(tmp_path / "models", ["sentiment"], folder) == [
        f"sentiment-lstm ({folder / 'sentiment-lstm.pt'})"
    ]
    (folder / "sentiment-lstm.pt").write_bytes(b"")
    assert missing_checkpoints(tmp_path / "models", ["sentiment"], folder) == []
