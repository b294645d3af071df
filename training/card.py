"""The model card (card.md), rendered from the manifest so export and evaluate write the same document."""

from __future__ import annotations

import re
from pathlib import Path

LIMITS = {
    "image-classification": [
        "Predicts only the listed labels; images of anything else still get one of them, often confidently.",
        "Accuracy is measured on data like the training set; other cameras, crops or styles can score lower.",
    ],
    "sentiment": [
        "English movie reviews; other domains, languages, sarcasm and mixed opinions are less reliable.",
        "Reads only the first `max_length` words; words outside the vocabulary count as unknown.",
    ],
}
DIGIT_LIMIT = (
    "Expects one centred light digit on a dark background (MNIST style); dark-on-light "
    "photos need inverting first."
)


def split_stem(split: str) -> str:
    """The file-name part of a split's plots: ``test[5000:]`` -> ``test_5000`` (confusion-test_5000.png)."""
    return re.sub(r"[^\w-]+", "_", split).strip("_")


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _confusion(matrix: list[list[int]], labels: list[str]) -> str:
    rows = [[f"**{label}**", *(str(v) for v in row)] for label, row in zip(labels, matrix, strict=True)]
    return _table(rows, ["true \\ predicted", *labels])


def render(manifest: dict, version_dir: Path) -> str:
    """Markdown model card for the version in ``version_dir`` described by ``manifest``."""
    prov = manifest.get("provenance", {})
    data = prov.get("dataset", {})
    if not isinstance(data, dict):  # a version written by hand may name its dataset in one string
        data = {"name": data}
    labels = manifest.get("labels", [])
    out = [
        f"# {manifest['name']} v{manifest['version']}",
        "",
        manifest.get("description", ""),
        "",
        "## Data",
        "",
        f"- dataset: `{data.get('name')}` at `{data.get('path')}`",
        f"- licence: {data.get('licence')}",
        f"- labels: {', '.join(labels)}"
        if len(labels) <= 20
        else f"- labels: {len(labels):,} classes, listed in `labels.txt` ({', '.join(labels[:3])}, ...)",
        "",
        "## Training",
        "",
        f"- initialisation: {prov.get('initialisation')}",
        f"- seed: {prov.get('seed')}",
        f"- training time: {prov.get('training_time_s')} s on {prov.get('hardware')}",
        f"- git commit: `{prov.get('git_commit')}`",
        "",
        "Reproduce:",
        "",
        "```",
        prov.get("command", ""),
        prov.get("export_command", ""),
        "```",
        "",
    ]
    training = prov.get("training_metrics", {})
    if training:
        out += [
            "Validation metrics at the end of training (PyTorch):",
            "",
            _table([[k, f"{v:.4f}"] for k, v in training.items()], ["metric", "value"]),
            "",
        ]
    calibration = prov.get("calibration")
    if calibration:
        before, after = calibration["before"], calibration["after"]
        out += [
            "## Calibration",
            "",
            f"- {calibration['method']}: T = {calibration['temperature']}, applied to "
            f"v{calibration['from_version']}'s graph (same weights, same argmax)",
            f"- fitted on {calibration['fitted_on']}: NLL {before['nll']:.4f} -> {after['nll']:.4f}, "
            f"ECE {before['ece']:.4f} -> {after['ece']:.4f}",
            f"- command: `{calibration['command']}`",
            "",
        ]
    ngrams = prov.get("ngrams")
    if ngrams:
        mixture, fit = ngrams["mixture"], ngrams["fit_split_accuracy"]
        out += [
            "## Bag of n-grams",
            "",
            f"- {ngrams['method']}: {ngrams['buckets']:,} bigram buckets, C = {ngrams['c']}, reading the "
            f"first {ngrams['max_length']} words; trained on {ngrams['trained_on']}",
            f"- mixed with v{ngrams['from_version']}'s margin (which reads the first "
            f"{ngrams['lstm_window']} words) by a logistic regression fitted on "
            f"{ngrams['mixture_fitted_on']}: margin = {mixture['lstm']:.4f} x model "
            f"+ {mixture['ngrams']:.4f} x bag {mixture['intercept']:+.4f}",
            f"- accuracy on that split: model {fit['lstm']:.4f}, bag {fit['ngrams']:.4f}, "
            f"mixed {fit['combined']:.4f}",
            f"- command: `{ngrams['command']}`",
            "",
        ]
    superseded = prov.get("superseded_version_metrics")
    if superseded:
        rows = [
            [split, ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())]
            for split, m in superseded.items()
        ]
        out += [
            "Metrics of the versions this one replaces (removed from the repository):",
            "",
            _table(rows, ["split", "metrics"]),
            "",
        ]
    out += ["## Metrics (ONNX model, `python -m training evaluate`)", ""]
    if not manifest.get("metrics"):
        out += ["Not evaluated yet.", ""]
    for split, metrics in manifest.get("metrics", {}).items():
        evaluation = prov.get("evaluation", {}).get(split, {})
        out += [
            f"### {split} (`{evaluation.get('data')}`)",
            "",
            _table(
                [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in metrics.items()],
                ["metric", "value"],
            ),
            "",
        ]
        if "confusion" in evaluation:
            out += [
                "Confusion matrix (rows: true, columns: predicted):",
                "",
                _confusion(evaluation["confusion"], labels),
                "",
            ]
            stem = split_stem(split)
            if (version_dir / f"confusion-{stem}.png").is_file():
                out += [f"![confusion matrix, {split}](confusion-{stem}.png)", ""]
            if (version_dir / f"reliability-{stem}.png").is_file():
                out += [f"![reliability diagram, {split}](reliability-{stem}.png)", ""]
    limits = list(LIMITS.get(str(manifest.get("task")), []))
    if manifest.get("image", {}).get("color_mode") == "L":
        limits.append(DIGIT_LIMIT)
    limits += prov.get("notes", [])
    out += ["## Known limits", "", *(f"- {line}" for line in limits), ""]
    return "\n".join(out)
