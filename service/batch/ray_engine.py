"""The Ray engine: the same job as a Ray Data pipeline, on a local Ray or an existing cluster. The items
(ids, image paths or texts) are a dataset; ``map_batches`` runs them through a pool of model actors, one
per GPU when the cluster has GPUs, else one per CPU, each loading the same model version with the same
task code as the embedded engine (so the rows are the same); the rows stream back to this process, which
writes them through the same resumable output. Image paths and the model repository must be readable
at the same paths on every node (a shared filesystem), as with any Ray Data job over files."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from .embedded import default_decode_threads, prepare
from .inputs import EngineFailed, InputError, Item
from .job import Job
from .tasks import Row

logger = logging.getLogger(__name__)

ROWS_PER_BLOCK = 256  # input items per Ray block: small enough to spread over the actors


class ModelActor:
    """A model version loaded once per actor; answers batches of items with their rows."""

    def __init__(self, job: Job, decode_threads: int, batch_size: int) -> None:
        self.task = job.load()
        self.batch_size = batch_size
        pa.Table.from_pylist([], schema=job.task.schema())  # pyarrow's first conversion imports pandas
        self.schema = job.task.schema()
        self.pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="batch-decode")

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = [Item(**row) for row in batch.to_pylist()]
        outcomes = list(self.pool.map(lambda item: prepare(self.task, item), items))
        rows = self.task.rows(items, outcomes, self.batch_size)
        return pa.Table.from_pylist(rows, schema=self.schema)


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address``, or start a local Ray; ``InputError`` in one line when Ray is
    not installed or the cluster cannot be reached (before any work)."""
    try:
        import ray
    except ImportError as exc:
        raise InputError("the ray engine needs Ray: install the ray extra (pip install -e '.[ray]')") from exc
    if ray.is_initialized():
        return
    _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError, by what went wrong
        raise InputError(
            f"cannot start or join Ray at {address or 'a local Ray'}: {_first_line(exc)}"
        ) from exc


def predictions(
    job: Job, items: list[Item], batch_size: int, actors: int | None, address: str | None
) -> Iterator[list[Row]]:
    """The rows of ``items`` from a Ray Data job, a block at a time, in no particular order."""
    import ray

    connect(address)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    count = actors or gpus or max(1, int(resources.get("CPU", 1)))
    placement: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes on each stage, not ours to show
    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts the rows written
    blocks = max(1, min(len(items) // ROWS_PER_BLOCK + 1, count * 8))
    dataset = ray.data.from_items([dataclasses.asdict(item) for item in items], override_num_blocks=blocks)
    predicted = dataset.map_batches(
        ModelActor,
        fn_constructor_kwargs={
            "job": job,
            "decode_threads": default_decode_threads(),
            "batch_size": batch_size,
        },
        batch_size=batch_size * job.task.window_batches,  # a window: the actor batches it by cost
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=count),
        **placement,
    )
    try:
        for table in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
            assert isinstance(table, pa.Table)
            yield table.to_pylist()
    except ray.exceptions.RayError as exc:
        raise EngineFailed(f"the Ray job failed: {_first_line(exc)}") from exc


def _check_reachable(address: str | None) -> None:
    """``ray.init`` waits minutes for an address where nothing listens: a ``HOST:PORT`` (or
    ``ray://HOST:PORT``) is tried first, for 5 s."""
    if address is None or address == "auto":
        return
    host, separator, port = address.removeprefix("ray://").rpartition(":")
    if not separator or not port.isdigit():
        raise InputError(f"--address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
