"""Run the benchmark: for classify-image (pets-resnet18), sentiment (sentiment-lstm) and caption
(captioner), in one run on one machine, (a) the raw pipeline in-process (decode, preprocess and
onnxruntime through the service's runtimes, at the best of ``--batch-sizes``), (b) the service over HTTP
with N concurrent clients and with one, (c) the naive server (PyTorch eager, one request at a time) with N
clients; prints throughput, p50 and p99 latency and the ratios of the targets (bench/README.md).

    python -m bench.run --models-dir /tmp/bench-models
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.checkpoints import ROOT, naive_checkpoint
from bench.load import TASKS, photo_jpeg, review
from contract.versions import VersionDir, discover
from service.preprocessing import load_pixels
from service.repository import load_version, read_manifest
from service.runtimes import CaptionerRuntime, ClassifierRuntime, Runtime, SentimentRuntime
from service.settings import Settings

MODELS = {"classify": "pets-resnet18", "sentiment": "sentiment-lstm", "caption": "captioner"}
Row = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def latest_version(models_dir: Path, name: str) -> VersionDir:
    """The highest version of model ``name`` in ``models_dir`` (the one the naive server serves too)."""
    versions = [v for v in discover(models_dir) if v.name == name]
    if not versions:
        raise SystemExit(f"no model named {name!r} in {models_dir}")
    return max(versions, key=lambda v: v.version)


def load_runtime(models_dir: Path, name: str) -> Runtime:
    """The highest version of model ``name`` in ``models_dir``, loaded with the default settings."""
    version = latest_version(models_dir, name)
    return load_version(read_manifest(version), version.path, Settings(models_dir=models_dir))


def missing_checkpoints(models_dir: Path, tasks: list[str], checkpoints: Path | None = None) -> list[str]:
    """The models of ``tasks`` whose training checkpoint is not on this machine: the naive server serves
    the same weights from it (``provenance.checkpoint``, a run directory or file, from the project root,
    or ``<name>.pt`` in ``checkpoints``), and the repository holds only the ONNX graphs."""
    missing = []
    for task in tasks:
        named = read_manifest(latest_version(models_dir, MODELS[task])).provenance.get("checkpoint")
        if naive_checkpoint(MODELS[task], named, checkpoints) is None:
            where = checkpoints / f"{MODELS[task]}.pt" if checkpoints else named or "names none"
            missing.append(f"{MODELS[task]} ({where})")
    return missing


def _providers(by_graph: dict[str, list[str]]) -> str:
    """The first (actual) provider of each graph, e.g. ``model: CUDAExecutionProvider``."""
    return ", ".join(f"{graph}: {names[0] if names else '?'}" for graph, names in sorted(by_graph.items()))


def _raw_step(runtime: Runtime, batch: int) -> Callable[[], object]:
    """One run of the raw pipeline over ``batch`` items: decode, preprocess, onnxruntime."""
    image, text = photo_jpeg(), review()
    if isinstance(runtime, SentimentRuntime):
        return lambda: runtime.predict([text] * batch)
    if isinstance(runtime, ClassifierRuntime):
        spec = runtime.image_spec
        return lambda: runtime.infer(np.stack([load_pixels(image, 10**8, spec) for _ in range(batch)]))
    assert isinstance(runtime, CaptionerRuntime)
    spec, length = runtime.image_spec, runtime.default_max_length()
    return lambda: runtime.infer(np.stack([load_pixels(image, 10**8, spec) for _ in range(batch)]), length, 3)


def raw(
    models_dir: Path, task: str, batches: list[int], requests: int, duration: float, ran_on: dict[str, str]
) -> list[Row]:
    runtime = load_runtime(models_dir, MODELS[task])
    ran_on[f"{task} raw"] = _providers(runtime.providers())
    rows = []
    for batch in batches:
        step = _raw_step(runtime, batch)
        step()  # warm
        latencies: list[float] = []
        started = time.perf_counter()
        while len(latencies) * batch < requests and time.perf_counter() - started < duration:
            begin = time.perf_counter()
            step()
            latencies.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
        ms = np.array(latencies) * 1000
        rows.append(
            {
                "task": task,
                "system": f"raw batch {batch}",
                "concurrency": "-",
                "requests": len(latencies) * batch,
                "errors": 0,
                "throughput": len(latencies) * batch / elapsed,
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
            }
        )
    runtime.close()
    return rows


@contextmanager
def server(command: list[str], ready_path: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``command`` on a free port (see :func:`started`); yields its URL."""
    with started(command, ready_path, env) as (_, url):
        yield url


@contextmanager
def started(
    command: list[str], ready_path: str, env: dict[str, str] | None = None, open_files: int | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``command`` with ``--port`` on a free port, ``env`` added to this environment and at most
    ``open_files`` descriptors (default: as this process); yields the process and its URL once
    ``ready_path`` answers 200. Stopped on exit (killed after 60 s), unless it has stopped already."""

    def limit_files() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit_files,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not become ready")
            try:
                if httpx.get(url + ready_path).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load(
    url: str,
    task: str,
    concurrency: int,
    requests: int,
    duration: float,
    system: str,
    processes: int = 1,
    warmup: int | None = None,
    honour_retry_after: bool = False,
) -> Row:
    command = [
        sys.executable,
        "-m",
        "bench.load",
        "--url",
        url,
        "--task",
        task,
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--duration",
        str(duration),
        "--processes",
        str(processes),
    ]
    if warmup is not None:
        command += ["--warmup", str(warmup)]
    if honour_retry_after:
        command.append("--honour-retry-after")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed: {done.stderr[-2000:]}")
    row = {**json.loads(done.stdout.strip().splitlines()[-1]), "system": system}
    print(json.dumps(row), file=sys.stderr, flush=True)  # progress
    return row


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def positive_counts(parser: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """A comma-separated list of positive whole numbers, or the parser's one-line error."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        parser.error(f"{option}: comma-separated whole numbers, not {text!r}")
    if min(counts) < 1:
        parser.error(f"{option}: each must be at least 1")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, of: " + ", ".join(TASKS))
    parser.add_argument("--concurrency", type=int, default=32, help="clients for classify and sentiment")
    parser.add_argument("--caption-concurrency", type=int, default=16)
    parser.add_argument("--batch-sizes", default="1,8,32", help="raw pipeline batch sizes tried")
    parser.add_argument("--requests", type=int, default=400, help="most requests per measurement")
    parser.add_argument("--duration", type=float, default=30.0, help="most seconds per measurement")
    parser.add_argument(
        "--naive-device", default="auto", help="the naive server's torch device (auto: CUDA if torch sees it)"
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="a folder of <model name>.pt training checkpoints for the naive server, instead of each "
        "manifest's provenance.checkpoint (e.g. on a machine the training runs never reached)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="the service's worker processes (its workers setting); several counts, comma-separated, "
        "measure the service once per count, side by side",
    )
    parser.add_argument(
        "--load-processes", type=int, default=1, help="processes of the load generator sharing the clients"
    )
    parser.add_argument(
        "--plot",
        default="bench-report.png",
        help="where to draw the results (throughput and latency per task and system; PNG); 'none': no chart",
    )
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(map(repr, unknown))}; known: {', '.join(TASKS)}")
    batch_sizes = positive_counts(parser, "--batch-sizes", args.batch_sizes)
    worker_counts = positive_counts(parser, "--workers", args.workers)
    for option in ("concurrency", "caption_concurrency", "requests", "duration", "load_processes"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive")
    missing = missing_checkpoints(args.models_dir, tasks, args.checkpoints)
    if missing:  # found before minutes of measuring, not when the naive server fails to start
        parser.error(
            f"the naive server loads each model's training checkpoint, and these are not here: "
            f"{', '.join(missing)}. Train the models (training/README.md), give --checkpoints DIR (a "
            "trained model's architecture with random weights: python -m bench.random_models --like "
            "VERSION_DIR --checkpoint DIR/NAME.pt), or benchmark the real architectures with random "
            "weights: python -m bench.random_models --out DIR"
        )
    rows: list[Row] = []
    ran_on: dict[str, str] = {}
    for task in tasks:
        rows += raw(args.models_dir, task, batch_sizes, args.requests, args.duration, ran_on)
    enabled = json.dumps([MODELS[t] for t in tasks])
    service = [
        sys.executable,
        "-m",
        "service",
        "--host",
        "127.0.0.1",
        "--models-dir",
        str(args.models_dir),
        "--log-level",
        "warning",
    ]
    ran_on["setup"] = f"service workers {args.workers}; load generator processes {args.load_processes}"
    for workers in worker_counts:
        system = "service" if len(worker_counts) == 1 else f"service w{workers}"
        service_env = {
            "MODELSERVE_ENABLED_MODELS": enabled,
            "MODELSERVE_WORKERS": str(workers),
            # the peers serve pets-resnet18: requests without a model must get it here too
            "MODELSERVE_DEFAULT_IMAGE_CLASSIFIER": MODELS["classify"],
        }
        with server(service, "/health/ready", service_env) as url:
            for entry in httpx.get(url + "/v1/models").json()["models"]:
                graphs = {key: g["providers"] for key, g in entry["graphs"].items()}
                ran_on[f"{entry['name']} service"] = _providers(graphs)
            for task in tasks:
                clients = args.caption_concurrency if task == "caption" else args.concurrency
                processes = args.load_processes
                rows.append(load(url, task, clients, args.requests, args.duration, system, processes))
                rows.append(load(url, task, 1, args.requests, args.duration, system))
    naive = [sys.executable, "-m", "bench.naive_server", "--models-dir", str(args.models_dir)]
    naive += ["--device", args.naive_device]
    if args.checkpoints:
        naive += ["--checkpoints", str(args.checkpoints.resolve())]
    with server(naive, "/docs") as url:
        ran_on["naive"] = "torch {torch}, {device}".format(**httpx.get(url + "/info").json())
        for task in tasks:
            clients = args.caption_concurrency if task == "caption" else args.concurrency
            rows.append(load(url, task, clients, args.requests, args.duration, "naive", args.load_processes))
    report(rows, tasks, ran_on)
    if args.plot != "none":
        try:
            print(f"chart: {plot_report(rows, tasks, ran_on, Path(args.plot))}")
        except ImportError as exc:  # the numbers are printed above; the chart is extra
            print(f"no chart: {exc.name or 'matplotlib'} is not installed (it comes with the train extra)")


def plot_report(rows: list[Row], tasks: list[str], ran_on: dict[str, str], path: Path) -> Path:
    """Draw the results to ``path``: per task, throughput per system (top) and p50/p99 latency (bottom,
    log scale), each bar labelled with its value, and what each system ran on underneath."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 7.5), squeeze=False)
    for column, task in enumerate(tasks):
        task_rows = [r for r in rows if r["task"] == task]
        names = [
            f"{r['system']}\n({r['concurrency']} client{'s' if r['concurrency'] != 1 else ''})"
            if r["concurrency"] != "-"
            else r["system"]
            for r in task_rows
        ]
        colours = [
            "#8c8c8c" if r["system"].startswith("raw") else "#c44e52" if r["system"] == "naive" else "#4c72b0"
            for r in task_rows
        ]
        positions = np.arange(len(task_rows))
        top, bottom = axes[0][column], axes[1][column]
        bars = top.bar(positions, [r["throughput"] for r in task_rows], color=colours)
        top.bar_label(bars, fmt="%.0f", fontsize=7)
        top.set_title(f"{task} ({MODELS[task]})")
        top.set_ylabel("requests (raw: items) per second")
        width = 0.4
        p50 = bottom.bar(
            positions - width / 2, [r["p50_ms"] for r in task_rows], width, label="p50", color="#55a868"
        )
        p99 = bottom.bar(
            positions + width / 2, [r["p99_ms"] for r in task_rows], width, label="p99", color="#dd8452"
        )
        bottom.bar_label(p50, fmt="%.0f", fontsize=6)
        bottom.bar_label(p99, fmt="%.0f", fontsize=6)
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        # between the powers of ten, only 2 and 5 are labelled (all of them crowd the axis)
        bottom.yaxis.set_minor_formatter(
            matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else "")
        )
        bottom.tick_params(axis="y", which="minor", labelsize=6)
        bottom.set_ylabel("latency, ms (log scale)")
        bottom.legend(fontsize=7)
        for ax in (top, bottom):
            ax.set_xticks(positions, names, rotation=45, ha="right", fontsize=7)
            ax.grid(axis="y", alpha=0.3)
    fig.text(
        0.01, 0.005, "; ".join(f"{what}: {where}" for what, where in ran_on.items()), fontsize=6, wrap=True
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(rows: list[Row], tasks: list[str], ran_on: dict[str, str]) -> None:
    print("ran on (actual execution providers, first of each graph):")
    for what, where in ran_on.items():
        print(f"  {what}: {where}")
    print(
        f"{'task':<10} {'system':<14} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in rows:
        print(
            f"{r['task']:<10} {r['system']:<14} {r['concurrency']!s:>7} {r['requests']:>8} {r['errors']:>6} "
            f"{r['throughput']:>8.2f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )
    print()
    for task in tasks:
        task_rows = [r for r in rows if r["task"] == task]
        raw_rows = [r for r in task_rows if r["system"].startswith("raw")]
        best_raw = max(raw_rows, key=lambda r: r["throughput"])
        raw_single = (
            next(r for r in raw_rows if r["system"] == "raw batch 1")
            if any(r["system"] == "raw batch 1" for r in raw_rows)
            else None
        )
        naive_n = next(r for r in task_rows if r["system"] == "naive")
        services = dict.fromkeys(r["system"] for r in task_rows if r["system"].startswith("service"))
        for name in services:
            service_n, service_1 = (r for r in task_rows if r["system"] == name)
            print(
                f"{task}: {name} ({service_n['concurrency']} clients) / raw best ({best_raw['system']}): "
                f"{ratio(service_n['throughput'], best_raw['throughput'])}; {name} / naive: "
                f"{ratio(service_n['throughput'], naive_n['throughput'])}; {name} {service_n['concurrency']} "
                f"clients / {name} sequential: {ratio(service_n['throughput'], service_1['throughput'])}"
                + (
                    f"; single-request p50 overhead over raw batch 1: "
                    f"{service_1['p50_ms'] - raw_single['p50_ms']:+.1f} ms"
                    if raw_single
                    else ""
                )
            )


if __name__ == "__main__":
    main()
