"""Several server processes on one port (``workers``): a supervisor starts them, /metrics adds up their
counts, a worker that dies is replaced, a stop signal stops them all cleanly, and workers whose
supervisor is gone stop by themselves. Real processes throughout."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.server import metrics_directory, remove_stale_metrics_directories

from .conftest import ROOT, free_port, image_bytes, start_server, upload

WORKERS = 2


def workers_of(supervisor: int) -> set[int]:
    """The worker processes the supervisor started (not multiprocessing's resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == supervisor and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def sentiment_ok(url: str, text: str = "a great film") -> bool:
    response = httpx.post(f"{url}/v1/sentiment", json={"text": text})  # a new connection each time
    return response.status_code == 200 and response.json()["results"][0]["label"] == "positive"


def requests_counted(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    found = re.search(
        r'modelserve_http_requests_total\{endpoint="/v1/sentiment",method="POST",status="200"\} (\S+)',
        metrics,
    )
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def server(tiny_repo: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, url = start_server(tiny_repo, MODELSERVE_WORKERS=str(WORKERS))
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in workers_of(process.pid):
        os.kill(pid, signal.SIGKILL)


def test_workers_serve_one_port_and_metrics_add_up(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = server
    wait_for(lambda: len(workers_of(process.pid)) == WORKERS)
    assert all(sentiment_ok(url) for _ in range(30))
    assert requests_counted(url) == 30  # whichever worker answers /metrics, it counts every worker's
    metrics = httpx.get(f"{url}/metrics").text
    info = [
        line
        for line in metrics.splitlines()
        if line.startswith('modelserve_model_info{model="tiny-sentiment"')
    ]
    assert len(info) == 1 and info[0].endswith(" 1.0")  # one series per label set, not one per worker
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert workers_of(process.pid) == set()


def test_a_worker_that_dies_is_replaced_and_nothing_else_stops(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = server
    wait_for(lambda: len(workers_of(process.pid)) == WORKERS)
    victim = min(workers_of(process.pid))
    os.kill(victim, signal.SIGKILL)
    assert all(sentiment_ok(url) for _ in range(10))  # the other worker answers meanwhile
    wait_for(lambda: len(workers_of(process.pid) - {victim}) == WORKERS)
    assert all(sentiment_ok(url) for _ in range(20))
    assert requests_counted(url) == 30  # the dead worker's counts are kept
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_workers_stop_when_their_supervisor_is_gone(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _ = server
    wait_for(lambda: len(workers_of(process.pid)) == WORKERS)
    workers = workers_of(process.pid)
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout_s=30)


def test_a_stop_signal_while_workers_start_stops_them_all(tiny_repo: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "service", "--port", str(port), "--models-dir", str(tiny_repo)]
    process = subprocess.Popen(
        [*command, "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(workers_of(process.pid)) >= 1)  # spawned, not ready
    workers = workers_of(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in workers)


def test_after_a_stop_signal_the_port_refuses_new_connections(tiny_repo: Path) -> None:
    """While the workers drain what is in flight, a new connection is refused (as one process's port
    does: a proxy then tries another instance), not queued for no one and reset when the supervisor
    exits; the request in flight is answered."""
    process, url = start_server(
        tiny_repo, MODELSERVE_WORKERS=str(WORKERS), MODELSERVE_BATCH_MAX_DELAY_MS="3000"
    )
    try:
        wait_for(lambda: len(workers_of(process.pid)) == WORKERS)
        answers: list[httpx.Response] = []
        red = upload(image_bytes((255, 0, 0)))
        in_flight = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{url}/v1/caption", files=[red], timeout=30))
        )
        in_flight.start()
        time.sleep(0.5)  # the caption waits 3 s for company in its queue
        process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        in_flight.join(30)
        assert answers[0].status_code == 200
        assert answers[0].json()["results"][0]["caption"] == "a red square"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def metrics_dirs(parent: Path) -> set[str]:
    return {p.name for p in parent.glob("modelserve-metrics-*")}


def test_a_killed_supervisor_s_metrics_directory_is_removed_by_the_next(
    tiny_repo: Path, tmp_path: Path
) -> None:
    first, _ = start_server(tiny_repo, MODELSERVE_WORKERS=str(WORKERS), TMPDIR=str(tmp_path))
    workers = workers_of(first.pid)
    (killed,) = metrics_dirs(tmp_path)
    first.kill()  # no chance to remove its directory
    first.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout_s=30)
    assert metrics_dirs(tmp_path) == {killed}
    second, url = start_server(tiny_repo, MODELSERVE_WORKERS=str(WORKERS), TMPDIR=str(tmp_path))
    try:
        (current,) = metrics_dirs(tmp_path)
        assert current != killed
        assert sentiment_ok(url) and requests_counted(url) == 1
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        assert metrics_dirs(tmp_path) == set()
    finally:
        if second.poll() is None:
            second.kill()


def test_only_directories_whose_owner_lock_is_free_are_removed(tmp_path: Path) -> None:
    held, owner = metrics_directory(str(tmp_path))  # this process's: its lock held
    stale, released = metrics_directory(str(tmp_path))
    os.close(released)  # as when its supervisor died
    foreign = tmp_path / "modelserve-metrics-not-ours"
    foreign.mkdir()  # no owner lock: being made, or not the service's
    try:
        assert remove_stale_metrics_directories(str(tmp_path)) == [stale]
        assert metrics_dirs(tmp_path) == {Path(held).name, foreign.name}
    finally:
        os.close(owner)
