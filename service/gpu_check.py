"""``python -m service.gpu_check``: where each model version really runs, and whether it computes there
what it computes on CPU.

Every version of the repository is loaded twice: with the preferred execution providers (the settings'
``providers``, GPU first) and with CPU only. Every graph then runs the same inputs in both sessions, and
the check prints, per graph output, the providers the first session actually got
(``session.get_providers()``) and the largest absolute difference from CPU. The inputs are those the
runtime feeds each graph in its own warm-up (so token ids, lengths and shapes are valid for every task),
with every float input replaced by seeded random values, so that the comparison is not made on a blank
image.

Exit status: 0 when every version loaded and every output is within tolerance of CPU's
(|gpu - cpu| <= atol + rtol * |cpu|); 1 when an output is not, or a version does not load, or there is
nothing to check; 3 with ``--require-gpu`` when some graph got no GPU provider. Other settings (device,
CUDA options) come from ``MODELSERVE_*`` as for the service.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort

from contract.versions import VersionDir, discover

from .providers import CPU, unavailable_providers, uses_gpu
from .repository import read_manifest, verify_files
from .runtimes import RUNTIMES, Runtime
from .settings import Settings

EXIT_MISMATCH = 1
EXIT_NO_GPU = 3


@dataclass
class OutputCheck:
    """One output of one graph: where it ran and how far it is from CPU."""

    model: str
    version: int
    graph: str
    providers: list[str]
    output: str
    shape: tuple[int, ...]
    max_abs_diff: float
    ok: bool


class _Recorder:
    """Stands in for a session during a warm-up: runs it, and keeps the first inputs it is given."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.feeds: dict[str, np.ndarray] | None = None

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> Any:
        if self.feeds is None:
            self.feeds = {name: np.array(value, copy=True) for name, value in feeds.items()}
        return self.session.run(outputs, feeds)


def warmup_feeds(runtime: Runtime) -> dict[str, dict[str, np.ndarray]]:
    """Per graph key, the first inputs the loaded ``runtime`` feeds that graph in its warm-up."""
    sessions = runtime.sessions
    recorders = {key: _Recorder(session) for key, session in sessions.items()}
    runtime.sessions = cast(dict[str, ort.InferenceSession], recorders)
    try:
        runtime.warmup()
    finally:
        runtime.sessions = sessions
    return {key: recorder.feeds for key, recorder in recorders.items() if recorder.feeds is not None}


def randomized(feeds: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``feeds`` with every float array replaced by standard normal values of its shape and type."""
    return {
        name: rng.standard_normal(value.shape).astype(value.dtype) if value.dtype.kind == "f" else value
        for name, value in feeds.items()
    }


def compare(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> tuple[float, bool]:
    """(max |actual - expected|, whether every element is within atol + rtol * |expected|)."""
    if actual.shape != expected.shape:
        return float("inf"), False
    if actual.size == 0:
        return 0.0, True
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    ok = bool(np.all(np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)))
    return float(np.nanmax(difference)) if not np.all(np.isnan(difference)) else 0.0, ok


def check_version(
    version: VersionDir, settings: Settings, atol: float, rtol: float, seed: int
) -> list[OutputCheck]:
    """Load one version with the preferred providers and with CPU only, and compare every graph output.
    Raises what loading raises (``RuntimeLoadError`` and onnxruntime's errors)."""
    manifest = read_manifest(version)
    verify_files(manifest, version.path)
    runtime_class = RUNTIMES[manifest.task]
    preferred = runtime_class(manifest, version.path, settings)
    reference = runtime_class(manifest, version.path, settings.model_copy(update={"providers": [CPU]}))
    checks = []
    try:
        preferred.load()
        reference.load()
        feeds = warmup_feeds(reference)
        rng = np.random.default_rng(seed)
        for key, session in reference.sessions.items():
            if key not in feeds:
                raise RuntimeError(f"graph {key!r} is not run by the warm-up, so it cannot be compared")
            inputs = randomized(feeds[key], rng)
            names = [output.name for output in session.get_outputs()]
            expected = session.run(names, inputs)
            actual = preferred.sessions[key].run(names, inputs)
            providers = preferred.sessions[key].get_providers()
            for name, got, want in zip(names, actual, expected, strict=True):
                diff, ok = compare(np.asarray(got), np.asarray(want), atol, rtol)
                shape = tuple(np.asarray(got).shape)
                row = OutputCheck(manifest.name, manifest.version, key, providers, name, shape, diff, ok)
                checks.append(row)
    finally:
        preferred.close()
        reference.close()
    return checks


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Check every version of the repository; print the table; the exit status sums it up."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.gpu_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, help="model repository (MODELSERVE_MODELS_DIR)")
    parser.add_argument(
        "--providers", nargs="+", metavar="PROVIDER", help="preferred providers (MODELSERVE_PROVIDERS)"
    )
    parser.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance (default 1e-3)")
    parser.add_argument("--rtol", type=float, default=1e-2, help="relative tolerance (default 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random float inputs (default 0)")
    parser.add_argument(
        "--require-gpu", action="store_true", help="exit 3 when any graph gets no GPU provider"
    )
    args = parser.parse_args(argv)
    # the service's warnings (a provider that cannot be created, a session that fell back) among the lines
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout, force=True)
    overrides = {"models_dir": args.models_dir, "providers": args.providers}
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})

    print(f"onnxruntime {ort.__version__} ({ort.get_device()} build)")
    print(f"available providers: {ort.get_available_providers()}")
    print(f"requested providers: {settings.providers}; compared with: [{CPU!r}]")
    sys.stdout.flush()
    unavailable_providers(settings)  # logs, once, each requested provider that cannot be created and why
    print(f"tolerance: |gpu - cpu| <= {args.atol} + {args.rtol} * |cpu|")
    enabled = set(settings.enabled_models)
    versions = [v for v in discover(settings.models_dir) if not enabled or v.name in enabled]
    if not versions:
        print(f"no model versions in {settings.models_dir}")
        return EXIT_MISMATCH
    checks: list[OutputCheck] = []
    failed: list[str] = []
    for version in versions:
        try:
            checks += check_version(version, settings, args.atol, args.rtol, args.seed)
        except Exception as exc:  # a version that cannot be checked is reported, and the others still are
            failed.append(f"{version.name}/{version.version}: {type(exc).__name__}: {exc}")

    header = [
        "model",
        "version",
        "graph",
        "providers (actual)",
        "output",
        "shape",
        "max |gpu - cpu|",
        "result",
    ]
    rows = [header]
    for c in checks:
        shape = "x".join(map(str, c.shape))
        result = "ok" if c.ok else "MISMATCH"
        rows.append(
            [
                c.model,
                str(c.version),
                c.graph,
                ", ".join(c.providers),
                c.output,
                shape,
                f"{c.max_abs_diff:.3g}",
                result,
            ]
        )
    if checks:
        print()
        print(format_table(rows))
    if failed:
        print()
    for line in failed:
        print(f"not checked: {line}")

    graphs = {(c.model, c.version, c.graph): c.providers for c in checks}
    on_cpu_only = sorted(f"{m}/{v}:{g}" for (m, v, g), p in graphs.items() if not uses_gpu(p))
    mismatches = [c for c in checks if not c.ok]
    print()
    print(
        f"{len(checks)} outputs of {len(graphs)} graphs compared: {len(mismatches)} beyond tolerance; "
        f"{len(graphs) - len(on_cpu_only)} graphs run on a GPU provider, {len(on_cpu_only)} on CPU only"
    )
    if on_cpu_only:
        print("no GPU provider (so this compared CPU with CPU) for: " + ", ".join(on_cpu_only))
    if mismatches or failed:
        return EXIT_MISMATCH
    if args.require_gpu and on_cpu_only:
        return EXIT_NO_GPU
    return 0


if __name__ == "__main__":
    sys.exit(main())
