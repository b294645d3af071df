"""Shared training loop for the classifiers: setup, epochs with progress bars, and the run's outputs (their
command-line options are in :mod:`training.options`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from training import runs

Batch = tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]


@contextlib.contextmanager
def setup(args: argparse.Namespace) -> Iterator[tuple[torch.device, Path]]:
    """Seed, pick the device and threads, create the run directory and save the resolved config; the block
    (``with setup(args) as (device, run_dir)``) trains into it, and when it fails before writing anything
    but the config, the run directory is removed (``runs.removed_on_early_failure``)."""
    runs.seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runs.pick_device(args.device)
    run_dir = runs.make_run_dir(args.out, args.name)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    runs.save_config(run_dir, {**config, "command": " ".join(sys.argv), "device_resolved": str(device)})
    with runs.removed_on_early_failure(run_dir):
        yield device, run_dir


def progress(iterable, desc: str, total: int | None = None) -> tqdm:
    """A tqdm bar that stays readable (and small) when stderr is a log file."""
    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        mininterval=0.2 if interactive else 30.0,
        dynamic_ncols=interactive,
        ascii=not interactive,
        leave=True,
    )


def _forward(
    model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...], device: torch.device
) -> torch.Tensor:
    if isinstance(inputs, tuple | list):
        return model(*(x.to(device) for x in inputs))
    return model(inputs.to(device))


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    device: torch.device,
    epoch: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_grad: float = 0.0,
) -> dict[str, float]:
    """One pass over ``loader``; the scheduler (if any) steps per batch. Returns mean loss and accuracy."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = progress(loader, f"epoch {epoch} train")
    for inputs, targets in bar:
        targets = targets.to(device)
        logits = _forward(model, inputs, device)
        loss = criterion(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.item() * len(targets)
        correct += (logits.argmax(1) == targets).sum().item()
        seen += len(targets)
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}",
            acc=f"{correct / seen:.4f}",
            lr=f"{optimizer.param_groups[0]['lr']:.2g}",
            refresh=False,
        )
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1)}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    criterion: nn.Module,
    loader: DataLoader,
    device: torch.device,
    num_classes: int,
    desc: str = "val",
) -> tuple[dict[str, float], np.ndarray]:
    """Mean loss, accuracy and the confusion matrix (rows: true, columns: predicted) over ``loader``."""
    model.eval()
    total_loss, seen = 0.0, 0
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    bar = progress(loader, desc)
    for inputs, targets in bar:
        targets = targets.to(device)
        logits = _forward(model, inputs, device)
        total_loss += criterion(logits, targets).item() * len(targets)
        seen += len(targets)
        np.add.at(confusion, (targets.cpu().numpy(), logits.argmax(1).cpu().numpy()), 1)
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}", acc=f"{np.trace(confusion) / seen:.4f}", refresh=False
        )
    return {"loss": total_loss / max(seen, 1), "acc": float(np.trace(confusion) / max(seen, 1))}, confusion


def run_epochs(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loaders: tuple[DataLoader, DataLoader],
    device: torch.device,
    epochs: int,
    history: dict[str, list[float]],
    num_classes: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_epoch: Callable[[int], None] | None = None,
    clip_grad: float = 0.0,
) -> np.ndarray:
    """Train and validate for ``epochs``, appending to ``history``; return the last confusion matrix."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    start = len(history.get("train_loss", []))
    for epoch in range(start + 1, start + epochs + 1):
        if on_epoch is not None:
            on_epoch(epoch)
        train = train_one_epoch(model, criterion, optimizer, loaders[0], device, epoch, scheduler, clip_grad)
        val, confusion = evaluate(model, criterion, loaders[1], device, num_classes, f"epoch {epoch} val")
        for split, values in (("train", train), ("val", val)):
            for key, value in values.items():
                history.setdefault(f"{split}_{key}", []).append(value)
        print(
            f"epoch {epoch}: train loss {train['loss']:.4f} acc {train['acc']:.4f} | "
            f"val loss {val['loss']:.4f} acc {val['acc']:.4f}",
            flush=True,
        )
    return confusion


def finish_run(
    run_dir: Path,
    *,
    kind: str,
    model: nn.Module,
    model_args: dict,
    labels: list[str],
    history: dict[str, list[float]],
    confusion: np.ndarray,
    started: float,
    extra: dict,
) -> dict:
    """Write checkpoint, metrics.json, curves and confusion matrix; return the metrics."""
    metrics = {
        "val": {k.removeprefix("val_"): v[-1] for k, v in history.items() if k.startswith("val_")},
        "train": {k.removeprefix("train_"): v[-1] for k, v in history.items() if k.startswith("train_")},
        "history": history,
        "confusion": confusion.tolist(),
        "labels": labels,
        "training_time_s": round(time.time() - started, 1),
    }
    runs.save_metrics(run_dir, metrics)
    runs.plot_curves(run_dir, history)
    runs.plot_confusion(run_dir / "confusion.png", confusion, labels)
    runs.save_checkpoint(
        run_dir / runs.CHECKPOINT_NAME,
        kind=kind,
        model=model,
        model_args=model_args,
        extra={
            "labels": labels,
            "metrics": {"val": metrics["val"]},
            "training_time_s": metrics["training_time_s"],
            **extra,
        },
    )
    print(f"run written to {run_dir} (val acc {metrics['val'].get('acc', float('nan')):.4f})", flush=True)
    return metrics


def make_loaders(
    train_set, val_set, args: argparse.Namespace, collate_fn: Callable | None = None
) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader (dropping a last partial batch when there are several) and val loader."""
    common = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "collate_fn": collate_fn,
        "persistent_workers": args.workers > 0,
    }
    generator = torch.Generator().manual_seed(args.seed)
    train = DataLoader(
        train_set, shuffle=True, drop_last=len(train_set) > args.batch_size, generator=generator, **common
    )
    return train, DataLoader(val_set, shuffle=False, **common)


def one_cycle(
    optimizer: torch.optim.Optimizer, max_lr: float | list[float], total_steps: int, pct_start: float = 0.25
) -> torch.optim.lr_scheduler.OneCycleLR:
    """One-cycle schedule stepped per batch; the warm-up keeps at least two steps and the schedule at
    least four so tiny runs work (a run that steps fewer times than scheduled just stops early)."""
    total_steps = max(total_steps, 4)
    pct = min(0.5, max(pct_start, 2 / total_steps))
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct
    )
