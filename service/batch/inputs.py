"""What a batch job reads: the images of a folder or glob, or the texts of a text, CSV, JSONL or Parquet
file, each as an ``Item`` with a stable id (a run's rows are keyed by it, and a rerun skips what is
written by it)."""

from __future__ import annotations

import csv
import glob
import io
import json
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
TEXT_SUFFIXES = (".txt", ".csv", ".jsonl", ".ndjson", ".parquet")


class InputError(Exception):
    """A mistake in the run's input (no such path, unknown column, duplicate ids): one line, exit 2."""


class EngineFailed(Exception):
    """An engine could not finish the job (a Ray cluster lost, a model that does not load on a worker):
    the rows made so far are written, and a rerun resumes."""


@dataclass(frozen=True)
class Item:
    """One input: its id, and what it is: an image file's path, or a text; or, where a table holds
    something else than a text, what is wrong with it (the item's error)."""

    id: str
    index: int  # position in the input: a text's number in its error messages
    path: str | None = None
    text: str | None = None
    problem: str | None = None

    @classmethod
    def of_value(cls, id: str, index: int, value: object) -> Item:
        """The item of a table's cell, which may hold anything."""
        if isinstance(value, str):
            return cls(id=id, index=index, text=value)
        what = "empty (null)" if value is None else f"a {type(value).__name__}, not a text"
        return cls(id=id, index=index, problem=f"text {index} is {what}")


def is_text_input(spec: str) -> bool:
    """Whether ``spec`` names a table of texts rather than images (by its suffix)."""
    return Path(spec).suffix.lower() in TEXT_SUFFIXES or spec.lower().endswith((".csv.gz", ".jsonl.gz"))


def image_items(spec: str) -> list[Item]:
    """The images of a folder (recursively; ids are paths relative to it) or of a glob (``**`` recurses;
    ids are the matched paths) or one image file, sorted by id. Only files with an image suffix are
    taken from a folder; a glob takes what it matches."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        items = [(p.relative_to(path).as_posix(), p) for p in files]
    elif path.is_file():
        items = [(path.name, path)]
    elif glob.has_magic(spec):
        items = [(m, Path(m)) for m in glob.glob(spec, recursive=True) if Path(m).is_file()]
    else:
        raise InputError(f"{spec}: no such file or directory")
    if not items:
        raise InputError(f"{spec}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    items.sort()
    return [Item(id=key, index=i, path=str(p)) for i, (key, p) in enumerate(items)]


def text_items(spec: str, text_column: str | None, id_column: str | None) -> list[Item]:
    """The texts of a file: a text file (one text a line), CSV (with a header), JSONL (one object a
    line) or Parquet. ``text_column`` (default ``text``) and ``id_column`` name the columns of a table;
    without an id column, an item's id is its row number (from 0; a line's number in a text file, blank
    lines counted)."""
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{spec}: no such file")
    name = path.name.lower()
    if name.endswith(".txt"):
        if text_column or id_column:
            raise InputError(f"{spec}: a text file has no columns (one text a line)")
        rows: list[tuple[object, object]] = [(None, line) for line in _read(path).splitlines()]
    elif name.endswith((".csv", ".csv.gz")):
        rows = _table_rows(spec, _csv_records(path), text_column, id_column)
    elif name.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
        rows = _table_rows(spec, _jsonl_records(spec, path), text_column, id_column)
    elif name.endswith(".parquet"):
        rows = _parquet_rows(spec, path, text_column or "text", id_column)
    else:
        raise InputError(f"{spec}: texts are read from .txt, .csv, .jsonl or .parquet files")
    if id_column is not None:
        for i, (key, _) in enumerate(rows):
            if key is None or key == "":
                raise InputError(f"{spec}: row {i} has no {id_column!r}")
    items = [
        Item.of_value(str(i) if id_column is None else str(key), i, value)
        for i, (key, value) in enumerate(rows)
    ]
    _check_unique(spec, id_column, items)
    return items


def _read(path: Path) -> str:
    if path.name.lower().endswith(".gz"):
        import gzip

        return gzip.decompress(path.read_bytes()).decode("utf-8")
    return path.read_text(encoding="utf-8")


def _csv_records(path: Path) -> tuple[list[str], list[dict[str, object]]]:
    reader = csv.DictReader(io.StringIO(_read(path), newline=""))
    records: list[dict[str, object]] = list(reader)
    return list(reader.fieldnames or []), records


def _jsonl_records(spec: str, path: Path) -> tuple[list[str], list[dict[str, object]]]:
    records = []
    columns: dict[str, None] = {}
    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{spec}: line {number} is not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise InputError(f"{spec}: line {number} is not a JSON object")
        records.append(record)
        columns.update(dict.fromkeys(record))
    return list(columns), records


def _table_rows(
    spec: str,
    table: tuple[list[str], list[dict[str, object]]],
    text_column: str | None,
    id_column: str | None,
) -> list[tuple[object, object]]:
    columns, records = table
    text_column = text_column or "text"
    for column in (text_column, id_column):
        if column is not None and column not in columns:
            raise InputError(f"{spec}: no column {column!r}; it has {', '.join(map(repr, columns))}")
    return [(record.get(id_column) if id_column else None, record.get(text_column)) for record in records]


def _parquet_rows(
    spec: str, path: Path, text_column: str, id_column: str | None
) -> list[tuple[object, object]]:
    import pyarrow.parquet as pq

    try:
        columns = pq.read_schema(path).names
    except Exception as exc:  # pyarrow's own error types for a file that is not Parquet
        raise InputError(f"{spec}: not a Parquet file: {exc}") from exc
    wanted = [c for c in (text_column, id_column) if c is not None]
    for column in wanted:
        if column not in columns:
            raise InputError(f"{spec}: no column {column!r}; it has {', '.join(map(repr, columns))}")
    table = pq.read_table(path, columns=wanted)
    texts = table.column(text_column).to_pylist()
    keys = table.column(id_column).to_pylist() if id_column else [None] * len(texts)
    return list(zip(keys, texts, strict=True))


def _check_unique(spec: str, id_column: str | None, items: list[Item]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InputError(
                f"{spec}: id {item.id!r} of column {id_column!r} appears more than once; ids key the "
                "output rows and a resumed run, so they must be unique"
            )
        seen.add(item.id)
