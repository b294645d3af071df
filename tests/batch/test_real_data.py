"""On the real data of ../shared/data (skipped where it is absent) and the shipped default models: the
1,000 pets validation images plus one corrupt file give 1,000 answered rows and one error row, also when
the run is killed halfway and rerun; the longest IMDB test review is answered, with ``truncated``; held-out
IMDB reviews are answered as well as the card says."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import signal
import time
from pathlib import Path

import pytest

from service.batch.outputs import read_rows
from tests.service.conftest import running_client

from .conftest import ROOT, batch_process

DATA = ROOT.parent / "shared" / "data"
PETS = DATA / "cats_vs_dogs" / "validation"
IMDB_TEST = DATA / "imdb" / "test.csv.gz"


@pytest.mark.skipif(not PETS.is_dir(), reason=f"{PETS} is not on this machine")
def test_pets_validation_with_a_corrupt_file_killed_halfway_then_rerun(tmp_path: Path) -> None:
    photos = Path(shutil.copytree(PETS, tmp_path / "pets"))
    (photos / "cats" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    out = tmp_path / "pets.parquet"
    args = (photos, "--model", "pets-lite2", "--output", out, "--chunk-rows", "64", "--no-progress")
    process = batch_process(ROOT / "models", *args)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 4 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert 0 < len(read_rows(out)) < 1001, "the kill came too late to test a resume"
    rerun = batch_process(ROOT / "models", *args)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    rows = read_rows(out)
    assert len(rows) == len({row["id"] for row in rows}) == 1001
    failed = [row for row in rows if row["error"] is not None]
    assert [(row["id"], row["error"]["code"]) for row in failed] == [("cats/corrupt.jpg", "invalid_image")]
    answered = [row for row in rows if row["error"] is None]
    correct = sum(row["labels"][0] == row["id"].split("/")[0] for row in answered)
    assert {row["model"] for row in rows} == {"pets-lite2"}
    assert correct / len(answered) > 0.98  # the shipped model's card: 99.3%


@pytest.mark.skipif(not IMDB_TEST.is_file(), reason=f"{IMDB_TEST} is not on this machine")
def test_the_longest_imdb_review_is_answered_truncated() -> None:
    reviews = list(csv.DictReader(io.StringIO(gzip.decompress(IMDB_TEST.read_bytes()).decode("utf-8"))))
    longest = max(reviews, key=lambda review: len(review["text"]))["text"]
    assert len(longest) > 10_000
    with running_client(ROOT / "models") as client:
        response = client.post("/v1/sentiment", json={"texts": [longest, "A fine film."]})
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["truncated"] is True and first["label"] in ("positive", "negative")
    assert second["truncated"] is False


@pytest.mark.skipif(not IMDB_TEST.is_file(), reason=f"{IMDB_TEST} is not on this machine")
def test_imdb_reviews_through_the_service() -> None:
    reviews = list(csv.DictReader(io.StringIO(gzip.decompress(IMDB_TEST.read_bytes()).decode("utf-8"))))
    held_out = reviews[5000::15]  # 1,000 of the rows the shipped mixture was not fitted on
    with running_client(ROOT / "models") as client:
        results = [
            result
            for start in range(0, len(held_out), 25)
            for result in client.post(
                "/v1/sentiment", json={"texts": [r["text"] for r in held_out[start : start + 25]]}
            ).json()["results"]
        ]
    labels = [review["label"] for review in held_out]
    correct = sum(result["label"] == label for result, label in zip(results, labels, strict=True))
    assert correct / len(held_out) > 0.9  # the shipped model's card: 91.64% on test[5000:]
