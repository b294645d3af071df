"""Writing a job's rows as they come: in durable chunks (by rows or by time, whichever first), with a
progress bar (items/s, ETA) and the counts of the closing summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from tqdm import tqdm

from .outputs import Row, Sink


@dataclass
class Summary:
    """What a run did."""

    answered: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output when the run started
    started: float = field(default_factory=time.perf_counter)

    def restart(self) -> None:
        """Count the time from now (the work's start, after loading)."""
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def line(self, output: str) -> str:
        """The closing line."""
        done = self.answered + self.failed
        rate = done / self.seconds if self.seconds > 0 else 0.0
        skipped = f", {self.skipped} already written (skipped)" if self.skipped else ""
        return (
            f"answered {self.answered}, failed {self.failed}{skipped}; {self.seconds:.1f} s "
            f"({rate:.1f} items/s) -> {output}"
        )


def write_all(
    batches: Iterable[list[Row]],
    sink: Sink,
    summary: Summary,
    total: int,
    chunk_rows: int,
    chunk_seconds: float,
    progress: bool,
) -> None:
    """Write the rows of ``batches`` through ``sink`` a chunk at a time. On an interruption (Ctrl-C, an
    engine's failure) the rows already made are written before it goes on up: a rerun resumes after
    them."""
    buffer: list[Row] = []
    flushed = time.monotonic()
    bar = tqdm(total=total, unit="item", file=sys.stderr, disable=not progress, smoothing=0.1)
    try:
        for rows in batches:
            buffer.extend(rows)
            failed = sum(row["error"] is not None for row in rows)
            summary.failed += failed
            summary.answered += len(rows) - failed
            bar.update(len(rows))
            if summary.failed:
                bar.set_postfix(failed=summary.failed, refresh=False)
            if len(buffer) >= chunk_rows or time.monotonic() - flushed >= chunk_seconds:
                sink.write(buffer)
                buffer, flushed = [], time.monotonic()
    finally:
        if buffer:
            sink.write(buffer)
        bar.close()
