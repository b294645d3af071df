"""Fixtures of the service tests: tiny real model repositories and clients whose lifespan runs."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.main import create_app
from service.settings import Settings
from tests.model_factory import make_captioner, make_repository

ClientFactory = Callable[..., Any]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with tiny-classifier, tiny-sentiment and tiny-captioner (version 1 each); read-only."""
    return make_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def per_image_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding only a tiny-captioner with the per-image decoder (``image_index``,
    ``projected``: the contract `python -m training export` writes); read-only."""
    repo = tmp_path_factory.mktemp("per-image-models")
    make_captioner(repo, per_image=True)
    return repo


@pytest.fixture
def repo(tiny_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny repository that a test may change."""
    return Path(shutil.copytree(tiny_repo, tmp_path / "models"))


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> None:
    """Wait until the registry has finished loading (ready or not)."""
    deadline = time.monotonic() + timeout_s
    while not client.app.state.registry.loading_done:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "models did not load in time"
        time.sleep(0.02)


@contextmanager
def running_client(models_dir: Path, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient over a fresh app (lifespan running) once its models have loaded."""
    app = create_app(Settings(models_dir=models_dir, **overrides))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client over the tiny repository with default settings, shared by a test module."""
    with running_client(make_repository(tmp_path_factory.mktemp("models"))) as shared:
        yield shared


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(models_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start a real ``python -m service`` process (uvicorn) on a free port; return it and its URL once it
    is ready (the caller stops it). ``env``: extra ``MODELSERVE_*`` variables."""
    port = free_port()
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--models-dir", str(models_dir), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    except BaseException:
        process.kill()
        process.wait()
        raise


@contextmanager
def running_server(models_dir: Path, **env: str) -> Iterator[str]:
    """A real ``python -m service`` process on a free port; yields its URL once it is ready, and on exit
    stops it with SIGTERM and checks that it stopped cleanly. ``env``: extra ``MODELSERVE_*`` variables."""
    process, url = start_server(models_dir, **env)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # a drained shutdown exits 0 (service/server.py)


def image_bytes(
    color: Any = (255, 0, 0),
    fmt: str = "PNG",
    mode: str = "RGB",
    size: tuple[int, int] = (32, 24),
    **save: Any,
) -> bytes:
    """An encoded uniform image."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


def upload(
    data: bytes, filename: str = "image.png", media_type: str = "image/png"
) -> tuple[str, tuple[str, bytes, str]]:
    """One ``files`` part of a multipart request."""
    return ("files", (filename, data, media_type))


def error(code: str, message: str, status: int) -> dict[str, Any]:
    """The one error body."""
    return {"error": {"code": code, "message": message, "status": status}}
