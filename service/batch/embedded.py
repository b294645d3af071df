"""The embedded engine: the job in this process. Decoding threads prepare the items ahead, a batch each
(reading files, decoding and preprocessing images, checking texts), while the main thread runs inference
on the window before, so decoding overlaps inference; at most a few batches are prepared ahead, so memory
stays bounded whatever the input's size."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import ServiceError
from .inputs import Item
from .tasks import BatchTask, Row

logger = logging.getLogger(__name__)

BATCHES_AHEAD = 2  # batches prepared beyond the window being inferred (at least one per decoding thread)


def default_decode_threads() -> int:
    """Threads that decode images: the cores but one (the inference's), at least one, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def prepare(task: BatchTask, item: Item) -> Any:
    """``task.prepare``, with the error that keeps an item from being answered returned, not raised;
    an unexpected failure (a defect) is logged and becomes the item's error, never the run's end."""
    try:
        return task.prepare(item)
    except ServiceError as exc:
        return exc
    except Exception as exc:
        logger.exception("preparing %s failed", item.id)
        return ServiceError(f"{item.id}: internal error: {type(exc).__name__}: {exc}")


def prepare_all(task: BatchTask, items: list[Item]) -> list[Any]:
    """``prepare`` for a batch of items (in one decoding thread)."""
    return [prepare(task, item) for item in items]


def predictions(
    task: BatchTask, items: list[Item], batch_size: int, decode_threads: int | None = None
) -> Iterator[list[Row]]:
    """The rows of ``items``, a window at a time (``task.window_batches`` batches), in input order, by
    ``task`` (a loaded model). Each batch is prepared in a decoding thread, ahead of the inference."""
    threads = decode_threads or default_decode_threads()
    window = task.window_batches
    pending: deque[tuple[list[Item], Future[list[Any]]]] = deque()
    starts = iter(range(0, len(items), batch_size))
    with ThreadPoolExecutor(threads, thread_name_prefix="batch-decode") as pool:
        try:
            while True:
                while len(pending) < window + max(BATCHES_AHEAD, threads):
                    start = next(starts, None)
                    if start is None:
                        break
                    batch = items[start : start + batch_size]
                    pending.append((batch, pool.submit(prepare_all, task, batch)))
                if not pending:
                    return
                taken = [pending.popleft() for _ in range(min(window, len(pending)))]
                window_items = [item for batch, _ in taken for item in batch]
                outcomes = [outcome for _, future in taken for outcome in future.result()]
                yield task.rows(window_items, outcomes, batch_size)
        finally:
            for _, future in pending:  # an interrupted run: what was not started is not waited for
                future.cancel()
