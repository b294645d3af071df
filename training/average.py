"""Weight averaging of runs of one network ("model soups", Wortsman et al. 2022).

Two runs of the same network that share their start (a run and its fine-tuning, e.g. a captioner and its
self-critical continuation) usually lie in one basin of the loss, where the average of their weights is a
model of its own, often better than either, at the cost of one. The runs must be of the same kind and
configuration; the average is written as a new run whose checkpoint exports like its members'.
"""

from __future__ import annotations

from pathlib import Path

import torch

from training import runs
from training.provenance import command_line, git_commit
from training.version import UnsuitableVersion


class UnsuitableRuns(UnsuitableVersion):
    """The runs cannot be averaged (different kinds, configurations or tensors, or bad weights)."""


def average_state(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of floating-point tensors (weights summing to 1); other tensors (counters) are
    the first state's."""
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = sum(w * state[key].double() for w, state in zip(weights, states, strict=True))
            averaged[key] = torch.as_tensor(total).to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged


def average_runs(members: list[Path], weights: list[float] | None, out: Path, name: str) -> Path:
    """Write ``out/<name>-<stamp>/checkpoint.pt`` with the (weighted) mean of the weights of ``members``,
    two or more (the command line refuses fewer before torch is imported)."""
    weights = weights or [1.0] * len(members)
    if len(weights) != len(members) or any(w <= 0 for w in weights):
        raise UnsuitableRuns(f"average: {len(members)} runs need as many positive --weights, got {weights}")
    weights = [w / sum(weights) for w in weights]
    checkpoints = [runs.load_checkpoint(member) for member in members]
    first = checkpoints[0]
    for member, checkpoint in zip(members[1:], checkpoints[1:], strict=True):
        if (checkpoint["kind"], checkpoint["model_args"]) != (first["kind"], first["model_args"]):
            raise UnsuitableRuns(
                f"average: {member} is a {checkpoint['kind']} with {checkpoint['model_args']}, "
                f"{members[0]} a {first['kind']} with {first['model_args']}: only one network's runs average"
            )
        if checkpoint["state_dict"].keys() != first["state_dict"].keys():
            raise UnsuitableRuns(f"average: {member} and {members[0]} hold different tensors")
    state = average_state([c["state_dict"] for c in checkpoints], weights)
    # members that share their start share its time, which the longest member's (a fine-tuning run's
    # counts its start's) already holds
    longest = max(checkpoints, key=lambda c: float(c.get("training_time_s") or 0.0))
    provenance = first.get("provenance", {})
    run_dir = runs.make_run_dir(out, name)
    config = {"members": [str(m) for m in members], "weights": weights, "command": command_line()}
    runs.save_config(run_dir, config)
    extra = {
        **{k: v for k, v in first.items() if k not in ("kind", "model_args", "state_dict", "provenance")},
        "metrics": {},  # the average's own are measured by `evaluate` once exported
        "samples": [],
        "training_time_s": longest.get("training_time_s"),
        "epoch_seconds": longest.get("epoch_seconds", []),
        "provenance": {
            **{
                k: provenance[k]
                for k in ("dataset", "initialisation", "encoder", "hardware")
                if k in provenance
            },
            "recipe": "average",
            "command": command_line(),
            "git_commit": git_commit(),
            "members": [
                {"run": str(runs.find_checkpoint(m)), "weight": w, "provenance": c.get("provenance", {})}
                for m, w, c in zip(members, weights, checkpoints, strict=True)
            ],
        },
    }
    runs.save_checkpoint(
        run_dir / runs.CHECKPOINT_NAME,
        kind=first["kind"],
        model=state,
        model_args=first["model_args"],
        extra=extra,
    )
    print(f"averaged {len(members)} runs (weights {[round(w, 4) for w in weights]}) into {run_dir}")
    return run_dir
