"""Where a batch job writes: Parquet (a directory of part files, as Spark and Ray Data write, which
``pyarrow.parquet.read_table`` and ``pandas.read_parquet`` read as one table) or JSONL (one file). Both
are written in durable chunks: a part file appears whole (written aside, synced, then renamed), and JSONL
lines are appended and synced a chunk at a time. So a killed run loses at most the chunk in flight, and a
rerun reads which ids are written and skips them: every input is written exactly once."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .inputs import InputError

Row = dict[str, Any]


class Written:
    """What an output already holds: the ids written, and the model versions that wrote them."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.models: set[tuple[str, int]] = set()

    def add(self, ids: list[str], models: list[str], versions: list[int]) -> None:
        self.ids.update(ids)
        self.models.update(zip(models, versions, strict=True))


class Sink(ABC):
    """An output being written; ``open`` reads what it holds first (to resume)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema

    @abstractmethod
    def open(self) -> Written:
        """Check the output can be written, tidy what a killed run left, and read what it holds."""

    @abstractmethod
    def write(self, rows: list[Row]) -> None:
        """Write a chunk of rows durably."""

    def close(self) -> None:  # noqa: B027 (most sinks hold nothing open)
        """Release what ``open`` took."""


class ParquetSink(Sink):
    """A directory of ``part-NNNNN.parquet`` files, one per chunk."""

    def open(self) -> Written:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: exists and is not a directory (Parquet output is a directory)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for leftover in self.path.glob(".part-*.parquet.tmp"):  # a part a killed run did not finish
                leftover.unlink()
            _check_writable(self.path)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write here: {exc.strerror or exc}") from exc
        written = Written()
        parts = sorted(self.path.glob("part-*.parquet"))
        for part in parts:
            table = pq.read_table(part, columns=["id", "model", "version"])
            written.add(*(table.column(c).to_pylist() for c in ("id", "model", "version")))
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in parts), default=-1)
        # pyarrow imports pandas at its first conversion from Python objects (~0.8 s here): now, not in
        # the middle of the run, where it stalled the inference
        pa.Table.from_pylist([], schema=self.schema)
        return written

    def write(self, rows: list[Row]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.schema)
        final = self.path / f"part-{self._next:05d}.parquet"
        partial = final.with_name(f".{final.name}.tmp")  # hidden: readers of the directory skip it
        with partial.open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(final)
        _sync_directory(self.path)
        self._next += 1


class JsonlSink(Sink):
    """One JSON object a line, appended a chunk at a time."""

    def open(self) -> Written:
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory (JSONL output is a file)")
        written = Written()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a+b")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write here: {exc.strerror or exc}") from exc
        self._handle.seek(0)
        data = self._handle.read()
        complete = data.rfind(b"\n") + 1  # a line a killed run left half-written is dropped
        if complete < len(data):
            self._handle.truncate(complete)
        for number, line in enumerate(data[:complete].splitlines(), 1):
            try:
                row = json.loads(line)
                written.add([row["id"]], [row["model"]], [row["version"]])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{self.path}: line {number} is not a row of this command: {exc}") from exc
        self._handle.seek(0, os.SEEK_END)
        return written

    def write(self, rows: list[Row]) -> None:
        text = "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)
        self._handle.write(text.encode("utf-8", errors="backslashreplace"))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def open_sink(path: Path, schema: pa.Schema) -> tuple[Sink, Written]:
    """The sink for ``path`` by its suffix (``.parquet`` or ``.jsonl``), opened."""
    suffix = path.suffix.lower()
    sinks: dict[str, type[Sink]] = {".parquet": ParquetSink, ".jsonl": JsonlSink, ".ndjson": JsonlSink}
    if suffix not in sinks:
        raise InputError(f"{path}: the output must end in .parquet (a directory of parts) or .jsonl")
    sink = sinks[suffix](path, schema)
    return sink, sink.open()


def read_rows(path: Path) -> list[Row]:
    """Every row of an output, Parquet or JSONL (for tests and a quick look)."""
    if path.suffix.lower() == ".parquet":
        return pq.read_table(path).to_pylist() if any(path.glob("part-*.parquet")) else []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_writable(directory: Path) -> None:
    probe = directory / ".write-check"
    probe.write_bytes(b"")
    probe.unlink()


def _sync_directory(directory: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
