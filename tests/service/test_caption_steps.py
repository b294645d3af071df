"""Caption decoding batched per step across requests, on the real tiny captioner (both decoder contracts):
requests join and leave the running set between steps, and every result equals the per-request beam
search exactly. The running images' features stay in the rows of one buffer (``ImageSlots``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.beam import Hypothesis
from contract.versions import discover
from service.batching import BatchConfig, Ticket
from service.metrics import Metrics
from service.preprocessing import image_batch
from service.repository import load_version, read_manifest
from service.runtimes import CaptionerRuntime
from service.runtimes.caption_steps import CaptionBatcher, ImageContext, ImageSlots
from service.settings import Settings


def load_captioner(repo: Path) -> CaptionerRuntime:
    version = next(v for v in discover(repo) if v.name == "tiny-captioner")
    runtime = load_version(read_manifest(version), version.path, Settings(models_dir=repo))
    assert isinstance(runtime, CaptionerRuntime)
    return runtime


@pytest.fixture(params=["per_row", "per_image"])
def captioner(request: pytest.FixtureRequest, tiny_repo: Path, per_image_repo: Path) -> CaptionerRuntime:
    """The tiny captioner with either decoder contract: features per row, or per image with
    ``image_index`` and ``projected``."""
    return load_captioner(tiny_repo if request.param == "per_row" else per_image_repo)


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


Step = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def before_each_step(captioner: CaptionerRuntime, action: Callable[[], None]) -> Step:
    """Have ``action`` run before every decoder step of ``captioner`` from now on (in the batcher's thread,
    between steps: where requests arrive mid-decoding or clients leave); return the step it wraps."""
    step = captioner.step

    def hooked(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        action()
        return step(*args)

    captioner.step = hooked  # type: ignore[method-assign]
    return step


def square(captioner: CaptionerRuntime, colour: tuple[int, int, int]) -> np.ndarray:
    """One plain square of ``colour``, preprocessed: the tiny captioner names its colour."""
    return image_batch([Image.new("RGB", (16, 16), colour)], captioner.image_spec)


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
    dark_red = square(captioner, (89, 0, 0))
    jobs += [(dark_red, 20, 1), (dark_red, 20, 3)]  # greedy and beam search disagree on it
    # a third of the requests are queued at once; the others arrive while decoding runs, from the worker
    futures: list[Future[list[Hypothesis]]] = [batcher.submit(*job) for job in jobs[:8]]
    later = iter(jobs[8:])

    def arriving() -> None:
        job = next(later, None)
        if job is not None:
            futures.append(batcher.submit(*job))

    step = before_each_step(captioner, arriving)
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
    red = square(captioner, (255, 0, 0))
    long = batcher.submit(red, 20, 2)  # "a red square" and its end: 4 steps
    joined: list[Future[list[Hypothesis]]] = []

    def second_arrives_after_the_first_step() -> None:
        if not joined:
            joined.append(batcher.submit(red, 1, 3))  # one token: it leaves after one step

    before_each_step(captioner, second_arrives_after_the_first_step)
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


def test_both_decoder_contracts_give_the_same_captions_through_the_batcher(
    tiny_repo: Path, per_image_repo: Path
) -> None:
    results = []
    for repo in (tiny_repo, per_image_repo):
        runtime = load_captioner(repo)
        config = BatchConfig(max_size=8, max_delay_s=0.05, queue_size=64)
        batcher = CaptionBatcher("tiny-captioner", runtime, config, Metrics().model("tiny-captioner", 1))
        try:
            futures = [
                batcher.submit(pixels(runtime, seed, 1 + seed % 3), 12, 1 + seed % 4) for seed in range(10)
            ]
            results.append([f.result(timeout=60) for f in futures])
        finally:
            batcher.close()
    per_row, per_image = ([h for request in result for h in request] for result in results)
    assert [h.tokens for h in per_row] == [h.tokens for h in per_image]
    np.testing.assert_allclose([h.score for h in per_row], [h.score for h in per_image], rtol=1e-5)


def context(values: list[float]) -> ImageContext:
    """One image per value: features [N, 2, 3] and projected [N, 2, 1] filled with it."""
    column = np.asarray(values, dtype=np.float32)[:, None, None]
    return ImageContext(np.broadcast_to(column, (len(values), 2, 3)).copy(), 2 * column.repeat(2, axis=1))


def test_image_slots_take_the_lowest_free_rows_and_view_up_to_the_highest() -> None:
    slots = ImageSlots()
    a = slots.place(context([1.0, 2.0]))
    b = slots.place(context([3.0]))
    assert a.tolist() == [0, 1] and b.tolist() == [2]
    view = slots.view()
    assert len(view) == 4  # rows 0..2 in use, rounded up to a power of two
    assert view.features[b, 0, 0].tolist() == [3.0] and view.projected is not None
    assert view.projected[a, 1, 0].tolist() == [2.0, 4.0]
    slots.release(a)
    assert len(slots.view()) == 4  # row 2 is still in use
    c = slots.place(context([5.0]))
    assert c.tolist() == [0]  # a freed row is taken again
    slots.release(b)
    assert len(slots.view()) == 1 and slots.view().features[0, 0, 0] == 5.0


def test_image_slots_grow_and_keep_the_rows_in_use() -> None:
    slots = ImageSlots()
    first = slots.place(context([1.0]))
    more = slots.place(context([float(v) for v in range(2, 8)]))  # 7 rows: the buffer grows to 8
    assert first.tolist() == [0] and more.tolist() == list(range(1, 7))
    assert slots.buffer is not None and len(slots.buffer) == 8
    view = slots.view()
    assert view.features[:7, 0, 0].tolist() == [float(v) for v in range(1, 8)]
    assert view.projected is not None and view.projected[:7, 0, 0].tolist() == [2.0 * v for v in range(1, 8)]


def test_abandoned_requests_leave_at_the_next_step_or_never_start(
    captioner: CaptionerRuntime, steps: list[int], make_batcher: Callable[[int], CaptionBatcher]
) -> None:
    """A request whose client went away (``Ticket.abandon``) is dropped: running, at the next step (its
    image rows freed); queued, before it starts. Neither gets an answer, and both are counted."""
    batcher = make_batcher(2)
    red = square(captioner, (255, 0, 0))
    first = batcher.submit(red, 20, 2)  # "a red square" and its end: 4 steps
    later: list[Ticket[list[Hypothesis]]] = []

    def clients_come_and_go() -> None:
        if not steps:
            later.append(batcher.submit(red, 20, 3))  # joins at step 2
            later.append(batcher.submit(red, 20, 1))  # queued: two images are the most
            later.append(batcher.submit(red, 20, 1))  # queued behind it
        elif len(steps) == 1:
            later[0].abandon()  # running: flagged
            later[1].abandon()  # queued: cancelled

    before_each_step(captioner, clients_come_and_go)
    assert captioner.detokenize(first.result(timeout=30)[0].tokens) == "a red square"
    assert captioner.detokenize(later[2].result(timeout=30)[0].tokens) == "a red square"
    # 2 rows; joined by 3 (step 2), which then left; the last request took the freed image row
    assert steps == [2, 5, 3, 3, 1, 1]
    assert later[0].abandoned and not later[0].done() and later[1].cancelled()
    assert batcher.metrics.abandoned._value.get() == 2
    assert not batcher.slots.used.any()
