"""The load generator, a process of its own: ``--concurrency`` clients send requests back to back to a
server on 127.0.0.1 until ``--requests`` are answered or ``--duration`` seconds have passed; prints one
JSON line: requests, errors, seconds, throughput (answered requests per second), p50 and p99 latency, the
count of each status other than 200 (``statuses``; ``0`` for a connection that failed) and of 503s that
came without Retry-After. The clients send back to back, also after a 503, unless ``--honour-retry-after``:
then a client refused with a 503 waits as long as its Retry-After says before it sends again.
With ``--processes N``, N processes share the clients and the request budget (one Python process sends
at most a few thousand small requests a second) and their latencies are pooled."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import time
from collections import Counter
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
    return encode_request(args.pop("url"), url, **args)


def encode_request(path: str, url: str = "http://127.0.0.1", **kwargs: Any) -> bytes:
    """A POST of ``path`` as HTTP/1.1 bytes, its body encoded by httpx from ``kwargs`` (``json``,
    ``files``, ``data``), with Host and Content-Length."""
    request = httpx.Request("POST", url.rstrip("/") + path, **kwargs)
    body = request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    lines = [f"POST {request.url.raw_path.decode()} HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Read one HTTP/1.1 response; its status and headers (names lowercased)."""
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
    return status, headers


async def generate(
    url: str, task: str, concurrency: int, requests: int, duration: float, honour_retry_after: bool = False
) -> dict[str, Any]:
    """One process's measurement: the summary (see the module's docstring) and ``latencies`` (seconds)."""
    payload = request_bytes(url, task)
    host, port = urlsplit(url).hostname, urlsplit(url).port or 80
    latencies: list[float] = []
    issued = 0
    statuses: Counter[str] = Counter()  # every answer but a 200, by status ("0": no answer)
    without_retry_after = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal issued, without_retry_after
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            sent = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(payload)
                status, headers = await asyncio.wait_for(read_response(reader), 120.0)
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError):  # timeouts are OSErrors
                statuses["0"] += 1
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            if status == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                statuses[str(status)] += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                connection = None
            if status == 503:
                retry_after = headers.get("retry-after", "")
                if not retry_after.isdigit():
                    without_retry_after += 1
                elif honour_retry_after:
                    await asyncio.sleep(min(int(retry_after), max(0.0, deadline - time.perf_counter())))
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summary(task, concurrency, latencies, time.perf_counter() - started, statuses, without_retry_after)


def summary(
    task: str,
    concurrency: int,
    latencies: list[float],
    elapsed: float,
    statuses: Counter[str],
    without_retry_after: int,
) -> dict[str, Any]:
    """The JSON row; ``errors`` counts every request that was not answered 200."""
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "task": task,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(statuses.values()),
        "seconds": round(elapsed, 3),
        "throughput": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "statuses": dict(statuses),
        "503_without_retry_after": without_retry_after,
        "latencies": latencies,
    }


def _run(coroutine: Any) -> Any:
    return (asyncio.run if uvloop is None else uvloop.run)(coroutine)  # uvloop: less CPU per request


def _one_process(args: tuple[str, str, int, int, float, bool]) -> dict[str, Any]:
    return dict(_run(generate(*args)))


def measure(
    url: str,
    task: str,
    concurrency: int,
    requests: int,
    duration: float,
    processes: int = 1,
    honour_retry_after: bool = False,
) -> dict[str, Any]:
    """``generate`` in ``processes`` processes at once, the clients and requests shared out; their
    latencies and counts pooled, the throughput over the longest process's time."""
    if processes <= 1:
        return _one_process((url, task, concurrency, requests, duration, honour_retry_after))
    processes = min(processes, concurrency)
    shares = [
        (
            url,
            task,
            len(range(i, concurrency, processes)),
            len(range(i, requests, processes)),
            duration,
            honour_retry_after,
        )
        for i in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_one_process, shares)
    return summary(
        task,
        concurrency,
        [latency for part in parts for latency in part["latencies"]],
        max(part["seconds"] for part in parts),
        sum((Counter(part["statuses"]) for part in parts), Counter()),
        sum(part["503_without_retry_after"] for part in parts),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT (nothing else is accepted)")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="most requests in all")
    parser.add_argument("--duration", type=float, default=30.0, help="most seconds")
    parser.add_argument("--warmup", type=int, default=2, help="requests sent first, not measured")
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the clients")
    parser.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="a client refused with 503 waits its Retry-After before sending again",
    )
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname != "127.0.0.1":
        parser.error("the load goes to 127.0.0.1 only")
    if args.warmup:
        measure(args.url, args.task, 1, args.warmup, args.duration)
    result = measure(
        args.url,
        args.task,
        args.concurrency,
        args.requests,
        args.duration,
        args.processes,
        args.honour_retry_after,
    )
    del result["latencies"]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
