"""Dynamic batching on real tiny models: concurrent requests share runs and each gets its own answer, a bad
item does not fail its batch-mates, a full queue answers 503 with Retry-After, and warm-up covers the
batch sizes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from contract.preprocess import preprocess_image
from contract.versions import discover
from service.batching import BatchConfig, Batcher
from service.errors import QueueFull
from service.metrics import Metrics
from service.repository import load_version, read_manifest
from service.runtimes import ClassifierRuntime, Runtime, SentimentRuntime
from service.settings import Settings

from .conftest import error, image_bytes, running_client, upload

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def load(repo: Path, name: str) -> Runtime:
    """A loaded and warmed-up runtime of the version ``name`` of ``repo``."""
    version = next(v for v in discover(repo) if v.name == name)
    return load_version(read_manifest(version), version.path, Settings(models_dir=repo))


def recording(run: Callable[[list[Any]], np.ndarray], sizes: list[int]) -> Callable[[list[Any]], np.ndarray]:
    def wrapped(items: list[Any]) -> np.ndarray:
        sizes.append(len(items))
        return run(items)

    return wrapped


@pytest.fixture
def classifier(tiny_repo: Path) -> ClassifierRuntime:
    runtime = load(tiny_repo, "tiny-classifier")
    assert isinstance(runtime, ClassifierRuntime)
    return runtime


@pytest.fixture
def sentiment(tiny_repo: Path) -> SentimentRuntime:
    runtime = load(tiny_repo, "tiny-sentiment")
    assert isinstance(runtime, SentimentRuntime)
    return runtime


def pixels(runtime: ClassifierRuntime, colour: str) -> np.ndarray:
    assert runtime.image_spec is not None
    return preprocess_image(Image.new("RGB", (20, 20), COLOURS[colour]), runtime.image_spec)


def labels(runtime: ClassifierRuntime, rows: list[np.ndarray]) -> list[str]:
    return [runtime.labels[int(row.argmax())] for row in rows]


@pytest.fixture
def batchers() -> Iterator[list[Batcher[Any, Any]]]:
    """Batchers a test makes; closed at its end."""
    made: list[Batcher[Any, Any]] = []
    yield made
    for batcher in made:
        batcher.close()


def test_concurrent_requests_share_one_run_and_each_gets_its_own_rows(
    classifier: ClassifierRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    sizes: list[int] = []
    config = BatchConfig(max_size=4, max_delay_s=30.0, queue_size=8)  # runs when 4 items are waiting
    batcher = Batcher("c", recording(classifier.infer_items, sizes), config, Metrics().model("c", 1))
    batchers.append(batcher)
    requests = [["red"], ["green", "blue"], ["blue"]]
    futures = [batcher.submit([pixels(classifier, c) for c in colours]) for colours in requests]
    results = [future.result(timeout=30) for future in futures]
    assert sizes == [4]
    assert [labels(classifier, rows) for rows in results] == requests


def test_the_delay_bounds_the_wait_for_a_batch_to_fill(
    classifier: ClassifierRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    sizes: list[int] = []
    config = BatchConfig(max_size=32, max_delay_s=0.05, queue_size=8)
    batcher = Batcher("c", recording(classifier.infer_items, sizes), config, Metrics().model("c", 1))
    batchers.append(batcher)
    assert labels(classifier, batcher.submit([pixels(classifier, "green")]).result(timeout=30)) == ["green"]
    assert sizes == [1]


def test_a_request_whose_items_fail_the_run_does_not_fail_its_batch_mates(
    sentiment: SentimentRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    sizes: list[int] = []
    config = BatchConfig(max_size=3, max_delay_s=30.0, queue_size=8)
    batcher = Batcher("s", recording(sentiment.infer_items, sizes), config, Metrics().model("s", 1))
    batchers.append(batcher)
    good = batcher.submit(["a great film"])
    bad = batcher.submit([None])  # not a text: the batch's tokenization fails
    other = batcher.submit(["awful"])
    assert [sentiment.labels[int(r.probabilities.argmax())] for r in good.result(timeout=30)] == ["positive"]
    assert [sentiment.labels[int(r.probabilities.argmax())] for r in other.result(timeout=30)] == ["negative"]
    with pytest.raises(TypeError, match="must be"):  # tokenizers: "TextInputSequence must be str"
        bad.result(timeout=30)
    assert sizes == [3, 1, 1, 1]  # the batch failed, then each request ran alone


def test_a_full_queue_refuses_instead_of_growing(
    classifier: ClassifierRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    release = threading.Event()

    def blocked(items: list[np.ndarray]) -> np.ndarray:
        release.wait(30)
        return classifier.infer_items(items)

    batcher = Batcher("c", blocked, BatchConfig(1, 0.0, queue_size=2), Metrics().model("c", 1))
    batchers.append(batcher)
    running = batcher.submit([pixels(classifier, "red")])
    while batcher.metrics.queue_depth._value.get() != 0:  # the worker took it and is blocked in the run
        threading.Event().wait(0.01)
    queued = [batcher.submit([pixels(classifier, "green")]) for _ in range(2)]
    with pytest.raises(QueueFull) as refused:
        batcher.submit([pixels(classifier, "blue")])
    assert refused.value.headers() == {"Retry-After": "1"}
    release.set()
    assert labels(classifier, running.result(timeout=30)) == ["red"]
    assert [labels(classifier, f.result(timeout=30)) for f in queued] == [["green"], ["green"]]


def test_warmup_runs_every_batch_size(classifier: ClassifierRuntime) -> None:
    assert BatchConfig(32, 0.0, 1).warmup_sizes() == [1, 2, 4, 8, 16, 32]
    assert BatchConfig(6, 0.0, 1).warmup_sizes() == [1, 2, 4, 6]
    assert BatchConfig(1, 0.0, 1).warmup_sizes() == [1]
    seen: list[int] = []
    infer = classifier.infer

    def recorded(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return infer(batch)

    classifier.infer = recorded  # type: ignore[method-assign]
    classifier.warmup([1, 2, 4, 6])
    assert seen == [1, 2, 4, 6]


# --------------------------------------------------------------------------- through the HTTP API


def metric(client: TestClient, line_start: str) -> float:
    """The value of the first sample of /metrics whose line starts with ``line_start``."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start}")


def test_concurrent_http_requests_are_batched_and_a_bad_image_is_refused_alone(repo: Path) -> None:
    # max_size 4, a long delay: the batch runs once its 4 good images are in, so they must share it
    overrides = {"tiny-classifier": {"max_size": 4, "max_delay_ms": 20000}}
    with running_client(repo, batching=overrides) as client:
        label = '{model="tiny-classifier",version="1"}'
        requests: list[list[tuple[str, tuple[str, bytes, str]]]] = [
            [upload(image_bytes(COLOURS["red"]), "red.png")],
            [
                upload(image_bytes(COLOURS["green"]), "green.png"),
                upload(image_bytes(COLOURS["blue"]), "b.png"),
            ],
            [upload(b"not an image", "broken.png")],
            [upload(image_bytes(COLOURS["blue"], "JPEG"), "blue.jpg", "image/jpeg")],
        ]
        with ThreadPoolExecutor(len(requests)) as pool:
            responses = list(
                pool.map(
                    lambda files: client.post("/v1/classify-image", files=files, data={"top_k": "1"}),
                    requests,
                )
            )
        assert [r.status_code for r in responses] == [200, 200, 400, 200]
        top = [
            [res["predictions"][0]["label"] for res in r.json()["results"]] for r in responses if r.is_success
        ]
        assert top == [["red"], ["green", "blue"], ["blue"]]
        assert responses[2].json() == error("invalid_image", "broken.png: the file is not an image", 400)
        assert metric(client, f"modelserve_batch_size_count{label}") == 1
        assert metric(client, f"modelserve_batch_size_sum{label}") == 4


def test_a_full_queue_answers_503_with_retry_after(repo: Path) -> None:
    overrides = {"tiny-sentiment": {"max_size": 32, "max_delay_ms": 60000, "queue_size": 2}}
    with running_client(repo, batching=overrides) as client:
        entry = client.app.state.registry.serving("tiny-sentiment")  # type: ignore[attr-defined]
        # two requests wait for the batch to fill (60 s): the queue is full
        waiting = [entry.serving_batcher(Batcher).submit(["good"]) for _ in range(2)]
        response = client.post("/v1/sentiment", json={"text": "a great film"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        message = "model tiny-sentiment/1 has 2 requests waiting, the most its queue holds; retry later"
        assert response.json() == error("queue_full", message, 503)
        v2 = client.post(
            "/v2/models/tiny-sentiment/infer",
            json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["good"]}]},
        )
        assert (v2.status_code, v2.headers["retry-after"], v2.json()) == (503, "1", {"error": message})
        assert metric(client, 'modelserve_queue_rejected_total{model="tiny-sentiment",version="1"}') == 2
        assert metric(client, 'modelserve_queue_depth{model="tiny-sentiment",version="1"}') == 2
    # leaving the client stops the batcher, which answers what it holds first
    assert all(f.result(timeout=5)[0].probabilities.argmax() == 1 for f in waiting)


def test_a_cancelled_request_is_skipped_and_the_worker_keeps_serving() -> None:
    """A request cancelled while queued (its client went away) is dropped and counted; when it was all
    the worker had taken, the worker waits for the next request (it used to take that for "closed" and
    stop, leaving every later request unanswered)."""
    metrics = Metrics().model("doubler", 1)
    config = BatchConfig(max_size=8, max_delay_s=0.2, queue_size=8)
    batcher = Batcher("doubler", lambda items: np.array(items) * 2, config, metrics)
    try:
        gone = batcher.submit([1])
        gone.abandon()
        assert gone.cancelled()
        time.sleep(0.4)  # past the delay: the worker has taken the queue and found nothing to run
        assert metrics.queue_depth._value.get() == 0  # and says so while it waits again
        assert [int(x) for x in batcher.submit([3, 4]).result(timeout=10)] == [6, 8]
        assert metrics.abandoned._value.get() == 1
    finally:
        batcher.close()


def test_a_request_past_the_wait_deadline_is_refused_not_served_late(
    classifier: ClassifierRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    """With max_wait_s, a request still queued when its deadline has passed is refused when its turn
    comes, instead of being served late."""
    release = threading.Event()

    def blocked(items: list[np.ndarray]) -> np.ndarray:
        release.wait(30)
        return classifier.infer_items(items)

    config = BatchConfig(max_size=1, max_delay_s=0.0, queue_size=64, max_wait_s=0.3)
    batcher = Batcher("c", blocked, config, Metrics().model("c", 1))
    batchers.append(batcher)
    first = batcher.submit([pixels(classifier, "red")])
    while batcher.metrics.queue_depth._value.get() != 0:  # the worker holds the first, blocked
        time.sleep(0.01)
    late = batcher.submit([pixels(classifier, "green")])
    time.sleep(0.4)  # past the deadline while the first still runs
    release.set()
    assert labels(classifier, first.result(timeout=30)) == ["red"]
    with pytest.raises(QueueFull, match=r"reached this request after 0\.\d s, later than the 0.3 s"):
        late.result(timeout=30)
    assert batcher.metrics.rejected._value.get() == 1


def test_a_request_that_would_start_past_the_deadline_is_refused_at_once(
    classifier: ClassifierRuntime, batchers: list[Batcher[Any, Any]]
) -> None:
    """Once the model's rate is known, the queue admits only what it can start within max_wait_s."""

    def slow(items: list[np.ndarray]) -> np.ndarray:
        time.sleep(0.05 * len(items))  # 20 items a second
        return classifier.infer_items(items)

    config = BatchConfig(max_size=1, max_delay_s=0.0, queue_size=64, max_wait_s=0.3)
    batcher = Batcher("c", slow, config, Metrics().model("c", 1))
    batchers.append(batcher)
    batcher.submit([pixels(classifier, "red")]).result(timeout=30)  # the rate: ~20 items/s
    accepted = []
    with pytest.raises(QueueFull, match=r"would start this request in about 0\.\d s") as refused:
        for _ in range(20):
            accepted.append(batcher.submit([pixels(classifier, "blue")]))
    assert 4 <= len(accepted) <= 9  # ~0.3 s of work at 20 items/s, give or take the one running
    assert refused.value.headers()["Retry-After"] == "1"
    started = time.perf_counter()
    assert all(labels(classifier, f.result(timeout=30)) == ["blue"] for f in accepted)
    assert time.perf_counter() - started < 1.0  # what was accepted is answered within its deadline
