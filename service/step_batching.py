"""Caption decoding batched per step across requests (iteration-level batching, as LLM servers do).

One worker thread per captioner keeps a running set of beam searches from many requests. Each iteration
it admits waiting requests (their images go through the encoder together), runs one decoder step for
every beam of every running search in a single decoder run, and hands finished requests their captions.
A short caption leaves the running set as soon as it ends, whatever longer ones it was decoded with; a
request arriving mid-way joins at the next step. Each search advances exactly as it would alone
(``BeamSearch``), so the results equal the per-request beam search.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from .batching import BatchConfig, Pending, QueueWorker
from .metrics import ModelMetrics
from .runtimes.beam import BeamSearch, Hypothesis
from .runtimes.captioner import CaptionerRuntime


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
    features: np.ndarray


class CaptionBatcher(QueueWorker[CaptionJob, list[Hypothesis]]):
    """Decodes the captions of concurrent requests together, step by step. ``max_size`` bounds the images
    in the running set (each with its beams); ``max_delay_s`` is the wait for company when idle."""

    def __init__(
        self, name: str, runtime: CaptionerRuntime, config: BatchConfig, metrics: ModelMetrics
    ) -> None:
        self.runtime = runtime
        super().__init__(name, config, metrics)

    def submit(self, pixels: np.ndarray, max_length: int, beam_size: int) -> Future[list[Hypothesis]]:
        """Queue a request; its future gets the best hypothesis per image."""
        return self.submit_payload(CaptionJob(pixels, max_length, beam_size), rows=len(pixels))

    async def infer(self, pixels: np.ndarray, max_length: int, beam_size: int) -> list[Hypothesis]:
        """``submit`` and await the hypotheses without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(pixels, max_length, beam_size))

    def _serve(self) -> None:
        running: list[_Running] = []
        while True:
            free = self.config.max_size - sum(r.search.n_images for r in running)
            admitted = self._take(free, block=not running)
            if not running and not admitted:
                return  # closed, and everything finished
            running += self._start(admitted)
            if running:
                self._step(running)
            for entry in running:
                if entry.search.done and not entry.pending.future.done():  # done: failed already
                    entry.pending.future.set_result(entry.search.best())
            running = [entry for entry in running if not entry.search.done]

    def _start(self, admitted: list[Pending[CaptionJob, list[Hypothesis]]]) -> list[_Running]:
        """Encode the admitted requests' images in one run and start a search for each request."""
        if not admitted:
            return []
        started = time.perf_counter()
        try:
            features, h0, c0 = self.runtime.encode(np.concatenate([p.payload.pixels for p in admitted]))
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
            searches.append(_Running(pending, search, features[offset:end]))
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
                np.concatenate([entry.features[entry.search.images] for entry in running]),
            )
        except Exception as exc:  # not one request's fault: the decoder itself failed
            for entry in running:
                entry.pending.future.set_exception(exc)
                entry.search.done = True
            return
        self.metrics.compute.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(sum(s.n_images for s in searches))
        offset = 0
        for search in searches:
            end = offset + search.rows
            search.advance(log_probs[offset:end], h_out[offset:end], c_out[offset:end])
            offset = end
