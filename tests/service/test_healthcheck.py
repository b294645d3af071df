"""``python -m service.healthcheck`` (the image's HEALTHCHECK): exit 0 only when readiness answers 200, and
light: the standard library alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from service.healthcheck import ready_url

from .conftest import ROOT, free_port, running_server


def healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.healthcheck"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextmanager
def not_ready_server() -> Iterator[int]:
    """A stand-in server whose readiness answers 503 with reasons, as the service's does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "not_ready", "reasons": ["models are still loading"]}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1]
        finally:
            httpd.shutdown()


def test_ready_server_passes(tiny_repo: Path) -> None:
    with running_server(tiny_repo) as url:
        port = str(urlsplit(url).port)
        result = healthcheck(MODELSERVE_HOST="0.0.0.0", MODELSERVE_PORT=port)  # as in the image
    assert (result.returncode, result.stdout) == (0, "ready (200)\n")


def test_unready_or_absent_server_fails() -> None:
    with not_ready_server() as port:
        result = healthcheck(MODELSERVE_PORT=str(port))
    assert (result.returncode, result.stdout) == (1, "not ready (503): models are still loading\n")
    absent = healthcheck(MODELSERVE_PORT=str(free_port()))
    assert absent.returncode == 1 and absent.stdout.startswith("no answer from http://127.0.0.1:")


def test_wildcard_addresses_are_checked_over_loopback() -> None:
    assert ready_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/health/ready"
    assert ready_url("::", 8000) == "http://[::1]:8000/health/ready"
    assert ready_url("10.0.0.5", 9000) == "http://10.0.0.5:9000/health/ready"


def test_imports_only_the_standard_library() -> None:
    heavy = ["fastapi", "numpy", "onnxruntime", "pydantic", "pydantic_settings", "uvicorn"]
    code = f"import sys, service.healthcheck; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == "[]\n"
