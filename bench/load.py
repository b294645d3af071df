"""The load generator, a process of its own: ``--concurrency`` clients send requests back to back to a
server on 127.0.0.1 until ``--requests`` are answered or ``--duration`` seconds have passed; prints one
JSON line: requests, errors, seconds, throughput (answered requests per second), p50 and p99 latency.
With ``--processes N``, N processes share the clients and the request budget (one Python process sends
at most a few thousand small requests a second) and their latencies are pooled."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

try:
    import uvloop
except ImportError:  # uvicorn[standard] brings it on Linux
    uvloop = None  # type: ignore[assignment]

TASKS = ("classify", "sentiment", "caption")


def photo_jpeg(width: int = 500, height: int = 375, seed: int = 0) -> bytes:
    """A photo-sized JPEG with smooth gradients and noise (a pets photo is about 500x375)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def review(words: int = 60, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    vocabulary = ["the", "film", "was", "great", "awful", "plot", "acting", "and", "not", "really", "story"]
    return " ".join(rng.choice(vocabulary, size=words))


def request_args(task: str) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Request`` (method and url aside) for one request of ``task``."""
    if task == "sentiment":
        return {"url": "/v1/sentiment", "json": {"text": review()}}
    files = [("files", ("photo.jpg", photo_jpeg(), "image/jpeg"))]
    if task == "caption":
        return {"url": "/v1/caption", "files": files, "data": {"beam_size": "3"}}
    return {"url": "/v1/classify-image", "files": files}


def request_bytes(url: str, task: str) -> bytes:
    """The whole HTTP/1.1 request of ``task`` as bytes: httpx encodes it once (JSON or multipart), and
    the clients send these bytes again and again, so that the load process spends its time on the
    sockets, not on building requests (httpx's client costs about 3 ms of CPU per request, which would
    make the load generator, not the server, the bottleneck)."""
    args = request_args(task)
    request = httpx.Request("POST", url.rstrip("/") + args.pop("url"), **args)
    body = request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    lines = [f"POST {request.url.raw_path.decode()} HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in header_lines if line)
    )
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status, headers.get("connection", "").lower() != "close"


async def generate(url: str, task: str, concurrency: int, requests: int, duration: float) -> dict[str, Any]:
    """One process's measurement: the summary (see the module's docstring) and ``latencies`` (seconds)."""
    payload = request_bytes(url, task)
    host, port = urlsplit(url).hostname, urlsplit(url).port or 80
    latencies: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal errors, issued
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            sent = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(payload)
                status, keep_alive = await asyncio.wait_for(read_response(reader), 120.0)
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError):  # timeouts are OSErrors
                errors += 1
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            if status == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1
            if not keep_alive:
                writer.close()
                connection = None
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(task, concurrency, latencies, errors, time.perf_counter() - started)


def summary(
    task: str, concurrency: int, latencies: list[float], errors: int, elapsed: float
) -> dict[str, Any]:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "task": task,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "throughput": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "latencies": latencies,
    }


def _run(coroutine: Any) -> Any:
    return (asyncio.run if uvloop is None else uvloop.run)(coroutine)  # uvloop: less CPU per request


def _one_process(args: tuple[str, str, int, int, float]) -> dict[str, Any]:
    return dict(_run(generate(*args)))


def measure(
    url: str, task: str, concurrency: int, requests: int, duration: float, processes: int = 1
) -> dict[str, Any]:
    """``generate`` in ``processes`` processes at once, the clients and requests shared out; their
    latencies pooled, the throughput over the longest process's time."""
    if processes <= 1:
        return _one_process((url, task, concurrency, requests, duration))
    processes = min(processes, concurrency)
    shares = [
        (url, task, len(range(i, concurrency, processes)), len(range(i, requests, processes)), duration)
        for i in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_one_process, shares)
    latencies = [latency for part in parts for latency in part["latencies"]]
    errors = sum(part["errors"] for part in parts)
    return summary(task, concurrency, latencies, errors, max(part["seconds"] for part in parts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT (nothing else is accepted)")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="most requests in all")
    parser.add_argument("--duration", type=float, default=30.0, help="most seconds")
    parser.add_argument("--warmup", type=int, default=2, help="requests sent first, not measured")
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the clients")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname != "127.0.0.1":
        parser.error("the load goes to 127.0.0.1 only")
    if args.warmup:
        measure(args.url, args.task, 1, args.warmup, args.duration)
    result = measure(args.url, args.task, args.concurrency, args.requests, args.duration, args.processes)
    del result["latencies"]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
