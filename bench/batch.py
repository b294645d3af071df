"""Benchmark the offline batch command (``python -m service.batch``) on real data, in one run on one
machine: classify (pets-resnet18 over the 1,000 cats-vs-dogs validation images) and sentiment
(sentiment-lstm over the first 5,000 IMDB test reviews), each measured as

- **raw**: the pipeline in-process, one thread (read the file, decode, preprocess, onnxruntime through the
  service's runtimes, as ``bench.run`` measures it, but over the real items), at the best of
  ``--raw-batch-sizes``;
- **embedded**: the command as a subprocess: its work rate from its closing summary (the model loaded),
  its wall time (process start and model load included) and its peak RSS (its ``ru_maxrss``, the
  kernel's high-water mark of the process, read by a small launcher process: see ``LAUNCHER``);
- **HTTP**: ``python -m service`` with 32 items a request, the best of 1 and 2 clients;
- **ray**: the command with ``--engine ray --actors 2`` (its summary's rate includes ``ray.init`` and the
  actors' start-up).

Prints them side by side with the ratios of the targets: embedded >= 0.9x raw best, >= 1.5x HTTP.

    python -m bench.batch --json /tmp/bench-batch.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np

from bench.run import MODELS, ROOT, _providers, load_runtime, positive_counts, server
from service.preprocessing import load_pixels
from service.runtimes import ClassifierRuntime, Runtime, SentimentRuntime

TASKS = ("classify", "sentiment")
ENGINES = ("embedded", "ray")
IMAGES = Path("cats_vs_dogs/validation")
REVIEWS = Path("imdb/test.csv.gz")
REVIEW_COUNT = 5000
PER_REQUEST = 32  # items per HTTP request: the service's max_batch_items
CLIENTS = (1, 2)
RAY_ACTORS = 2
RAW_SECONDS = 10.0  # most seconds per raw batch size (one pass over the items at most)
# Runs the command of its arguments, then ends its stderr with "ran SECONDS PEAK_RSS_KB": the command's
# wall time and ru_maxrss (kilobytes on Linux). Linux starts a child's ru_maxrss at its parent's memory
# high-water mark (fork or vfork, then exec, carry it over), so the command is started by this small
# process rather than by the benchmark, which holds hundreds of MB by then.
LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:])
seconds = time.perf_counter() - started
print(f"ran {seconds} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""
RAN = re.compile(r"^ran ([\d.]+) (\d+)$", re.MULTILINE)
SUMMARY = re.compile(r"answered (\d+), failed (\d+)[^;]*; ([\d.]+) s \(([\d.]+) items/s\)")
Row = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    """A task's items: image paths or texts, and the input the batch command reads them from."""

    task: str
    items: list[Path] | list[str]
    source: Path  # the image folder, or a CSV of the texts

    @property
    def model(self) -> str:
        return MODELS[self.task]


def data_problem(data: Path, tasks: list[str]) -> str | None:
    """What of the data ``tasks`` read is missing from ``data``, or None."""
    needed = {"classify": data / IMAGES, "sentiment": data / REVIEWS}
    missing = [str(needed[task]) for task in tasks if not needed[task].exists()]
    return f"no such data: {', '.join(missing)}" if missing else None


def first_reviews(path: Path, count: int) -> list[str]:
    """The ``text`` of the first ``count`` rows of a gzip CSV."""
    reader = csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"), newline=""))
    return [row["text"] for row in islice(reader, count)]


def workload(task: str, data: Path, scratch: Path) -> Workload:
    """The items of ``task``; the texts are written to a CSV (one ``text`` column) in ``scratch``."""
    if task == "classify":
        return Workload(task, sorted((data / IMAGES).rglob("*.jpg")), data / IMAGES)
    texts = first_reviews(data / REVIEWS, REVIEW_COUNT)
    source = scratch / "reviews.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([text] for text in texts)
    return Workload(task, texts, source)


def raw_step(runtime: Runtime) -> Callable[[list[Any]], object]:
    """The raw pipeline over a batch of items: read, decode and preprocess each image (one thread), then
    onnxruntime; or tokenize the texts, then onnxruntime."""
    if isinstance(runtime, ClassifierRuntime):
        spec = runtime.image_spec
        return lambda paths: runtime.infer(
            np.stack([load_pixels(p.read_bytes(), 10**8, spec) for p in paths])
        )
    assert isinstance(runtime, SentimentRuntime)
    return runtime.predict


def raw(models_dir: Path, work: Workload, batch_sizes: list[int], ran_on: dict[str, str]) -> dict[int, float]:
    """Items a second of the raw pipeline at each batch size, over the items in order (at most one pass,
    at most ``RAW_SECONDS``), after one batch of warm-up."""
    runtime = load_runtime(models_dir, work.model)
    ran_on[f"{work.task} raw"] = _providers(runtime.providers())
    step = raw_step(runtime)
    rates = {}
    for size in batch_sizes:
        batches = [work.items[i : i + size] for i in range(0, len(work.items), size)]
        step(batches[0])
        done = 0
        started = time.perf_counter()
        for batch in batches:
            step(batch)
            done += len(batch)
            if time.perf_counter() - started > RAW_SECONDS:
                break
        rates[size] = done / (time.perf_counter() - started)
        print(f"{work.task} raw batch {size}: {rates[size]:.1f} items/s", file=sys.stderr, flush=True)
    runtime.close()
    return rates


def run_batch(work: Workload, engine: str, models_dir: Path, batch_size: int, scratch: Path) -> Row:
    """One run of the batch command, through ``LAUNCHER``: the counts and rate of its summary line, its
    wall time (from the process's start to its exit) and its peak RSS (for ray, the largest single process
    of the driver and the children it reaped, not the sum over Ray's processes)."""
    output = scratch / f"{work.task}-{engine}.parquet"
    command = [sys.executable, "-m", "service.batch", str(work.source), "--output", str(output)]
    command += ["--models-dir", str(models_dir), "--model", work.model, "--batch-size", str(batch_size)]
    command += ["--engine", engine, "--no-progress"]
    if engine == "ray":
        command += ["--actors", str(RAY_ACTORS)]
    log = scratch / f"{work.task}-{engine}.log"
    with log.open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
        )
    text = log.read_text(errors="replace")
    found, ran = SUMMARY.findall(text), RAN.findall(text)
    if done.returncode != 0 or not found or not ran:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {text[-2000:]}")
    answered, failed, seconds, rate = found[-1]
    wall, peak_kb = ran[-1]
    row = {
        "answered": int(answered),
        "failed": int(failed),
        "seconds": float(seconds),
        "items_per_s": float(rate),
        "wall_s": float(wall),
        "wall_items_per_s": (int(answered) + int(failed)) / float(wall),
        "peak_rss_mb": int(peak_kb) / 1024,
    }
    print(f"{work.task} {engine}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def requests_of(work: Workload) -> list[dict[str, Any]]:
    """The keyword arguments of ``httpx.Client.post`` for each request of ``PER_REQUEST`` items."""
    chunks = [work.items[i : i + PER_REQUEST] for i in range(0, len(work.items), PER_REQUEST)]
    if work.task == "sentiment":
        return [{"url": "/v1/sentiment", "json": {"texts": chunk}} for chunk in chunks]
    return [
        {
            "url": "/v1/classify-image",
            "files": [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in cast(list[Path], chunk)],
        }
        for chunk in chunks
    ]


def http_rate(url: str, requests: list[dict[str, Any]], clients: int) -> float:
    """Items answered a second by the service, ``clients`` clients sending the requests back to back
    (each its own connection), after one request of warm-up."""
    with httpx.Client(base_url=url, timeout=120) as warm:
        warm.post(**requests[0]).raise_for_status()
    pending = deque(requests)

    def client() -> int:
        answered = 0
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                try:
                    request = pending.popleft()
                except IndexError:  # every request is sent
                    break
                response = http.post(**request)
                response.raise_for_status()
                answered += sum("error" not in result for result in response.json()["results"])
        return answered

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answered = sum(pool.map(lambda _: client(), range(clients)))
    return answered / (time.perf_counter() - started)


def http(models_dir: Path, works: list[Workload]) -> dict[str, dict[int, float]]:
    """Per task, items a second of the service at each count of ``CLIENTS``."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--models-dir", str(models_dir)]
    command += ["--log-level", "warning"]
    enabled = {
        "MODELSERVE_ENABLED_MODELS": json.dumps([work.model for work in works]),
        "MODELSERVE_DEFAULT_IMAGE_CLASSIFIER": MODELS["classify"],  # the requests name no model
    }
    rates: dict[str, dict[int, float]] = {}
    with server(command, "/health/ready", enabled) as url:
        for work in works:
            requests = requests_of(work)
            rates[work.task] = {}
            for clients in CLIENTS:
                rates[work.task][clients] = http_rate(url, requests, clients)
                print(
                    f"{work.task} HTTP {clients} client(s): {rates[work.task][clients]:.1f} items/s",
                    file=sys.stderr,
                    flush=True,
                )
    return rates


def best(rates: dict[int, float]) -> tuple[int, float]:
    """The key of the highest rate, and the rate."""
    key = max(rates, key=rates.__getitem__)
    return key, rates[key]


def quotient(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None where either is missing (an engine not run) or ``b`` is 0."""
    return a / b if a is not None and b else None


def results_of(
    work: Workload, raw_rates: dict[int, float], runs: dict[str, Row], http_rates: dict[int, float]
) -> Row:
    """A task's measurements and the ratios of the targets."""
    raw_batch, raw_best = best(raw_rates)
    http_clients, http_best = best(http_rates)
    embedded = runs["embedded"]["items_per_s"] if "embedded" in runs else None
    ray = runs["ray"]["items_per_s"] if "ray" in runs else None
    return {
        "task": work.task,
        "model": work.model,
        "items": len(work.items),
        "raw": {"by_batch": raw_rates, "best_batch": raw_batch, "best": raw_best},
        "http": {
            "per_request": PER_REQUEST,
            "by_clients": http_rates,
            "best_clients": http_clients,
            "best": http_best,
        },
        **runs,
        "ratios": {
            "embedded/raw": quotient(embedded, raw_best),
            "embedded/HTTP": quotient(embedded, http_best),
            "ray/embedded": quotient(ray, embedded),
        },
    }


def report(results: list[Row], ran_on: dict[str, str]) -> None:
    print("ran on: " + "; ".join(f"{what}: {where}" for what, where in ran_on.items()))
    columns = ["task", "raw best (batch)", "embedded", "HTTP 32/request", "ray"]
    columns += ["embedded/raw", "embedded/HTTP", "ray/embedded", "peak RSS MB"]
    print(_table_line(columns, columns))
    print("-" * len(_table_line(columns, columns)))
    for r in results:
        embedded, ray, ratios = r.get("embedded"), r.get("ray"), r["ratios"]
        cells = [r["task"], f"{r['raw']['best']:.1f} ({r['raw']['best_batch']})", _rate(embedded)]
        cells += [f"{r['http']['best']:.1f}", _rate(ray)]
        cells += [_times(ratios[name]) for name in ("embedded/raw", "embedded/HTTP", "ray/embedded")]
        cells.append(_rss(embedded))
        print(_table_line(cells, columns))
    print()
    print(
        "items/s. embedded and ray: the summary's rate (model loaded; ray: with ray.init and the actors' "
        "start-up); HTTP: the best of 1 and 2 clients; peak RSS: ru_maxrss of the embedded command's "
        "process. Targets: embedded/raw >= 0.9x, embedded/HTTP >= 1.5x."
    )
    for r in results:
        raw_rates = ", ".join(f"{size}: {rate:.1f}" for size, rate in r["raw"]["by_batch"].items())
        http_rates = ", ".join(f"{count}: {rate:.1f}" for count, rate in r["http"]["by_clients"].items())
        print(f"{r['task']}: raw by batch size {raw_rates}; HTTP by clients {http_rates}")
        for engine in ENGINES:
            if engine in r:
                run = r[engine]
                print(
                    f"{r['task']}: {engine}: {run['answered']} answered, {run['failed']} failed; work "
                    f"{run['seconds']:.1f} s, wall {run['wall_s']:.1f} s ({run['wall_items_per_s']:.1f} "
                    f"items/s with process start and model load); peak RSS {run['peak_rss_mb']:.0f} MB"
                    + (" (largest single process, not Ray's total)" if engine == "ray" else "")
                )


def _table_line(cells: list[str], columns: list[str]) -> str:
    """A row of the table: the first cell left-aligned, the others right-aligned, each as wide as its
    column's name (and the task column 10 wide)."""
    first, *rest = cells
    widths = [len(column) for column in columns[1:]]
    return " | ".join(
        [first.ljust(10), *(cell.rjust(width) for cell, width in zip(rest, widths, strict=True))]
    )


def _rate(run: Row | None) -> str:
    return f"{run['items_per_s']:.1f}" if run else "-"


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def _rss(run: Row | None) -> str:
    return f"{run['peak_rss_mb']:.0f}" if run else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="default: ../shared/data of the repo",
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, of: " + ", ".join(TASKS))
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="comma-separated, of: " + ", ".join(ENGINES)
    )
    parser.add_argument("--batch-size", type=int, default=32, help="the batch command's --batch-size")
    parser.add_argument("--raw-batch-sizes", default="1,8,32,64", help="raw pipeline batch sizes tried")
    parser.add_argument("--json", type=Path, help="also write the results here, as JSON")
    args = parser.parse_args(argv)
    tasks, engines = args.tasks.split(","), args.engines.split(",")
    for option, given, known in (("--tasks", tasks, TASKS), ("--engines", engines, ENGINES)):
        unknown = [name for name in given if name not in known]
        if unknown:
            parser.error(f"{option}: unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    raw_batch_sizes = positive_counts(parser, "--raw-batch-sizes", args.raw_batch_sizes)
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")
    problem = data_problem(args.data, tasks)
    if problem:
        parser.exit(2, f"{parser.prog}: error: {problem} (--data)\n")
    models_dir = args.models_dir.resolve()
    ran_on = {"machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start"}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        works = [workload(task, args.data.resolve(), Path(scratch)) for task in tasks]
        raw_rates = {work.task: raw(models_dir, work, raw_batch_sizes, ran_on) for work in works}
        runs = {
            work.task: {
                engine: run_batch(work, engine, models_dir, args.batch_size, Path(scratch))
                for engine in engines
            }
            for work in works
        }
        http_rates = http(models_dir, works)
    results = [
        results_of(work, raw_rates[work.task], runs[work.task], http_rates[work.task]) for work in works
    ]
    report(results, ran_on)
    if args.json:
        args.json.write_text(json.dumps({"ran_on": ran_on, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
