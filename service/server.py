"""The HTTP server: uvicorn, with a shutdown that takes the instance out of rotation before it stops.

On SIGTERM (or SIGINT): readiness answers 503 at once; after ``shutdown_delay_s`` the server stops
accepting connections; it waits up to ``shutdown_timeout_s`` for the requests in flight, releases the models
and returns, and the process exits 0.

With ``workers`` above 1, a supervisor process binds the port and starts that many worker processes, each
a whole server (its own models, sessions and batchers) accepting on the shared socket. It passes a stop
signal on to every worker (each shuts down as above), starts a new worker when one dies, and exits 0 once
all have stopped cleanly. A worker whose supervisor is gone stops by itself. ``/metrics`` then adds up the
workers' counters and histograms (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from PIL import Image

from .edge import guarded_protocol
from .main import begin_shutdown, create_app
from .metrics import MULTIPROCESS_ENV
from .settings import Settings

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# glibc's mallopt parameters: the size from which a block is mapped on its own (and given back when freed),
# and how much free memory at the top of the heap is kept rather than given back
_M_MMAP_THRESHOLD = -3
_M_TRIM_THRESHOLD = -1


def give_large_blocks_back() -> None:
    """Have glibc map each of Pillow's image blocks on its own, so that a large image's pixels go back to
    the system when freed. Left alone, glibc raises its mapping threshold each time a mapped block is
    freed, and from then on serves those blocks from per-thread heaps that keep the memory (sixteen
    39-megapixel uploads at once: 4.3 GB, and 1.7 GB with this; bench/README.md). The threshold is three
    quarters of Pillow's block size (a full block holds a little less than its size), so that smaller
    blocks, a batch's arrays among them, still come from the heap; the heap keeps twice that at its top, as
    glibc's own adjustment would, so that a batch's arrays are not given back and faulted in again at every
    run. Nothing happens where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return
    threshold = Image.core.get_block_size() * 3 // 4
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
    except (OSError, AttributeError):  # another C library: its own allocator, left as it is
        return


class Server(uvicorn.Server):
    """uvicorn's server with a readiness-first shutdown. The first stop signal calls ``on_stop`` (from the
    event loop, not from the signal handler) and starts a ``delay_s`` countdown during which connections are
    still accepted; then uvicorn's own graceful shutdown runs (stop accepting, wait for requests in flight
    at most ``config.timeout_graceful_shutdown`` seconds, lifespan shutdown). A second signal ends the
    countdown; a second SIGINT while draining forces the exit, as in uvicorn."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        delay_s: float,
        on_stop: Callable[[], None],
        supervisor_pid: int | None = None,
    ) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self.on_stop = on_stop
        self.supervisor_pid = supervisor_pid  # a worker's: stop when that process is gone
        self.stop_requested_at: float | None = None
        self.stopping = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: only records the request; ``on_tick`` acts on it."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s: turn readiness off once a stop was requested, and stop once the delay is over."""
        orphaned = self.supervisor_pid is not None and os.getppid() != self.supervisor_pid
        if orphaned and self.stop_requested_at is None:
            logger.warning("the supervisor (pid %s) is gone: stopping", self.supervisor_pid)
            self.stop_requested_at = time.monotonic()
        if self.stop_requested_at is not None:
            if not self.stopping:
                self.stopping = True
                self.on_stop()
                logger.info(
                    "stop requested: readiness is off; accepting for %ss more, then draining (at most %ss)",
                    self.delay_s,
                    self.config.timeout_graceful_shutdown,
                )
            if time.monotonic() - self.stop_requested_at >= self.delay_s:
                self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle the stop signals while serving. Unlike uvicorn, do not raise the signal again once the
        server has stopped: a drained shutdown ends the process with status 0, not killed by the signal."""
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` on the settings' host and port until a stop signal, then shut down gracefully."""
    give_large_blocks_back()
    _server(app, settings).run()


def _server(app: FastAPI, settings: Settings, supervisor_pid: int | None = None) -> Server:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        http=guarded_protocol(settings) if settings.http_parser == "httptools" else "h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        ws="none",  # no WebSocket routes: an Upgrade: websocket request is an HTTP request like any other
    )
    access = logging.getLogger("uvicorn.access")  # configured by the Config just made
    if not any(isinstance(f, ShortAccessPaths) for f in access.filters):
        access.addFilter(ShortAccessPaths())
    return Server(
        config,
        delay_s=settings.shutdown_delay_s,
        on_stop=partial(begin_shutdown, app),
        supervisor_pid=supervisor_pid,
    )


class ShortAccessPaths(logging.Filter):
    """Cuts the path of an access-log line to ``MAX_LOGGED_PATH`` characters: a 60 KB URL (a scanner's,
    an attacker's) costs the log no more than a short one."""

    MAX_LOGGED_PATH = 200

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if len(path) > self.MAX_LOGGED_PATH:
                cut = f"{path[: self.MAX_LOGGED_PATH]}...({len(path)} characters)"
                record.args = (*args[:2], cut, *args[3:])
        return True


def _worker(settings_data: dict[str, Any], sock: socket.socket, supervisor_pid: int) -> None:
    """A worker process: the whole server, on the supervisor's socket."""
    settings = Settings(**settings_data)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s",
    )
    give_large_blocks_back()
    _server(create_app(settings), settings, supervisor_pid).run(sockets=[sock])


METRICS_DIR_PREFIX = "modelserve-metrics-"
OWNER_LOCK = ".owner"  # in a supervisor's metrics directory, locked (flock) while the supervisor lives


def metrics_directory(parent: str | None = None) -> tuple[str, int]:
    """A new directory for the workers' metrics files and the descriptor of its owner lock, held until it
    is closed (the kernel releases it when this process dies, however it dies). The directories that
    supervisors killed before they could remove theirs (SIGKILL, a power cut) left behind, their locks
    free, are removed first."""
    parent = parent or tempfile.gettempdir()
    remove_stale_metrics_directories(parent)
    path = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX, dir=parent)
    descriptor, locked = tempfile.mkstemp(dir=path)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(locked, os.path.join(path, OWNER_LOCK))  # seen by others only once locked
    return path, descriptor


def remove_stale_metrics_directories(parent: str) -> list[str]:
    """Remove the metrics directories in ``parent`` whose owner lock no process holds; return them. A
    directory without the lock (being made, or not this service's) is left alone."""
    try:
        names = [name for name in os.listdir(parent) if name.startswith(METRICS_DIR_PREFIX)]
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(parent, name)
        try:
            descriptor = os.open(os.path.join(path, OWNER_LOCK), os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its supervisor is running
        finally:
            os.close(descriptor)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class Supervisor:
    """Runs ``settings.workers`` worker processes on one listening socket (see the module's docstring)."""

    QUICK_EXIT_S = 10.0  # a worker that dies sooner after its start counts towards giving up
    QUICK_EXITS = 3  # that many in a row, and the supervisor stops everything and exits 1

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")  # no inherited threads or onnxruntime state
        self.workers: dict[int, tuple[BaseProcess, float]] = {}  # slot -> (process, start time)
        self.stopping = False
        self.sock: socket.socket | None = None  # the listening socket, once bound
        self.starting = False  # a worker is being started (and handed the socket)
        self.told: set[int] = set()  # workers sent SIGTERM

    def run(self) -> int:
        """Serve until a stop signal and every worker has stopped; the exit status: 0 if all stopped
        cleanly."""
        metrics_dir, owner = metrics_directory()
        os.environ[MULTIPROCESS_ENV] = metrics_dir  # before any worker starts (and imports prometheus_client)
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.create_server((self.settings.host, self.settings.port), family=family, backlog=2048)
        self.sock = sock
        clean = True
        previous = {sig: signal.signal(sig, self._stop) for sig in STOP_SIGNALS}
        try:
            for slot in range(self.settings.workers):
                if not self.stopping:
                    self._start(slot, sock)
            logger.info(
                "supervisor %s: %s workers on http://%s:%s",
                os.getpid(),
                self.settings.workers,
                self.settings.host,
                self.settings.port,
            )
            quick_exits = 0
            while self.workers:
                if self.stopping:
                    self._tell_workers_to_stop()  # those started since the signal too
                    self._close_socket()
                by_sentinel = {process.sentinel: slot for slot, (process, _) in self.workers.items()}
                for sentinel in wait(list(by_sentinel), timeout=1.0):
                    slot = by_sentinel[sentinel]  # type: ignore[index]  # sentinels are ints
                    process, started = self.workers.pop(slot)
                    process.join()
                    _mark_dead(process.pid)
                    if self.stopping:
                        # killed by the SIGTERM passed on: it came before the worker handled the signal,
                        # i.e. before it accepted any connection (a worker still starting)
                        clean = clean and process.exitcode in (0, -signal.SIGTERM)
                        continue
                    logger.error("worker %s exited with %s; starting another", process.pid, process.exitcode)
                    quick_exits = quick_exits + 1 if time.monotonic() - started < self.QUICK_EXIT_S else 0
                    if quick_exits >= self.QUICK_EXITS:
                        logger.error(
                            "%s workers in a row died within %ss of starting: giving up",
                            quick_exits,
                            self.QUICK_EXIT_S,
                        )
                        clean = False
                        self._stop(signal.SIGTERM, None)
                        continue
                    self._start(slot, sock)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.close(owner)
        return 0 if clean else 1

    def _start(self, slot: int, sock: socket.socket) -> None:
        settings = self.settings.model_dump(mode="json")
        process = self.context.Process(
            target=_worker, args=(settings, sock, os.getpid()), name=f"modelserve-worker-{slot}"
        )
        self.starting = True
        try:
            process.start()
        finally:
            self.starting = False
        self.workers[slot] = (process, time.monotonic())

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: from now on, every worker is told to stop."""
        self.stopping = True
        self._tell_workers_to_stop()
        if not self.starting:  # else the loop closes it once the worker has its copy
            self._close_socket()

    def _close_socket(self) -> None:
        """No worker starts once stopping: closing the supervisor's copy of the listening socket means
        that, as soon as the workers close theirs, the port refuses new connections (as one process's
        does, and a proxy tries another instance) instead of queueing them for no one to answer."""
        if self.sock is not None:
            self.sock.close()

    def _tell_workers_to_stop(self) -> None:
        """SIGTERM to every worker not told yet."""
        for process, _ in list(self.workers.values()):
            if process.pid is not None and process.pid not in self.told:
                self.told.add(process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)


def _mark_dead(pid: int | None) -> None:
    """Drop a dead worker's live gauges (queue depth, model info) from /metrics."""
    from prometheus_client import multiprocess

    if pid is not None:
        multiprocess.mark_process_dead(pid)
