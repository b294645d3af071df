"""Dynamic batching: concurrent requests for one model are coalesced into one onnxruntime run.

Each model has a worker thread and a bounded queue. A request puts its items (images, texts) in the
queue and gets a ``concurrent.futures.Future``: awaited by the async /v1 routes, waited on by the /v2
worker threads. The worker takes the first waiting request, waits at most ``max_delay_s`` from its
arrival for more to fill ``max_size`` items, runs them together and hands each request its own rows. A
full queue refuses at once (``QueueFull``, 503 with Retry-After) instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ModelNotReady, QueueFull
from .metrics import ModelMetrics
from .settings import Settings

T = TypeVar("T")
U = TypeVar("U")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchConfig:
    """The batching settings of one model."""

    max_size: int
    max_delay_s: float
    queue_size: int
    max_wait_s: float = 0.0  # 0: no deadline

    @classmethod
    def for_model(cls, settings: Settings, name: str) -> BatchConfig:
        """The service-wide batch settings, with the model's own overrides (``settings.batching``)."""
        override = settings.batching.get(name)
        max_size = override.max_size if override and override.max_size else settings.batch_max_size
        delay_ms = settings.batch_max_delay_ms
        if override and override.max_delay_ms is not None:
            delay_ms = override.max_delay_ms
        queue = override.queue_size if override and override.queue_size else settings.batch_queue_size
        wait_ms = settings.batch_max_wait_ms
        if override and override.max_wait_ms is not None:
            wait_ms = override.max_wait_ms
        return cls(
            max_size=max_size,
            max_delay_s=delay_ms / 1000.0,
            queue_size=queue,
            max_wait_s=wait_ms / 1000.0,
        )

    def warmup_sizes(self) -> list[int]:
        """The batch sizes a model will see, for warm-up: powers of two below ``max_size``, and it."""
        sizes = [1 << i for i in range(self.max_size.bit_length()) if 1 << i < self.max_size]
        return [*sizes, self.max_size]


class Ticket(Future[U]):
    """The future of a queued request. ``abandon`` it when its client is gone: a queued request is then
    cancelled (the worker skips it), a running one flagged (a captioner drops its search at the next
    step; a one-run batch simply finishes)."""

    abandoned = False

    def abandon(self) -> None:
        """Cancel, or flag when already running."""
        if not self.cancel():
            self.abandoned = True


@dataclass
class Pending(Generic[T, U]):
    """One request in a queue: its payload, how many rows (items) it counts for, and its future."""

    payload: T
    rows: int
    future: Ticket[U]
    enqueued: float


class QueueWorker(Generic[T, U]):
    """A bounded request queue served by one worker thread; subclasses implement ``_serve``."""

    def __init__(self, name: str, config: BatchConfig, metrics: ModelMetrics) -> None:
        self.name = name
        self.config = config
        self.metrics = metrics
        self._queue: deque[Pending[T, U]] = deque()
        self._queued_rows = 0
        self._rows_per_s: float | None = None  # the model's recent compute rate, once it has run
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name=f"batcher:{name}", daemon=True)
        self._thread.start()

    def submit_payload(self, payload: T, rows: int) -> Ticket[U]:
        """Queue a request; raises ``QueueFull`` when ``queue_size`` requests are already waiting."""
        future: Ticket[U] = Ticket()
        with self._cond:
            if self._closed:
                raise ModelNotReady(f"model {self.name} is shutting down")
            if len(self._queue) >= self.config.queue_size:
                self.metrics.rejected.inc()
                raise QueueFull(
                    f"model {self.name} has {len(self._queue)} requests waiting, the most its queue holds; "
                    "retry later"
                )
            deadline = self.config.max_wait_s
            if deadline and self._rows_per_s:
                expected = (self._queued_rows + rows) / self._rows_per_s
                if expected > deadline:
                    self.metrics.rejected.inc()
                    raise QueueFull(
                        f"model {self.name} would start this request in about {expected:.1f} s, later than "
                        f"the {deadline:g} s a request may wait; retry later",
                        retry_after_s=max(1, math.ceil(expected - deadline)),
                    )
            self._queue.append(Pending(payload, rows, future, time.perf_counter()))
            self._queued_rows += rows
            self.metrics.queue_depth.set(len(self._queue))
            self._cond.notify()
        return future

    def _take(self, max_rows: int, block: bool) -> list[Pending[T, U]]:
        """Waiting requests that fit in ``max_rows`` (the first one always, when ``block``). With
        ``block``, wait for a first request, then up to ``max_delay_s`` from its arrival for the rows to
        fill; an empty list then means the worker is closed and the queue drained. Requests cancelled
        meanwhile (their clients went away) are dropped; if they were all there was, it waits again."""
        with self._cond:
            taken: list[Pending[T, U]] = []
            while not taken:
                if block:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if not self._queue:
                        return []
                    deadline = self._queue[0].enqueued + self.config.max_delay_s
                    while self._queued_rows < max_rows and not self._closed:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                rows = 0
                while self._queue and (rows + self._queue[0].rows <= max_rows or (block and not taken)):
                    pending = self._queue.popleft()
                    self._queued_rows -= pending.rows
                    if not pending.future.set_running_or_notify_cancel():  # cancelled: the client went away
                        self.metrics.abandoned.inc()
                    elif self._too_late(pending):
                        continue
                    else:
                        taken.append(pending)
                        rows += pending.rows
                self.metrics.queue_depth.set(len(self._queue))
                if not block:
                    break
        started = time.perf_counter()
        for pending in taken:
            self.metrics.queue_wait.observe(started - pending.enqueued)
        return taken

    def _too_late(self, pending: Pending[T, U]) -> bool:
        """Whether a request taken for a run has waited past ``max_wait_s``: it is refused, not run."""
        waited = time.perf_counter() - pending.enqueued
        if not self.config.max_wait_s or waited <= self.config.max_wait_s:
            return False
        self.metrics.rejected.inc()
        pending.future.set_exception(
            QueueFull(
                f"model {self.name} reached this request after {waited:.1f} s, later than the "
                f"{self.config.max_wait_s:g} s a request may wait; retry later"
            )
        )
        return True

    def record_rate(self, rows: int, seconds: float) -> None:
        """A run's items and compute time: the rate that admission expects of the model (a moving average,
        so that it follows the load and the batch sizes)."""
        if seconds > 0:
            rate = rows / seconds
            self._rows_per_s = rate if self._rows_per_s is None else 0.8 * self._rows_per_s + 0.2 * rate

    def _serve(self) -> None:
        """The worker thread's loop: until ``_take`` returns nothing, run what it takes."""
        raise NotImplementedError

    def close(self) -> None:
        """Refuse new requests, finish those queued or running, and stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


class Batcher(QueueWorker[Sequence[T], list[R]]):
    """Coalesces requests of items into runs of ``run`` (items -> one output per item, in order: the rows
    of an array, or objects)."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[T]], Iterable[R]],
        config: BatchConfig,
        metrics: ModelMetrics,
    ) -> None:
        self._run = run
        super().__init__(name, config, metrics)

    def submit(self, items: Sequence[T]) -> Ticket[list[R]]:
        """Queue a request's items; its future gets one output per item, in order."""
        return self.submit_payload(items, len(items))

    async def infer(self, items: Sequence[T]) -> list[R]:
        """``submit`` and await the outputs without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(items))

    def _serve(self) -> None:
        while batch := self._take(self.config.max_size, block=True):
            started = time.perf_counter()
            self._execute(batch)
            seconds, rows = time.perf_counter() - started, sum(p.rows for p in batch)
            self.metrics.compute.observe(seconds)
            self.metrics.batch_size.observe(rows)
            self.record_rate(rows, seconds)

    def _execute(self, batch: list[Pending[Sequence[T], list[R]]]) -> None:
        items = [item for pending in batch for item in pending.payload]
        try:
            outputs = list(self._run(items))
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
            else:  # find the request that fails: its batch-mates still get their answers
                for pending in batch:
                    self._execute([pending])
            return
        offset = 0
        for pending in batch:
            pending.future.set_result(outputs[offset : offset + pending.rows])
            offset += pending.rows
