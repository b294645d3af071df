"""The n-gram bag beside a sentiment model: the graph computes what numpy computes (distinct features,
hashed bigrams, padding ignored, the old model on its own window), and a version made by ``ngrams`` is
served by the service like any other, right where the word-counting model alone is wrong."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from contract.manifest import Manifest
from service.runtimes import SentimentRuntime
from tests.model_factory import SENTIMENT_VOCAB, make_sentiment
from tests.training.test_round_trip import served
from training.cli import main
from training.evaluate import evaluate_version
from training.ngrams import combined_graph, feature_ids

SPEC = {"input_ids": "input_ids", "lengths": "lengths"}


def _counting_margin(row: np.ndarray, window: int) -> float:
    """The tiny model's class-1 margin: 2 x (positive - negative words) among the first ``window``."""
    words = [SENTIMENT_VOCAB[i] for i in row[:window]]
    return 2.0 * (sum(w in ("good", "great", "love", "excellent") for w in words)
                  - sum(w in ("bad", "awful", "hate", "terrible") for w in words))  # fmt: skip


def test_the_graph_computes_the_bag_as_numpy_does(tmp_path: Path) -> None:
    v1 = make_sentiment(tmp_path / "models")
    vocab, buckets, window = len(SENTIMENT_VOCAB), 7, 4
    rng = np.random.default_rng(0)
    weights = rng.normal(size=vocab + buckets).astype(np.float32)
    mixture = np.array([0.5, 2.0], np.float32)
    graph = combined_graph(v1 / "model.onnx", SPEC, window, vocab, weights, 0.25, mixture, -0.1, "logits")
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    rows = [
        np.array([12, 12, 12, 12, 12, 12]),  # one word six times: counted once by the bag
        np.array([16, 3, 16, 3, 16, 3, 16]),  # a repeated bigram, and negative words past the window
        np.array([15]),  # one word: no bigram
        rng.integers(1, vocab, 9),
    ]
    lengths = np.array([len(r) for r in rows])
    ids = np.zeros((len(rows), lengths.max() + 3), np.int64)  # padding beyond the longest too
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    logits = session.run(None, {"input_ids": ids, "lengths": lengths})[0]
    for row, got in zip(rows, logits, strict=True):
        bag = weights[feature_ids(row, vocab, buckets)].sum() + 0.25
        margin = 0.5 * _counting_margin(row, window) + 2.0 * bag - 0.1
        np.testing.assert_allclose(got, [-margin / 2, margin / 2], rtol=1e-5, atol=1e-5)
    # alone or beside a longer row: the same answer
    alone = session.run(None, {"input_ids": ids[2:3, :1], "lengths": lengths[2:3]})[0]
    np.testing.assert_allclose(alone, logits[2:3], rtol=1e-6)


def _negations(root: Path) -> Path:
    """Reviews whose sentiment is in a bigram ("not good" is negative) that word counting reads wrong."""
    rng = np.random.default_rng(3)
    phrases = {"pos": ["was good", "was great", "was not bad", "was not awful"],
               "neg": ["was bad", "was awful", "was not good", "was not great"]}  # fmt: skip
    root.mkdir()
    for split, n in (("train", 400), ("test", 400)):
        rows = []
        for i in range(n):
            label = "pos" if i % 2 else "neg"
            filler = " ".join(rng.choice(["the", "movie", "film", "it", "and"], size=rng.integers(1, 6)))
            rows.append((f"{filler} this movie {rng.choice(phrases[label])}", label, 1, i))
        with gzip.open(root / f"{split}.csv.gz", "wt", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label", "rating", "id"])
            writer.writerows(rows)
    return root


def test_an_ngrams_version_is_served_and_reads_negations(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    v1 = make_sentiment(repo)
    data = _negations(tmp_path / "reviews")
    args = ["ngrams", str(v1), "--data", str(data), "--split", "test[:200]", "--buckets", "64"]
    assert main([*args, "--max-length", "48"]) == 0
    v2 = repo / "tiny-sentiment" / "2"
    manifest = Manifest.read(v2 / "manifest.json")  # the service's own validation
    assert manifest.text is not None and manifest.text.max_length == 48
    provenance = json.loads((v2 / "manifest.json").read_text())["provenance"]["ngrams"]
    assert provenance["from_version"] == 1 and provenance["lstm_window"] == 32

    metrics = {version: evaluate_version(version, data, "test[200:]") for version in (v1, v2)}
    assert metrics[v1]["accuracy"] <= 0.6 and metrics[v2]["accuracy"] == 1.0
    assert "## Bag of n-grams" in (v2 / "card.md").read_text()

    runtime = served(v2)
    assert isinstance(runtime, SentimentRuntime)
    texts = ["this movie was not good", "the film was not bad", "it was great", "this movie was awful"]
    batch = runtime.predict(texts)
    assert batch.argmax(axis=1).tolist() == [0, 1, 1, 0]
    for text, row in zip(texts, batch, strict=True):  # padding never changes a prediction
        np.testing.assert_allclose(runtime.predict([text])[0], row, rtol=1e-5)


def test_ngrams_refuses_a_model_it_cannot_extend(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.model_factory import make_classifier

    version = make_classifier(tmp_path / "models")
    assert main(["ngrams", str(version), "--data", str(tmp_path), "--split", "test"]) == 2
    assert "needs a binary sentiment version" in capsys.readouterr().err
    sentiment = make_sentiment(tmp_path / "models", max_length=32)
    short = ["ngrams", str(sentiment), "--data", str(tmp_path), "--split", "test", "--max-length", "16"]
    assert main(short) == 2
    assert "--max-length 16 is below the 32 words" in capsys.readouterr().err


def test_a_successor_keeps_every_older_version_s_metrics(tmp_path: Path) -> None:
    from training.calibrate import calibrate_version
    from training.ngrams import ngram_version

    v1 = make_sentiment(tmp_path / "models")
    data = _negations(tmp_path / "reviews")
    evaluate_version(v1, data, "test[200:]")
    v2 = calibrate_version(v1, data, "test[:200]")
    evaluate_version(v2, data, "test[200:]")
    v3 = ngram_version(v2, data, "test[:200]", buckets=64, max_length=48)
    provenance = json.loads((v3 / "manifest.json").read_text())["provenance"]
    assert set(provenance["superseded_version_metrics"]) == {"v1 test[200:]", "v2 test[200:]"}
    assert {"calibration", "ngrams"} <= provenance.keys() and "evaluation" not in provenance
    card = (v3 / "card.md").read_text()
    assert "| v1 test[200:] |" in card and "| v2 test[200:] |" in card
