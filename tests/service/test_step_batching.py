"""Caption decoding batched per step across requests, on the real tiny captioner: requests join and leave
the running set between steps, and every result equals the per-request beam search exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.batching import BatchConfig
from service.metrics import Metrics
from service.preprocessing import image_batch
from service.repository import discover, load_version, read_manifest
from service.runtimes import CaptionerRuntime
from service.runtimes.beam import Hypothesis
from service.settings import Settings
from service.step_batching import CaptionBatcher


@pytest.fixture
def captioner(tiny_repo: Path) -> CaptionerRuntime:
    version = next(v for v in discover(tiny_repo) if v.name == "tiny-captioner")
    runtime = load_version(read_manifest(version), version.path, Settings(models_dir=tiny_repo))
    assert isinstance(runtime, CaptionerRuntime)
    return runtime


@pytest.fixture
def steps(captioner: CaptionerRuntime) -> list[int]:
    """Rows of every decoder run of ``captioner`` from now on."""
    rows: list[int] = []
    step = captioner.step

    def recorded(tokens: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows.append(len(tokens))
        return step(tokens, *rest)

    captioner.step = recorded  # type: ignore[method-assign]
    return rows


@pytest.fixture
def make_batcher(captioner: CaptionerRuntime) -> Iterator[Callable[[int], CaptionBatcher]]:
    made: list[CaptionBatcher] = []

    def make(max_images: int) -> CaptionBatcher:
        config = BatchConfig(max_size=max_images, max_delay_s=0.0, queue_size=64)
        made.append(CaptionBatcher("tiny-captioner", captioner, config, Metrics().model("tiny-captioner", 1)))
        return made[-1]

    yield make
    for batcher in made:
        batcher.close()


def pixels(captioner: CaptionerRuntime, seed: int, count: int) -> np.ndarray:
    """``count`` images with a random colour per quadrant: captions and their lengths vary."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        quadrants = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
        images.append(Image.fromarray(np.kron(quadrants, np.ones((8, 8, 1), dtype=np.uint8))))
    return image_batch(images, captioner.image_spec)


def test_results_equal_the_per_request_beam_search_while_requests_join_and_leave(
    captioner: CaptionerRuntime, steps: list[int], make_batcher: Callable[[int], CaptionBatcher]
) -> None:
    batcher = make_batcher(6)
    rng = np.random.default_rng(0)
    jobs = [
        (pixels(captioner, seed, int(rng.integers(1, 4))), int(rng.integers(1, 21)), int(rng.integers(1, 5)))
        for seed in range(24)
    ]
    dark_red = image_batch([Image.new("RGB", (16, 16), (89, 0, 0))], captioner.image_spec)
    jobs += [(dark_red, 20, 1), (dark_red, 20, 3)]  # greedy and beam search disagree on it
    # a third of the requests are queued at once; the others arrive while decoding runs, from the worker
    futures: list[Future[list[Hypothesis]]] = [batcher.submit(*job) for job in jobs[:8]]
    later = iter(jobs[8:])
    step = captioner.step

    def arriving(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        job = next(later, None)
        if job is not None:
            futures.append(batcher.submit(*job))
        return step(*args)

    captioner.step = arriving  # type: ignore[method-assign]
    results = [future.result(timeout=60) for future in futures]
    captioner.step = step  # type: ignore[method-assign]
    solo = [captioner.infer(*job) for job in jobs]
    assert results == solo  # tokens and scores, exactly
    captions = [captioner.detokenize(h.tokens) for h in results[-2] + results[-1]]
    assert captions == ["a dark square", "a red square"]
    assert max(steps) > max(len(p) * beam for p, _, beam in jobs)  # requests did share decoder runs


def test_a_short_caption_leaves_the_batch_and_a_new_request_joins_between_steps(
    captioner: CaptionerRuntime, steps: list[int], make_batcher: Callable[[int], CaptionBatcher]
) -> None:
    batcher = make_batcher(8)
    red = image_batch([Image.new("RGB", (16, 16), (255, 0, 0))], captioner.image_spec)
    long = batcher.submit(red, 20, 2)  # "a red square" and its end: 4 steps
    step = captioner.step
    joined: list[Future[list[Hypothesis]]] = []

    def second_arrives_after_the_first_step(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not joined:
            joined.append(batcher.submit(red, 1, 3))  # one token: it leaves after one step
        return step(*args)

    captioner.step = second_arrives_after_the_first_step  # type: ignore[method-assign]
    long_result, short_result = long.result(timeout=30), joined[0].result(timeout=30)
    # step 1: the first request's 2 beams; step 2: joined by the second's 3; then the second has left
    assert steps == [2, 5, 2, 2]
    assert captioner.detokenize(long_result[0].tokens) == "a red square"
    assert captioner.detokenize(short_result[0].tokens) == "a"
    assert long_result == captioner.infer(red, 20, 2) and short_result == captioner.infer(red, 1, 3)


def test_the_running_set_is_bounded_in_images(
    captioner: CaptionerRuntime, steps: list[int], make_batcher: Callable[[int], CaptionBatcher]
) -> None:
    batcher = make_batcher(2)
    futures = [batcher.submit(pixels(captioner, seed, 1), 20, 1) for seed in range(5)]
    assert [f.result(timeout=30) for f in futures] == [
        captioner.infer(pixels(captioner, s, 1), 20, 1) for s in range(5)
    ]
    assert max(steps) <= 2
