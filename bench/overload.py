"""Mixed overload: classify (pets-resnet18) and sentiment (sentiment-lstm) at once, each with far more
clients than the service answers in time (``bench/load.py``'s clients send back to back and do not wait
for Retry-After), against ``python -m service`` under each admission setting given, in one run. Prints,
per setting and task: requests answered and their rate, refused (503), any other failure (another
status, or a connection that failed), p50/p99 of the answered ones, and the server's RSS near the end of
the load (from /proc). With ``--honour-retry-after`` a refused client waits its Retry-After first.

    python -m bench.overload --models-dir models --setting none:0:0 --setting cap32:32:300

A setting is ``LABEL:MAX_REQUESTS_IN_FLIGHT:BATCH_MAX_WAIT_MS``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.run import load, server


def rss_mb(url: str) -> float:
    """The resident memory of the server listening at ``url`` (Linux: found by its command line)."""
    port = url.rsplit(":", 1)[1]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            parts = cmdline.read_bytes().split(b"\0")
            if (
                b"service" in parts
                and b"--port" in parts
                and parts[parts.index(b"--port") + 1] == port.encode()
            ):
                status = (cmdline.parent / "status").read_text()
                return (
                    int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
                    / 1024
                )
        except (OSError, IndexError, StopIteration):
            continue
    return float("nan")


def mixed_load(
    url: str,
    seconds: float,
    classify_clients: int = 128,
    sentiment_clients: int = 512,
    label: str = "",
    honour_retry_after: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Classification and sentiment against ``url`` at once for ``seconds`` (sentiment's clients in two
    load processes); each task's load row, and the server's RSS in MB once a second meanwhile."""
    results: dict[str, dict[str, Any]] = {}

    def run(task: str, clients: int, processes: int) -> None:
        results[task] = load(
            url,
            task,
            clients,
            10_000_000,
            seconds,
            label or task,
            processes,
            warmup=20,
            honour_retry_after=honour_retry_after,
        )

    runs = [("classify", classify_clients, 1), ("sentiment", sentiment_clients, 2)]
    threads = [threading.Thread(target=run, args=spec) for spec in runs]
    for thread in threads:
        thread.start()
    memory = []
    while any(thread.is_alive() for thread in threads):
        memory.append(rss_mb(url))
        time.sleep(1)
    return results, memory


def measure(
    models_dir: Path, label: str, in_flight: int, wait_ms: int, args: argparse.Namespace
) -> list[str]:
    env = {
        "MODELSERVE_MAX_REQUESTS_IN_FLIGHT": str(in_flight),
        "MODELSERVE_BATCH_MAX_WAIT_MS": str(wait_ms),
        "MODELSERVE_DEFAULT_IMAGE_CLASSIFIER": "pets-resnet18",  # what its earlier runs measured
    }
    command = [sys.executable, "-m", "service", "--models-dir", str(models_dir), "--log-level", "warning"]
    with server(command, "/health/ready", env) as url:
        results, samples = mixed_load(
            url,
            args.seconds,
            args.classify_clients,
            args.sentiment_clients,
            label,
            args.honour_retry_after,
        )
    memory = samples[-1] if samples else float("nan")  # the last taken while the load ran: near its end
    lines = []
    for task, r in results.items():
        refused = r["statuses"].get("503", 0)
        lines.append(
            f"{label:<12} {task:<10} {r['requests']:>8} {r['throughput']:>9.0f} {refused:>9} "
            f"{r['errors'] - refused:>7} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} {memory:>8.0f}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--setting", action="append", default=[], help="LABEL:MAX_IN_FLIGHT:MAX_WAIT_MS")
    parser.add_argument("--classify-clients", type=int, default=128)
    parser.add_argument("--sentiment-clients", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="clients refused with 503 wait their Retry-After before sending again",
    )
    args = parser.parse_args(argv)
    settings = args.setting or ["none:0:0", "cap32:32:300"]
    rows = ["setting      task       answered    req/s   refused  other  p50 ms   p99 ms   RSS MB"]
    for setting in settings:
        label, in_flight, wait_ms = setting.split(":")
        rows += measure(args.models_dir, label, int(in_flight), int(wait_ms), args)
        print(rows[-2], rows[-1], sep="\n", flush=True)
    print("\n".join(["", *rows]))


if __name__ == "__main__":
    main()
