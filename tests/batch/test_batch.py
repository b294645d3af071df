"""``python -m service.batch`` on real tiny models: one row per input (answered, or with its error),
Parquet and JSONL, every input kind, resumable after a kill, and run-level mistakes as one line, exit 2."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.outputs import read_rows
from tests.service.conftest import image_bytes

from .conftest import batch, batch_process

COLOURS = {"red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 220)}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of 9 images in nested folders, one of them corrupt, one not an image by its suffix."""
    root = tmp_path / "photos"
    for i, (name, colour) in enumerate(COLOURS.items()):
        for j, fmt in enumerate(("PNG", "JPEG")):
            folder = root / name / ("deep" if j else "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}{j}.{fmt.lower()}").write_bytes(image_bytes(colour, fmt))
    (root / "gif").mkdir()
    (root / "gif" / "blue.gif").write_bytes(image_bytes(COLOURS["blue"], "GIF"))
    (root / "broken.jpg").write_bytes(b"this is not a JPEG")
    (root / "huge.png").write_bytes(image_bytes(size=(9000, 6000)))
    (root / "notes.txt").write_text("not an image suffix: not an input")
    return root


def test_a_folder_of_images_to_parquet(tiny_models: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    assert batch(tiny_models, photos, "--model", "tiny-classifier", "--top-k", "2", "--output", out) == 0
    table = pq.read_table(out)
    assert table.schema.field("labels").type == pa.list_(pa.string())
    rows = {row["id"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted(
        [f"{name}/{i}0.png" for i, name in enumerate(COLOURS)]
        + [f"{name}/deep/{i}1.jpeg" for i, name in enumerate(COLOURS)]
        + ["gif/blue.gif", "broken.jpg", "huge.png"]
    )
    for key, row in rows.items():
        assert (row["model"], row["version"]) == ("tiny-classifier", 1)
        if key in ("broken.jpg", "huge.png"):
            continue
        assert row["error"] is None and len(row["labels"]) == 2
        assert row["labels"][0] == key.split("/")[0].replace("gif", "blue")
        assert row["probabilities"][0] >= row["probabilities"][1]
    assert rows["broken.jpg"]["error"] == {
        "code": "invalid_image",
        "message": "broken.jpg: the file is not an image",
    }
    assert rows["broken.jpg"]["labels"] is None
    assert rows["huge.png"]["error"]["code"] == "image_too_large"


def test_captions_of_a_glob_to_jsonl(tiny_models: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.jsonl"
    pattern = str(photos / "**" / "*.png")
    assert batch(tiny_models, pattern, "--model", "tiny-captioner", "--beam-size", "1", "--output", out) == 0
    rows = {row["id"]: row for row in read_rows(out)}
    assert sorted(rows) == sorted(str(p) for p in photos.rglob("*.png"))
    red = rows[str(photos / "red" / "00.png")]
    assert set(red) == {"id", "model", "version", "caption", "score", "error"}
    assert "red" in red["caption"] and red["score"] < 0 and red["error"] is None


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_csv_of_texts_to_jsonl(tiny_models: Path, tmp_path: Path) -> None:
    reviews = _write_csv(
        tmp_path / "reviews.csv",
        [
            {"review": "a great film", "key": "r1"},
            {"review": "   ", "key": "r2"},
            {"review": "awful awful", "key": "r3"},
            {"review": "good " * 31 + "bad " * 40, "key": "r4"},  # tiny-sentiment reads 32 tokens
        ],
    )
    out = tmp_path / "out.jsonl"
    args = ("--model", "tiny-sentiment", "--text-column", "review", "--id-column", "key", "--output", out)
    assert batch(tiny_models, reviews, *args) == 0
    rows = read_rows(out)
    assert [row["id"] for row in rows] == ["r1", "r2", "r3", "r4"]
    assert [row["label"] for row in rows] == ["positive", None, "negative", "positive"]
    assert [row["truncated"] for row in rows] == [False, None, False, True]
    assert rows[1]["error"] == {"code": "empty_text", "message": "text 1 is empty"}
    assert rows[0]["probability"] > 0.5 and rows[0]["model"] == "tiny-sentiment"


def test_jsonl_parquet_and_text_file_inputs(tiny_models: Path, tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        "\n".join(json.dumps(r) for r in [{"text": "good"}, {"text": None}, {"text": 7}, {"text": "bad"}])
    )
    out = tmp_path / "a.parquet"
    assert batch(tiny_models, lines, "--model", "tiny-sentiment", "--output", out) == 0
    rows = read_rows(out)
    assert [row["id"] for row in rows] == ["0", "1", "2", "3"]
    assert [row["error"] and row["error"]["message"] for row in rows] == [
        None,
        "text 1 is empty (null)",
        "text 2 is a int, not a text",
        None,
    ]
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"body": ["bad film", "great"], "n": [10, 20]}), table)
    out = tmp_path / "b.jsonl"
    args = ("--model", "tiny-sentiment", "--text-column", "body", "--id-column", "n", "--output", out)
    assert batch(tiny_models, table, *args) == 0
    assert [(row["id"], row["label"]) for row in read_rows(out)] == [("10", "negative"), ("20", "positive")]
    plain = tmp_path / "in.txt"
    plain.write_text("great\n\nawful\n")
    out = tmp_path / "c.jsonl"
    assert batch(tiny_models, plain, "--model", "tiny-sentiment", "--output", out) == 0
    assert [(row["id"], row["label"]) for row in read_rows(out)] == [
        ("0", "positive"),
        ("1", None),
        ("2", "negative"),
    ]


def test_a_rerun_skips_what_is_written(
    tiny_models: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.parquet"
    args = ("--model", "tiny-classifier", "--output", out, "--chunk-rows", "2", "--batch-size", "2")
    assert batch(tiny_models, photos, *args) == 0
    first = sorted(read_rows(out), key=lambda row: row["id"])
    assert len(list(out.glob("part-*.parquet"))) == 5  # 9 rows, 2 a chunk
    (photos / "red" / "late.png").write_bytes(image_bytes(COLOURS["red"]))
    capsys.readouterr()
    assert batch(tiny_models, photos, *args) == 0
    assert "answered 1, failed 0, 9 already written (skipped)" in capsys.readouterr().err
    rows = sorted(read_rows(out), key=lambda row: row["id"])
    assert [row for row in rows if row["id"] != "red/late.png"] == first
    assert len(rows) == 10


def test_a_killed_run_resumes_and_writes_each_input_once(tiny_models: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    words = ["good", "bad", "great film", "awful movie", "the"]
    texts.write_text("\n".join(f"{words[i % 5]} {i}" for i in range(50_000)))
    out = tmp_path / "out.jsonl"
    args = (texts, "--model", "tiny-sentiment", "--output", out, "--batch-size", "4", "--chunk-rows", "100")
    process = batch_process(tiny_models, *args)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 20_000) and process.poll() is None:
        assert time.monotonic() < deadline, "no chunk written within 60 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    written = len(read_jsonl_complete(out))
    assert 0 < written < 50_000, "the kill came too late to test a resume"
    rerun = batch_process(tiny_models, *args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"{written} already written (skipped)" in err
    rows = read_rows(out)
    assert sorted(int(row["id"]) for row in rows) == list(range(50_000))
    assert all(
        row["label"] == ("positive" if int(row["id"]) % 5 in (0, 2) else "negative")
        for row in rows
        if int(row["id"]) % 5 != 4
    )


def read_jsonl_complete(path: Path) -> list[str]:
    """The complete lines of a JSONL file (a kill may leave the last one half-written)."""
    data = path.read_text()
    return data[: data.rfind("\n") + 1].splitlines()


def test_an_interrupted_run_writes_what_it_has_and_exits_130(tiny_models: Path, tmp_path: Path) -> None:
    count = 200_000  # ~15 s of work here: Ctrl-C comes long before the end
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"good {i}" for i in range(count)))
    out = tmp_path / "out.parquet"
    args = (
        texts,
        "--model",
        "tiny-sentiment",
        "--output",
        out,
        "--batch-size",
        "2",
        "--chunk-rows",
        "10000000",
    )
    process = batch_process(tiny_models, *args)
    assert process.stderr is not None
    while "to do" not in process.stderr.readline():  # the model is loaded, the work starts
        assert process.poll() is None
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "rerun the same command to resume" in err
    written = len(read_rows(out))
    assert 0 < written < count  # the rows made before Ctrl-C, though no chunk had filled
    rerun = batch_process(tiny_models, *args, "--no-progress")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert sorted(int(row["id"]) for row in read_rows(out)) == list(range(count))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("no/such/dir", "error: no/such/dir: no such file or directory"),
        ("{tmp}/t.csv --text-column body", "no column 'body'; it has 'text'"),
        ("{tmp}/t.csv --model nope", "no model 'nope' in"),
        ("{tmp}/t.csv --model tiny-classifier", "model tiny-classifier (image-classification) reads images"),
        ("{tmp}/t.csv --output {tmp}/o.csv", "must end in .parquet (a directory of parts) or .jsonl"),
        ("{tmp}/t.csv --output {tmp}/t.csv/o.jsonl", "cannot write here"),
        ("{tmp}/t.csv --batch-size 0", "--batch-size must be between 1 and 4096, got 0"),
        ("{tmp}/dup.csv --id-column k", "id 'a' of column 'k' appears more than once"),
        ("{tmp}/empty", "no image files"),
    ],
)
def test_run_level_mistakes_are_one_line_and_exit_2_before_any_work(
    tiny_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    _write_csv(tmp_path / "t.csv", [{"text": "good"}])
    _write_csv(tmp_path / "dup.csv", [{"text": "good", "k": "a"}, {"text": "bad", "k": "a"}])
    (tmp_path / "empty").mkdir()
    argv = args.format(tmp=tmp_path).split()
    if "--model" not in argv:
        argv += ["--model", "tiny-sentiment"]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "o.jsonl")]
    assert batch(tiny_models, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "o.jsonl").exists()


def test_an_output_of_another_model_is_refused(tiny_models: Path, tmp_path: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("good\n")
    out = tmp_path / "o.jsonl"
    out.write_text(json.dumps({"id": "0", "model": "other", "version": 3}) + "\n")
    assert batch(tiny_models, texts, "--model", "tiny-sentiment", "--output", out) == 2
    assert out.read_text().count("\n") == 1
