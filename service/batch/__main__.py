"""``python -m service.batch INPUT --output OUT``: predict a folder of images or a table of texts with the
service's runtimes, in process (no HTTP), one row per input, resumable.

  python -m service.batch photos/ --output photos.parquet
  python -m service.batch reviews.csv --text-column review --id-column id --output reviews.jsonl
  python -m service.batch photos/ --model captioner --beam-size 3 --output captions.parquet

Rerunning the same command after a crash or Ctrl-C skips the inputs already written. Exit status: 0 when
every input has its row (answered or with its error), 2 for a mistake in the command (found before any
work), 1 when the engine failed and 130 when interrupted (rerun to resume both)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from ..settings import Settings
from . import embedded
from .inputs import EngineFailed, InputError, Item, image_items, is_text_input, text_items
from .job import Job, choose_version
from .outputs import Row, open_sink
from .tasks import BatchTask, Options
from .writing import Summary, write_all

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", help="a folder (recursive) or glob of images, or a .txt, .csv, .jsonl or .parquet of texts"
    )
    p.add_argument(
        "--output", "-o", type=Path, required=True, help="OUT.parquet (a directory of parts) or OUT.jsonl"
    )
    p.add_argument("--models-dir", type=Path, help="model repository (MODELSERVE_MODELS_DIR, default models)")
    p.add_argument(
        "--model",
        help="name or name:version; default: the service's default image classifier for images, its "
        "default sentiment model for texts",
    )
    p.add_argument(
        "--text-column", help="the column of texts in a CSV, JSONL or Parquet input (default text)"
    )
    p.add_argument("--id-column", help="a column of unique ids (default: the row number, from 0)")
    p.add_argument("--batch-size", type=int, default=32, help="items per inference run (default 32)")
    p.add_argument("--top-k", type=int, default=5, help="labels per image, classification (default 5)")
    p.add_argument("--beam-size", type=int, default=3, help="beams, captioning; 1 is greedy (default 3)")
    p.add_argument("--max-length", type=int, help="most tokens per caption (default: the model's)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="rows per durable write (default 1024)")
    p.add_argument(
        "--chunk-seconds", type=float, default=30.0, help="longest time between durable writes (default 30)"
    )
    p.add_argument("--engine", choices=["embedded", "ray"], default="embedded", help="default embedded")
    p.add_argument("--address", help="Ray cluster to join (ray engine; default: a local Ray)")
    p.add_argument(
        "--actors",
        type=int,
        help="model actors (ray engine; default: one per GPU when the cluster has GPUs, else one per CPU)",
    )
    p.add_argument("--decode-threads", type=int, help="image decoding threads (embedded; default: cores - 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the summary still prints)")
    return p


def check_args(args: argparse.Namespace, settings: Settings) -> None:
    """Bounds of the numeric options (the service's own limits where it has them)."""
    bounds = {
        "batch_size": (1, 4096),
        "top_k": (1, settings.max_top_k),
        "beam_size": (1, settings.max_beam_size),
        "max_length": (1, settings.max_caption_length),
        "chunk_rows": (1, 10_000_000),
        "actors": (1, 4096),
        "decode_threads": (1, 256),
    }
    for name, (low, high) in bounds.items():
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise InputError(f"--{name.replace('_', '-')} must be between {low} and {high}, got {value}")
    if args.chunk_seconds <= 0:
        raise InputError(f"--chunk-seconds must be positive, got {args.chunk_seconds:g}")
    if args.engine != "ray" and (args.address or args.actors):
        raise InputError("--address and --actors are options of --engine ray")


def plan(args: argparse.Namespace) -> tuple[Job, list[Item]]:
    """Everything a run needs, checked before any work: settings, inputs, model."""
    try:
        settings = Settings(**({"models_dir": args.models_dir} if args.models_dir else {}))
    except ValidationError as exc:
        raise InputError(f"settings: {exc.errors()[0]['msg']}") from exc
    check_args(args, settings)
    if not settings.models_dir.is_dir():
        raise InputError(f"the model repository {settings.models_dir} does not exist")
    texts = is_text_input(args.input)
    if texts:
        items = text_items(args.input, args.text_column, args.id_column)
    elif args.text_column or args.id_column:
        raise InputError("--text-column and --id-column are for a table of texts, not images")
    else:
        items = image_items(args.input)
    requested = args.model or (
        settings.default_sentiment_model if texts else settings.default_image_classifier
    )
    directory, manifest = choose_version(settings.models_dir, requested)
    options = Options(top_k=args.top_k, beam_size=args.beam_size, max_length=args.max_length)
    # warm up at the batch sizes this run uses, not the service's
    settings = settings.model_copy(update={"batch_max_size": args.batch_size})
    job = Job(directory, manifest, settings, options)
    wanted = "texts" if texts else "images"
    if job.task.inputs != wanted:
        raise InputError(
            f"model {manifest.name} ({manifest.task}) reads {job.task.inputs}, and {args.input} holds "
            f"{wanted}"
        )
    return job, items


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        job, items = plan(args)
        if args.engine == "ray":
            from . import ray_engine  # ray is an optional extra

            ray_engine.connect(
                args.address
            )  # Ray missing, or a cluster out of reach: exit 2, nothing written
        sink, written = open_sink(args.output, job.task.schema())
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name, version = job.manifest.name, job.manifest.version
    summary = Summary()
    task: BatchTask | None = None
    try:
        others = written.models - {(name, version)}
        if others:
            held = ", ".join(f"{n}:{v}" for n, v in sorted(others))
            raise InputError(
                f"{args.output} holds rows of {held}, not {name}:{version}: resume with that model, or "
                "write to another output"
            )
        todo = [item for item in items if item.id not in written.ids]
        summary.skipped = len(items) - len(todo)
        if args.engine == "embedded" and todo:
            task = job.load()  # before the progress bar: a model that cannot load is exit 2, no work done
        print(
            f"{name}:{version} ({job.manifest.task}) over {len(items)} {job.task.inputs}, "
            f"{len(todo)} to do, engine {args.engine}",
            file=sys.stderr,
        )
        summary.restart()
        batches = engine_batches(args, job, task, todo)
        write_all(
            batches, sink, summary, len(todo), args.chunk_rows, args.chunk_seconds, not args.no_progress
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EngineFailed as exc:
        print(f"error: {exc}; {summary.line(str(args.output))}; rerun to resume", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            f"interrupted: {summary.line(str(args.output))}; rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        sink.close()
        if task is not None:
            task.runtime.close()
    print(summary.line(str(args.output)), file=sys.stderr)
    return 0


def engine_batches(
    args: argparse.Namespace, job: Job, task: BatchTask | None, todo: list[Item]
) -> Iterator[list[Row]]:
    """The rows of ``todo`` from the engine the command asked for."""
    if not todo:
        return iter(())
    if args.engine == "ray":
        from . import ray_engine  # ray is an optional extra

        return ray_engine.predictions(job, todo, args.batch_size, args.actors, args.address)
    assert task is not None
    return embedded.predictions(task, todo, args.batch_size, args.decode_threads)


if __name__ == "__main__":
    sys.exit(main())
