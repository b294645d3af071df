"""Temperature scaling: the fit recovers a known temperature, and a calibrated version is the same model
with its logits divided by T, served by the service like any other version."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from contract.manifest import Manifest
from contract.outputs import softmax
from tests.model_factory import make_sentiment
from training.calibrate import calibrate_version, expected_calibration_error, fit_temperature
from training.evaluate import evaluate_version, split_rows


def _sampled(temperature: float, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``temperature`` times too confident: the labels are drawn from softmax(logits / temperature)."""
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (n, 3))
    targets = np.array([rng.choice(3, p=p) for p in softmax(true_logits)])
    return true_logits * temperature, targets


def test_the_fit_recovers_the_temperature_and_calibrates() -> None:
    logits, targets = _sampled(2.5)
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(softmax(logits), targets)
    after = expected_calibration_error(softmax(logits / temperature), targets)
    assert before > 0.05 and after < 0.015


def test_split_slices() -> None:
    assert split_rows("test") == ("test", slice(None, None))
    assert split_rows("test[:5000]") == ("test", slice(None, 5000))
    assert split_rows("validation[10:20]") == ("validation", slice(10, 20))
    with pytest.raises(ValueError, match="NAME"):
        split_rows("test[a:b]")


def _reviews(root: Path) -> Path:
    """Reviews the tiny sentiment model (positive minus negative words) is right about 3 times in 4."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(400):
        label = "pos" if i % 2 else "neg"
        words = ["great", "good"] if label == "pos" else ["bad", "awful"]
        if rng.random() < 0.25:  # the wrong side's words: the model is confidently wrong
            words = ["bad", "awful"] if label == "pos" else ["great", "good"]
        rows.append((f"this movie was {' '.join(words)}", label))
    root.mkdir()
    with gzip.open(root / "test.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "rating", "id"])
        writer.writerows([text, label, 1, i] for i, (text, label) in enumerate(rows))
    return root


def test_a_calibrated_version_is_the_next_version_with_logits_over_t(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    v1 = make_sentiment(repo)
    data = _reviews(tmp_path / "reviews")
    v2 = calibrate_version(v1, data, "test[:200]")
    assert v2 == repo / "tiny-sentiment" / "2"
    manifest = Manifest.read(v2 / "manifest.json")  # the service's own validation
    temperature = json.loads((v2 / "manifest.json").read_text())["provenance"]["calibration"]["temperature"]
    assert temperature > 1.5  # logits of +-4 for a model right 3 times in 4 are overconfident
    feed = {
        "input_ids": np.array([[12, 13, 2], [16, 17, 0]], np.int64),
        "lengths": np.array([3, 2], np.int64),
    }
    raw = ort.InferenceSession(str(v1 / "model.onnx")).run(None, feed)[0]
    tempered = ort.InferenceSession(str(v2 / manifest.graphs["model"].file)).run(None, feed)[0]
    np.testing.assert_allclose(tempered, raw / temperature, rtol=1e-4)
    metrics = {
        version: evaluate_version(version, data, "test[200:]")
        for version in (v1, v2)  # the held-out rows: same accuracy, far smaller calibration error
    }
    assert metrics[v1]["accuracy"] == metrics[v2]["accuracy"]
    # far better calibrated on the rows T was not fitted on: only the bins of the two confidences remain
    assert metrics[v2]["ece"] < 0.1 < 0.15 < metrics[v1]["ece"]
    card = (v2 / "card.md").read_text()
    assert "## Calibration" in card and "reliability-test_200" in card
