"""Caption decoding batched per step across requests (iteration-level batching, as LLM servers do).

One worker thread per captioner keeps a running set of beam searches from many requests. Each iteration
it admits waiting requests (their images go through the encoder together), runs one decoder step for
every beam of every running search in a single decoder run, and hands finished requests their captions.
A short caption leaves the running set as soon as it ends, whatever longer ones it was decoded with; a
request arriving mid-way joins at the next step. Each search advances exactly as it would alone
(``BeamSearch``) on the decoder outputs it is given, so the results equal the per-request beam search's
on the same outputs; onnxruntime's own outputs for a row may differ in the last bits with the batch it is
run in (~2e-6 in log-probability on the CPU), and so may the scores.

The running images' features (what the decoder attends to) stay in the rows of one buffer from admission
to finish (``ImageSlots``), and each step feeds a view of it with the index of every decoder row's image,
instead of copying every row's features (100 KB each for the default captioner) at every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from contract.beam import BeamSearch, Hypothesis, advance_together

from ..batching import BatchConfig, Pending, QueueWorker, Ticket
from ..metrics import ModelMetrics
from .base import padded_size

if TYPE_CHECKING:  # for annotations only: captioner.py imports this module (its batcher, ImageContext)
    from .captioner import CaptionerRuntime


@dataclass(frozen=True)
class ImageContext:
    """What the caption decoder attends to, one row per image: the encoder's features and, when the
    model has it, their attention projection."""

    features: np.ndarray
    projected: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.features)

    def rows(self, start: int, end: int) -> ImageContext:
        """The images ``start:end`` (views, not copies)."""
        projected = None if self.projected is None else self.projected[start:end]
        return ImageContext(self.features[start:end], projected)


@dataclass(frozen=True)
class CaptionJob:
    """One request: preprocessed images [N, C, H, W] and its decoding options."""

    pixels: np.ndarray
    max_length: int
    beam_size: int


@dataclass
class _Running:
    pending: Pending[CaptionJob, list[Hypothesis]]
    search: BeamSearch
    slots: np.ndarray  # per image of the search, its row in the ImageSlots


class ImageSlots:
    """The per-image decoder context of the running searches, each image in a row of one buffer from
    admission until its search finishes. Rows are taken lowest first, so ``view`` (the rows up to the
    highest in use, rounded up to a power of two) stays as short as the running set allows; the buffer
    doubles when an admission does not fit."""

    def __init__(self) -> None:
        self.buffer: ImageContext | None = None
        self.used = np.zeros(0, dtype=bool)

    def place(self, context: ImageContext) -> np.ndarray:
        """Copy ``context``'s images into free rows; return their row indices."""
        free = np.flatnonzero(~self.used)
        if self.buffer is None or len(free) < len(context):
            self._grow(len(self.used) - len(free) + len(context), context)
            free = np.flatnonzero(~self.used)
        assert self.buffer is not None
        rows = free[: len(context)]
        self.buffer.features[rows] = context.features
        if self.buffer.projected is not None and context.projected is not None:
            self.buffer.projected[rows] = context.projected
        self.used[rows] = True
        return rows

    def release(self, rows: np.ndarray) -> None:
        """Free the rows of a finished search."""
        self.used[rows] = False

    def view(self) -> ImageContext:
        """The buffer's rows up to the highest in use, rounded up to a power of two (a view, no copy)."""
        assert self.buffer is not None
        in_use = np.flatnonzero(self.used)
        end = padded_size(int(in_use[-1]) + 1) if len(in_use) else 1
        return self.buffer.rows(0, end)

    def _grow(self, needed: int, like: ImageContext) -> None:
        capacity = padded_size(max(needed, 2 * len(self.used)))
        old = self.buffer

        def resized(template: np.ndarray, current: np.ndarray | None) -> np.ndarray:
            out = np.zeros((capacity, *template.shape[1:]), dtype=template.dtype)
            if current is not None:
                out[: len(current)] = current
            return out

        features = resized(like.features, old.features if old is not None else None)
        projected = None
        if like.projected is not None:
            projected = resized(like.projected, old.projected if old is not None else None)
        self.buffer = ImageContext(features, projected)
        self.used = np.concatenate([self.used, np.zeros(capacity - len(self.used), dtype=bool)])


class CaptionBatcher(QueueWorker[CaptionJob, list[Hypothesis]]):
    """Decodes the captions of concurrent requests together, step by step. ``max_size`` bounds the images
    in the running set (each with its beams); ``max_delay_s`` is the wait for company when idle."""

    def __init__(
        self, name: str, runtime: CaptionerRuntime, config: BatchConfig, metrics: ModelMetrics
    ) -> None:
        self.runtime = runtime
        self.slots = ImageSlots()  # the worker thread's alone
        super().__init__(name, config, metrics)

    def submit(self, pixels: np.ndarray, max_length: int, beam_size: int) -> Ticket[list[Hypothesis]]:
        """Queue a request; its future gets the best hypothesis per image."""
        return self.submit_payload(CaptionJob(pixels, max_length, beam_size), rows=len(pixels))

    def _serve(self) -> None:
        running: list[_Running] = []
        while True:
            running = self._drop_abandoned(running)
            free = self.config.max_size - sum(r.search.n_images for r in running)
            admitted = self._take(free, block=not running)
            if not running and not admitted:
                return  # closed, and everything finished
            running += self._start(admitted)
            if running:
                self._step(running)
            for entry in running:
                if entry.search.done:
                    self.slots.release(entry.slots)
                    if not entry.pending.future.done():  # done: failed already
                        entry.pending.future.set_result(entry.search.best())
            running = [entry for entry in running if not entry.search.done]

    def _drop_abandoned(self, running: list[_Running]) -> list[_Running]:
        """The searches whose clients are still there; the others' rows are freed."""
        kept = []
        for entry in running:
            if entry.pending.future.abandoned:
                self.slots.release(entry.slots)
                self.metrics.abandoned.inc()
            else:
                kept.append(entry)
        return kept

    def _start(self, admitted: list[Pending[CaptionJob, list[Hypothesis]]]) -> list[_Running]:
        """Encode the admitted requests' images in one run and start a search for each request."""
        if not admitted:
            return []
        started = time.perf_counter()
        try:
            context, h0, c0 = self.runtime.encode(np.concatenate([p.payload.pixels for p in admitted]))
        except Exception as exc:
            if len(admitted) == 1:
                admitted[0].future.set_exception(exc)
                return []
            return [entry for pending in admitted for entry in self._start([pending])]
        self.metrics.compute.observe(time.perf_counter() - started)
        searches: list[_Running] = []
        offset = 0
        for pending in admitted:
            job, end = pending.payload, offset + pending.rows
            search = self.runtime.new_search(h0[offset:end], c0[offset:end], job.max_length, job.beam_size)
            searches.append(_Running(pending, search, self.slots.place(context.rows(offset, end))))
            offset = end
        return searches

    def _step(self, running: list[_Running]) -> None:
        """One decoder run for every row of every running search."""
        searches = [entry.search for entry in running]
        started = time.perf_counter()
        try:
            log_probs, h_out, c_out = self.runtime.step(
                np.concatenate([s.tokens for s in searches]),
                np.concatenate([s.h for s in searches]),
                np.concatenate([s.c for s in searches]),
                np.concatenate([entry.slots[entry.search.images] for entry in running]),
                self.slots.view(),
            )
        except Exception as exc:  # not one request's fault: the decoder itself failed
            for entry in running:
                entry.pending.future.set_exception(exc)
                entry.search.done = True
            return
        self.metrics.compute.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(sum(s.n_images for s in searches))
        advance_together(searches, log_probs, h_out, c_out)
