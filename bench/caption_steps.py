"""Where a caption decoder step's time goes: onnxruntime against the step batcher's own bookkeeping
(building the step's inputs, padding, advancing the beam searches), in-process, through the service's
``CaptionBatcher`` with N requests at once. On a GPU the decoder run is short and the bookkeeping is CPU
time between runs, so it bounds captions a second there; this prints both side by side, per step.

    python -m bench.caption_steps --models-dir models --requests-at-once 1,16,32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.load import photo_jpeg
from bench.run import load_runtime, positive_counts
from service.batching import BatchConfig
from service.metrics import Metrics
from service.preprocessing import load_pixels
from service.runtimes import CaptionerRuntime
from service.runtimes.caption_steps import CaptionBatcher


class TimedSession:
    """An onnxruntime session that counts its runs and adds their seconds to ``spent[graph]``."""

    def __init__(
        self, session: ort.InferenceSession, graph: str, spent: dict[str, float], runs: dict[str, int]
    ):
        self.session, self.graph, self.spent, self.runs = session, graph, spent, runs

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.spent[self.graph] += time.perf_counter() - started
            self.runs[self.graph] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def load_captioner(models_dir: Path, name: str) -> CaptionerRuntime:
    runtime = load_runtime(models_dir, name)
    if not isinstance(runtime, CaptionerRuntime):
        raise SystemExit(f"{name} is not an image-captioning model")
    return runtime


def measure(runtime: CaptionerRuntime, at_once: int, rounds: int, beam_size: int) -> dict[str, float]:
    """Caption ``at_once`` copies of a photo together, ``rounds`` times. Per decoder step: milliseconds
    in the decoder run, and outside it and the encoder runs (the worker's bookkeeping)."""
    spent = {"encoder": 0.0, "decoder": 0.0}
    runs = {"encoder": 0, "decoder": 0}
    real = dict(runtime.sessions), {graph: dict(sized) for graph, sized in runtime.sized_sessions.items()}
    for graph, session in real[0].items():
        runtime.sessions[graph] = TimedSession(session, graph, spent, runs)
    for graph, sized in real[1].items():
        for size, session in sized.items():
            runtime.sized_sessions[graph][size] = TimedSession(session, graph, spent, runs)
    image = load_pixels(photo_jpeg(), runtime.settings.max_image_pixels, runtime.image_spec)[None]
    metrics = Metrics().model(runtime.manifest.name, runtime.manifest.version)
    config = BatchConfig(max_size=at_once, max_delay_s=0.0, queue_size=at_once)
    batcher = CaptionBatcher(runtime.manifest.name, runtime, config, metrics)
    try:
        started = time.perf_counter()
        for _ in range(rounds):
            tickets = [batcher.submit(image, runtime.default_max_length(), beam_size) for _ in range(at_once)]
            for ticket in tickets:
                ticket.result(timeout=600)
        wall = time.perf_counter() - started
    finally:
        batcher.close()
        runtime.sessions.update(real[0])
        for graph, sized in real[1].items():
            runtime.sized_sessions[graph].update(sized)
    steps = max(runs["decoder"], 1)
    other = wall - spent["encoder"] - spent["decoder"]
    return {
        "captions_per_s": at_once * rounds / wall,
        "steps": steps / rounds,
        "decoder_ms": 1000 * spent["decoder"] / steps,
        "other_ms": 1000 * other / steps,
        "encoder_ms": 1000 * spent["encoder"] / rounds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default="captioner")
    parser.add_argument("--requests-at-once", default="1,16,32", help="comma-separated request counts")
    parser.add_argument("--rounds", type=int, default=5, help="times each count is captioned")
    parser.add_argument("--beam-size", type=int, default=3)
    args = parser.parse_args(argv)
    counts = positive_counts(parser, "--requests-at-once", args.requests_at_once)
    if args.rounds < 1 or args.beam_size < 1:
        parser.error("--rounds and --beam-size must be positive")
    runtime = load_captioner(args.models_dir, args.model)
    runtime.warmup(sorted({1, *counts}))
    providers = ", ".join(f"{graph}: {names[0]}" for graph, names in sorted(runtime.providers().items()))
    print(f"{args.model} v{runtime.manifest.version} ran on {providers}; beam size {args.beam_size}")
    header = ("at once", 8), ("captions/s", 11), ("steps", 6), ("decoder ms", 11), ("other ms", 9)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'other/decoder':>14} {'encoder ms':>11}")
    for at_once in counts:
        measure(runtime, at_once, 1, args.beam_size)  # the sizes' sessions and arenas, once
        r = measure(runtime, at_once, args.rounds, args.beam_size)
        print(
            f"{at_once:>8} {r['captions_per_s']:>11.1f} {r['steps']:>6.1f} {r['decoder_ms']:>11.2f} "
            f"{r['other_ms']:>9.2f} {r['other_ms'] / r['decoder_ms']:>13.2f}x {r['encoder_ms']:>11.1f}"
        )
    print("per decoder step: decoder = its onnxruntime run; other = the worker's own time (its inputs,")
    print("padding, the beam searches); encoder ms: per round of requests")


if __name__ == "__main__":
    main()
