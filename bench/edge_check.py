"""The edge check: a real ``python -m service`` process per scenario, attacked and overloaded the way an
open network and an overloaded operator would, each scenario bounded in time; prints one line per check
(PASS or FAIL, with what was measured) and exits 1 if any check failed.

    python -m bench.edge_check                       # every scenario, about 3 minutes on 2 cores
    python -m bench.edge_check --only corpus,keys    # some of them

Scenarios (the tiny hand-built models of ``tests.model_factory`` unless said otherwise):
  corpus          hostile and malformed requests: none answered 5xx, every refusal in the one JSON error
                  shape, the process alive after them
  header-flood    16 connections sending 32 MB heads at once: each refused with 431, RSS bounded
  slowloris       under a 1,024-file limit, 1,100 connections trickling their heads: probes answered
                  throughout, every trickling connection closed by the server, inference served after
  overload        the real default models, classification and sentiment at once, with several times more
                  clients than are answered in time, sending back to back without waiting for
                  Retry-After: the excess refused with 503 and Retry-After, p99 of the answered requests
                  within 1 s, RSS within 256 MB of the idle process's, inference answered within 1 s once
                  the load stops
  sigterm         the real captioner, 16 requests in flight when SIGTERM comes: every one answered,
                  exit status 0
  repository      a repository with corrupt versions: the process serves what is sound and says, per
                  version, why the rest failed; a default model that failed answers 503
                  model_not_ready with the reason and holds readiness back
  keys            API keys on: no key or a wrong one is 401 with WWW-Authenticate, an inference key
                  serves inference but not the admin endpoints, an admin key does; probes stay open
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.load import encode_request, photo_jpeg
from bench.overload import mixed_load, rss_mb
from bench.run import ROOT, started

# What the overload scenario runs the service with: the process-wide bound on requests being answered
# and the queue deadline (bench/README.md, "Mixed overload", says how they were chosen).
OVERLOAD_SETTINGS = {"MODELSERVE_MAX_REQUESTS_IN_FLIGHT": "48", "MODELSERVE_BATCH_MAX_WAIT_MS": "250"}


@dataclass
class Report:
    """The checks' outcomes, printed as they come."""

    failed: list[str] = field(default_factory=list)
    count: int = 0

    def check(self, scenario: str, name: str, ok: bool, detail: str = "") -> bool:
        self.count += 1
        print(
            f"{'PASS' if ok else 'FAIL'}  {scenario:<12} {name}{f': {detail}' if detail else ''}", flush=True
        )
        if not ok:
            self.failed.append(f"{scenario}: {name}")
        return ok


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def rss_mb(self) -> float:
        return rss_mb(self.url)


@contextlib.contextmanager
def service(
    models_dir: Path, env: dict[str, str] | None = None, open_files: int | None = None, ready: bool = True
) -> Iterator[Service]:
    """``python -m service`` on a free port, with ``env`` and at most ``open_files`` descriptors; yields once
    /health/ready (or, with ``ready`` false, /health/live) answers 200; stopped on exit."""
    command = [sys.executable, "-m", "service", "--models-dir", str(models_dir), "--log-level", "warning"]
    path = "/health/ready" if ready else "/health/live"
    with started(command, path, env, open_files) as (process, url):
        yield Service(process, url)


# ---------------------------------------------------------------------------------------- raw HTTP


@dataclass
class Answer:
    status: int  # 0: no response (the connection was reset or closed before one)
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str | None:
        """The one error shape's code ("v2" for the v2 protocol's), or None when the body is neither."""
        try:
            error = json.loads(self.body)["error"]
        except (ValueError, KeyError, TypeError):
            return None
        if isinstance(error, str) and error:  # /v2's shape, the KServe v2 protocol's: {"error": message}
            return "v2"
        ok = isinstance(error, dict) and {"code", "message", "status"} <= error.keys()
        return error["code"] if ok and error["status"] == self.status else None


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response from ``sock`` (its body by Content-Length, else up to the close)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return Answer(0, {}, data)
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if "content-length" in headers:
            while len(body) < int(headers["content-length"]):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            while chunk := sock.recv(65536):
                body += chunk
        return Answer(int(status_line.split()[1]), headers, body)
    except OSError:
        return Answer(0, {}, data)


def exchange(address: tuple[str, int], *parts: bytes, timeout: float = 30) -> Answer:
    """Send ``parts`` on a new connection (a server that answers early and closes may cut the sending
    short) and read the answer."""
    with socket.create_connection(address, timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            for part in parts:
                sock.sendall(part)
        return read_answer(sock)


def raw(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A request as bytes, exactly as given (Content-Length added when there is a body and none given)."""
    headers = {"Host": "127.0.0.1", **(headers or {})}
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_request(path: str, payload: object) -> bytes:
    return raw("POST", path, {"Content-Type": "application/json"}, json.dumps(payload).encode())


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG that claims ``width`` x ``height`` pixels (and has no pixels)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def corpus() -> list[tuple[str, bytes]]:
    """Hostile and malformed requests, each as the bytes sent."""
    photo = photo_jpeg(64, 48)
    files = {"files": ("a.jpg", photo, "image/jpeg")}
    return [
        ("not HTTP", b"GARBAGE\r\n\r\n"),
        ("a request line with no version", b"GET /health/live\r\n\r\n"),
        ("a null byte in the path", b"GET /v1/\x00models HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "Content-Length with Transfer-Encoding",
            raw(
                "POST", "/v1/sentiment", {"Content-Length": "4", "Transfer-Encoding": "chunked"}, b"0\r\n\r\n"
            ),
        ),
        (
            "two Content-Lengths",
            raw("POST", "/v1/sentiment", {"Content-Length": "2", "content-length": "3"}, b"{}"),
        ),
        ("a negative Content-Length", raw("POST", "/v1/sentiment", {"Content-Length": "-1"})),
        ("a Content-Length of 10 GB", raw("POST", "/v1/sentiment", {"Content-Length": "10000000000"})),
        (
            "a broken chunked body",
            raw(
                "POST",
                "/v1/sentiment",
                {"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
                b"zz\r\n{}\r\n0\r\n\r\n",
            ),
        ),
        (
            "JSON that is not JSON",
            raw("POST", "/v1/sentiment", {"Content-Type": "application/json"}, b"{'text':"),
        ),
        (
            "JSON nested 100,000 deep",
            raw(
                "POST", "/v1/sentiment", {"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000
            ),
        ),
        ("an empty text", json_request("/v1/sentiment", {"text": ""})),
        ("no texts", json_request("/v1/sentiment", {"texts": []})),
        ("33 texts", json_request("/v1/sentiment", {"texts": ["fine"] * 33})),
        ("a text of zero-width spaces", json_request("/v1/sentiment", {"text": "\u200b" * 50})),
        (
            "a lone surrogate",
            raw(
                "POST", "/v1/sentiment", {"Content-Type": "application/json"}, b'{"text": "bad \\ud800 text"}'
            ),
        ),
        ("a text of 2 MB", json_request("/v1/sentiment", {"text": "word " * 400_000})),
        ("a number for a text", json_request("/v1/sentiment", {"text": 12})),
        ("an unknown model in JSON", json_request("/v1/sentiment", {"text": "fine", "model": "nope"})),
        ("an unknown model in the query", json_request("/v1/sentiment?model=nope", {"text": "fine"})),
        ("a model name with a path", json_request("/v1/sentiment", {"text": "fine", "model": "../../etc"})),
        (
            "a text file as an image",
            encode_request("/v1/classify-image", files={"files": ("a.jpg", b"hello", "image/jpeg")}),
        ),
        (
            "a truncated JPEG",
            encode_request("/v1/classify-image", files={"files": ("a.jpg", photo[:200], "image/jpeg")}),
        ),
        (
            "a PNG claiming 100,000 x 100,000 pixels",
            encode_request(
                "/v1/classify-image", files={"files": ("a.png", png_header(100_000, 100_000), "image/png")}
            ),
        ),
        ("no file", encode_request("/v1/classify-image", data={"top_k": "1"})),
        ("top_k of a million", encode_request("/v1/classify-image", files=files, data={"top_k": "1000000"})),
        ("a beam size of 10,000", encode_request("/v1/caption", files=files, data={"beam_size": "10000"})),
        (
            "an unknown model as a form field",
            encode_request("/v1/classify-image", files=files, data={"model": "nope"}),
        ),
        (
            "a broken multipart body",
            raw(
                "POST",
                "/v1/classify-image",
                {"Content-Type": "multipart/form-data; boundary=x"},
                b"--x\r\nbroken",
            ),
        ),
        (
            "multipart without a boundary",
            raw("POST", "/v1/classify-image", {"Content-Type": "multipart/form-data"}, b"x"),
        ),
        ("GET on an inference route", raw("GET", "/v1/sentiment")),
        ("an unknown method", raw("BREW", "/v1/sentiment")),
        ("an unknown path", raw("GET", "/nowhere")),
        ("a URL of 60 KB", raw("GET", "/v1/models?" + "a" * 60_000)),
        ("v2 infer with no inputs", json_request("/v2/models/tiny-sentiment/infer", {"inputs": []})),
        (
            "v2 infer with a shape that does not match its data",
            json_request(
                "/v2/models/tiny-classifier/infer",
                {
                    "inputs": [
                        {"name": "pixels", "datatype": "FP32", "shape": [1, 3, 4096, 4096], "data": [0]}
                    ]
                },
            ),
        ),
        ("v2 infer of an unknown model", json_request("/v2/models/nope/infer", {"inputs": []})),
        (
            "an upgrade to h2c with a body",
            raw(
                "POST",
                "/v1/sentiment",
                {"Upgrade": "h2c", "Connection": "Upgrade", "Content-Type": "application/json"},
                b'{"text": "fine"}',
            ),
        ),
    ]


# ---------------------------------------------------------------------------------------- scenarios


def check_corpus(report: Report, tiny: Path, _: argparse.Namespace) -> None:
    with service(tiny) as server:
        worst = []
        for name, request in corpus():
            answer = exchange(server.address, request)
            ok = 0 < answer.status < 500 and (answer.status < 400 or answer.error_code() is not None)
            if not ok:
                worst.append(f"{name} -> {answer.status} {answer.body[:120]!r}")
            statuses = f"{answer.status} {answer.error_code() or ''}".strip()
            report.check("corpus", name, ok, statuses)
        alive = httpx.get(server.url + "/health/live").status_code == 200
        report.check("corpus", "alive after the corpus", alive and server.process.poll() is None)


def check_header_flood(report: Report, tiny: Path, _: argparse.Namespace) -> None:
    with service(tiny) as server:
        before = server.rss_mb()
        answers: list[Answer] = []
        chunk = b"X-Flood: " + b"a" * 65_000 + b"\r\n"

        def flood() -> None:
            head = [b"GET /health/live HTTP/1.1\r\nHost: x\r\n", *([chunk] * 500)]  # 32 MB, never ending
            answers.append(exchange(server.address, *head))

        threads = [threading.Thread(target=flood) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        grown = server.rss_mb() - before
        statuses = sorted({a.status for a in answers})
        report.check(
            "header-flood",
            "16 heads of 32 MB refused with 431 JSON",
            len(answers) == 16 and all(a.status == 431 and a.error_code() for a in answers),
            f"statuses {statuses}",
        )
        report.check("header-flood", "RSS grew by less than 64 MB", grown < 64, f"{grown:+.0f} MB")


def check_slowloris(report: Report, tiny: Path, _: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        report.check("slowloris", "this process may open 1,100 connections", False, f"hard limit {hard}")
        return
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (max(soft, 4096) if hard == resource.RLIM_INFINITY else hard, hard)
    )
    from service.settings import Settings

    timeout_s = float(Settings.model_fields["header_timeout_s"].default)  # the default configuration's
    with service(tiny, open_files=1024) as server:
        attackers: list[socket.socket] = []
        for _attempt in range(1100):
            try:
                sock = socket.create_connection(server.address, timeout=5)
                sock.sendall(b"GET /health/live HTTP/1.1\r\n")
                attackers.append(sock)
            except OSError:
                break
        opened = time.monotonic()
        slowest = 0.0
        answered: list[tuple[float, int]] = []
        while time.monotonic() - opened < timeout_s + 2:
            for sock in attackers[:50]:  # keep trickling: one byte each
                with contextlib.suppress(OSError):
                    sock.send(b"X")
            started = time.monotonic()
            try:
                status = httpx.get(server.url + "/health/live", timeout=5).status_code
            except httpx.TransportError:
                status = 0
            slowest = max(slowest, time.monotonic() - started)
            answered.append((time.monotonic() - opened, status))
            time.sleep(0.2)
        statuses = [status for _, status in answered]
        report.check(
            "slowloris",
            "probes answered (200, or 503 beyond the connection cap) within 1 s throughout",
            all(status in (200, 503) for status in statuses) and slowest < 1.0,
            f"{statuses.count(200)} x 200, {statuses.count(503)} x 503 of {len(statuses)} probes, slowest "
            f"{slowest * 1000:.0f} ms, {len(attackers)} connections",
        )
        late = [status for at, status in answered if at > timeout_s + 0.5]
        report.check(
            "slowloris",
            "probes answered 200 once the header timeout has passed",
            bool(late) and all(status == 200 for status in late),
            f"{late.count(200)} of {len(late)}",
        )
        still_open = 0
        for sock in attackers:
            sock.settimeout(0.01)
            try:
                if sock.recv(65536):
                    while sock.recv(65536):
                        pass
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
            sock.close()
        report.check(
            "slowloris",
            f"every trickling connection closed by the server within {timeout_s + 2:g} s",
            still_open == 0,
            f"{still_open} of {len(attackers)} still open",
        )
        response = httpx.post(server.url + "/v1/sentiment", json={"text": "a good film"}, timeout=5)
        report.check(
            "slowloris", "inference served after", response.status_code == 200, str(response.status_code)
        )
        report.check("slowloris", "the process is alive", server.process.poll() is None)


def check_overload(report: Report, _: Path, args: argparse.Namespace) -> None:
    env = {**OVERLOAD_SETTINGS, "MODELSERVE_DEFAULT_IMAGE_CLASSIFIER": "pets-resnet18"}
    with service(args.models_dir, env) as server:
        idle = server.rss_mb()
        results, memory = mixed_load(server.url, args.seconds)
        recovery = {}
        for task, request in (("classify", {"files": {"files": ("a.jpg", photo_jpeg(), "image/jpeg")}}),
                              ("sentiment", {"json": {"text": "a good film"}})):  # fmt: skip
            started = time.monotonic()
            path = "/v1/classify-image" if task == "classify" else "/v1/sentiment"
            status = httpx.post(server.url + path, timeout=10, **request).status_code
            recovery[task] = (status, time.monotonic() - started)
    for task, result in results.items():
        statuses = result["statuses"]
        refused = statuses.get("503", 0)
        others = {k: v for k, v in statuses.items() if k != "503"}
        report.check(
            "overload",
            f"{task}: excess refused with 503 and Retry-After, nothing else",
            refused > 0 and not others and result["503_without_retry_after"] == 0,
            f"{result['requests']} answered ({result['throughput']:.0f}/s), {refused} refused, "
            f"other {others}",
        )
        report.check(
            "overload",
            f"{task}: p99 of the answered requests within 1 s",
            result["p99_ms"] <= 1000,
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms",
        )
        status, seconds = recovery[task]
        report.check(
            "overload",
            f"{task}: answered within 1 s once the load stops",
            status == 200 and seconds <= 1.0,
            f"{status} in {seconds * 1000:.0f} ms",
        )
    peak = max(memory, default=float("nan"))
    report.check(
        "overload",
        "RSS bounded: less than 256 MB above the idle process's",
        peak - idle < 256,
        f"{idle:.0f} MB idle (every default model loaded and warmed up), peak {peak:.0f} MB",
    )


def check_sigterm(report: Report, _: Path, args: argparse.Namespace) -> None:
    env = {"MODELSERVE_ENABLED_MODELS": '["captioner"]', "MODELSERVE_SHUTDOWN_DELAY_S": "1"}
    with service(args.models_dir, env) as server:
        files = [("files", (f"{i}.jpg", photo_jpeg(320, 240, seed=i), "image/jpeg")) for i in range(4)]
        request = encode_request("/v1/caption", files=files, data={"beam_size": "5"})
        sockets = [socket.create_connection(server.address, timeout=120) for _ in range(16)]
        for sock in sockets:
            sock.sendall(request)
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        answers = [read_answer(sock) for sock in sockets]
        for sock in sockets:
            sock.close()
        code = server.process.wait(timeout=60)
    report.check(
        "sigterm",
        "16 captions in flight all answered",
        all(a.status == 200 for a in answers),
        f"statuses {sorted(a.status for a in answers)}",
    )
    report.check("sigterm", "exit status 0", code == 0, str(code))


def check_repository(report: Report, tiny: Path, _: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(shutil.copytree(tiny, Path(scratch) / "models"))
        with open(repo / "tiny-classifier" / "1" / "model.onnx", "ab") as f:  # checksum no longer matches
            f.write(b"tampered")
        broken = Path(shutil.copytree(repo / "tiny-sentiment" / "1", repo / "tiny-sentiment" / "2"))
        (broken / "manifest.json").write_text("{ not json")
        missing = Path(shutil.copytree(repo / "tiny-captioner" / "1", repo / "tiny-captioner" / "2"))
        (missing / "decoder.onnx").unlink()
        (repo / "stray-folder" / "latest").mkdir(parents=True)
        env = {
            "MODELSERVE_DEFAULT_IMAGE_CLASSIFIER": "tiny-classifier",
            "MODELSERVE_DEFAULT_SENTIMENT_MODEL": "tiny-sentiment",
            "MODELSERVE_DEFAULT_CAPTIONER": "tiny-captioner",
        }
        with service(repo, env, ready=False) as server:
            deadline = time.monotonic() + 60  # loading runs in the background: wait until no version is
            while '"loading"' in httpx.get(server.url + "/v1/models").text and time.monotonic() < deadline:
                time.sleep(0.2)
            sentiment = httpx.post(server.url + "/v1/sentiment", json={"text": "good"})
            report.check(
                "repository",
                "a sound version still serves beside a corrupt newer one",
                sentiment.status_code == 200 and sentiment.json().get("version") == 1,
                f"{sentiment.status_code} version {sentiment.json().get('version')}",
            )
            photo = {"files": ("a.jpg", photo_jpeg(64, 48), "image/jpeg")}
            caption = httpx.post(server.url + "/v1/caption", files=photo)
            report.check(
                "repository",
                "a version with a missing file is skipped for the sound one",
                caption.status_code == 200 and caption.json().get("version") == 1,
                str(caption.status_code),
            )
            classify = httpx.post(server.url + "/v1/classify-image", files=photo)
            message = classify.json().get("error", {}).get("message", "")
            report.check(
                "repository",
                "a failed default model answers 503 model_not_ready with the reason",
                classify.status_code == 503
                and classify.json()["error"]["code"] == "model_not_ready"
                and "sha256" in message,
                f"{classify.status_code}: {message[:100]}",
            )
            ready = httpx.get(server.url + "/health/ready")
            report.check(
                "repository", "readiness held back", ready.status_code == 503, str(ready.status_code)
            )
            models = httpx.get(server.url + "/v1/models").text
            report.check(
                "repository",
                "/v1/models says why each corrupt version failed",
                all(word in models for word in ("tiny-classifier", "decoder.onnx", "manifest")),
                f"{len(models)} bytes",
            )
            report.check("repository", "the process is alive", server.process.poll() is None)


def check_keys(report: Report, tiny: Path, _: argparse.Namespace) -> None:
    from service.keys import line

    with tempfile.TemporaryDirectory() as scratch:
        keys = Path(scratch) / "api-keys"
        inference, admin = "inference-key-" + "x" * 20, "admin-key-" + "y" * 20
        keys.write_text(line("inference", inference) + line("admin", admin))
        with service(tiny, {"MODELSERVE_API_KEYS_FILE": str(keys)}) as server:
            url = server.url

            def post(headers: dict[str, str]) -> httpx.Response:
                return httpx.post(url + "/v1/sentiment", json={"text": "good"}, headers=headers)

            for name, headers in (("no key", {}), ("a wrong key", {"Authorization": "Bearer wrong"})):
                response = post(headers)
                report.check(
                    "keys",
                    f"{name}: 401 with WWW-Authenticate in the one error shape",
                    response.status_code == 401
                    and "www-authenticate" in response.headers
                    and response.json()["error"]["code"] == "unauthorized",
                    str(response.status_code),
                )
            for name, headers in (("Bearer", {"Authorization": f"Bearer {inference}"}),
                                  ("X-API-Key", {"X-API-Key": inference})):  # fmt: skip
                response = post(headers)
                report.check("keys", f"an inference key as {name} serves", response.status_code == 200)
            for path in ("/metrics", "/v1/models"):
                refused = httpx.get(url + path, headers={"X-API-Key": inference}).status_code
                allowed = httpx.get(url + path, headers={"X-API-Key": admin}).status_code
                report.check(
                    "keys",
                    f"{path}: 403 for an inference key, 200 for an admin key",
                    (refused, allowed) == (403, 200),
                    f"{refused}, {allowed}",
                )
            probes = [httpx.get(url + path).status_code for path in ("/health/live", "/health/ready")]
            report.check("keys", "health endpoints open without a key", probes == [200, 200], str(probes))


SCENARIOS: dict[str, Callable[[Report, Path, argparse.Namespace], None]] = {
    "corpus": check_corpus,
    "header-flood": check_header_flood,
    "slowloris": check_slowloris,
    "overload": check_overload,
    "sigterm": check_sigterm,
    "repository": check_repository,
    "keys": check_keys,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m bench.edge_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models", help="the real default models")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="comma-separated scenarios (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="overload duration (default 15)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - SCENARIOS.keys())
    if unknown or not chosen:
        parser.error(f"--only: unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    from tests.model_factory import make_repository

    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        tiny = make_repository(Path(scratch) / "tiny")
        for name in chosen:
            try:
                SCENARIOS[name](report, tiny, args)
            except Exception as exc:  # a scenario that cannot run is a failed check, not a traceback
                report.check(name, "ran to the end", False, f"{type(exc).__name__}: {exc}")
    print(
        f"\n{report.count - len(report.failed)} of {report.count} checks passed "
        f"in {time.monotonic() - started:.0f} s"
        + (f"; failed: {'; '.join(report.failed)}" if report.failed else "")
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
