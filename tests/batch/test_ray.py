"""``--engine ray``: the same job as a Ray Data pipeline on a local Ray with two model actors gives the
rows of the embedded engine (ids, predictions and errors alike), and resumes the same way."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.outputs import read_rows
from service.batch.tasks import ClassifyTask
from tests.service.conftest import image_bytes

from .conftest import batch, batch_process

pytest.importorskip("ray", reason="the ray extra is not installed")


def test_the_ray_engine_gives_the_embedded_rows(tiny_models: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        colour = [(255, 0, 0), (0, 200, 0), (0, 0, 220)][i % 3]
        (photos / f"{i:02d}.png").write_bytes(image_bytes(colour, size=(20 + i, 24)))
    (photos / "broken.png").write_bytes(b"\x89PNG but no more")
    embedded = tmp_path / "embedded.parquet"
    common = ("--model", "tiny-classifier", "--batch-size", "8")  # same runs: same rounding
    assert batch(tiny_models, photos, *common, "--output", embedded) == 0
    out = tmp_path / "ray.parquet"
    (photos / "late.png").write_bytes(image_bytes((0, 0, 220)))  # only in the second run
    first = {row["id"]: row for row in read_rows(embedded)}
    # a first part written as by an interrupted run: the Ray job does the rest
    out.mkdir()
    done = [first[key] for key in sorted(first)[:10]]
    pq.write_table(pa.Table.from_pylist(done, schema=ClassifyTask.schema()), out / "part-00000.parquet")
    ray = ("--engine", "ray", "--actors", "2", "--output", out, "--no-progress")
    process = batch_process(tiny_models, photos, *common, *ray)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "answered 31, failed 1, 10 already written (skipped)" in err
    rows = {row["id"]: row for row in read_rows(out)}
    assert len(read_rows(out)) == len(rows) == 42  # each input once
    late = rows.pop("late.png")
    assert late["labels"][0] == "blue" and late["error"] is None
    assert rows == first
    assert rows["broken.png"]["error"]["code"] == "invalid_image"


def test_a_cluster_out_of_reach_is_exit_2_and_nothing_written(
    tiny_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("good\n")
    out = tmp_path / "o.jsonl"
    args = (
        texts,
        "--model",
        "tiny-sentiment",
        "--engine",
        "ray",
        "--address",
        "127.0.0.1:1",
        "--output",
        out,
    )
    assert batch(tiny_models, *args) == 2
    assert capsys.readouterr().err.strip() == "error: cannot reach Ray at 127.0.0.1:1: Connection refused"
    assert not out.exists()
