"""The embedded engine: the job in this process. Decoding threads prepare the items ahead (reading
files, decoding and preprocessing images, checking texts) while the main thread runs inference on the
batch before, so decoding overlaps inference; at most a few batches are prepared ahead, so memory stays
bounded whatever the input's size."""

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

BATCHES_AHEAD = 2  # batches prepared while one is inferred


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


def predictions(
    task: BatchTask, items: list[Item], batch_size: int, decode_threads: int | None = None
) -> Iterator[list[Row]]:
    """The rows of ``items``, a batch at a time, in input order, by ``task`` (a loaded model)."""
    threads = decode_threads or default_decode_threads()
    pending: deque[tuple[Item, Future[Any]]] = deque()
    upcoming = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="batch-decode") as pool:
        try:
            while True:
                while len(pending) < batch_size * (1 + BATCHES_AHEAD):
                    item = next(upcoming, None)
                    if item is None:
                        break
                    pending.append((item, pool.submit(prepare, task, item)))
                if not pending:
                    return
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                yield task.rows([item for item, _ in batch], [future.result() for _, future in batch])
        finally:
            for _, future in pending:  # an interrupted run: what was not started is not waited for
                future.cancel()
