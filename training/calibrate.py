"""``calibrate``: temperature scaling (Guo et al. 2017) of an exported classifier, as a new version.

One scalar T divides the logits; T is fitted by minimising the negative log-likelihood on a split the
model was not trained on, so the predicted probabilities match how often the model is right. The argmax,
and so accuracy, is unchanged. The new version's graph is the old one with a ``Div`` by T appended
(edited with ``onnx``: no torch, no retraining), written as the next version of the same model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from contract.outputs import softmax
from training.version import UnsuitableVersion, read_manifest, write_successor

ECE_BINS = 15


def calibration_bins(
    probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """Per non-empty bin of ``bins`` equal-width bins of the top probability: (mean confidence, accuracy,
    samples)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        (float(confidence[in_bin].mean()), float(correct[in_bin].mean()), int(in_bin.sum()))
        for in_bin in (index == b for b in range(bins))
        if in_bin.any()
    ]


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over ``bins`` equal-width bins of the top probability, the gap between mean confidence and
    accuracy, weighted by the share of samples in the bin."""
    return sum(n / len(targets) * abs(accuracy - confidence)
               for confidence, accuracy, n in calibration_bins(probabilities, targets, bins))  # fmt: skip


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` under softmax(logits / temperature)."""
    scaled = logits.astype(np.float64) / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_z - shifted[np.arange(len(targets)), targets]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T in [0.05, 20] minimising :func:`nll` (golden-section search on log T; the NLL is convex in
    1/T, so unimodal here)."""
    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, targets, math.exp(a)), nll(logits, targets, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, targets, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, targets, math.exp(b))
    return math.exp((lo + hi) / 2)


def plot_reliability(path: Path, probabilities: np.ndarray, targets: np.ndarray, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, beside perfect calibration's diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres, accuracy, counts = zip(*calibration_bins(probabilities, targets), strict=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(centres, accuracy, "o-", label="model")
    for x, y, n in zip(centres, accuracy, counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    ece = expected_calibration_error(probabilities, targets)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", title=f"{title}\nECE {ece:.4f}")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tempered_graph(source: Path, output: str, temperature: float) -> bytes:
    """``source``'s ONNX graph with its ``output`` divided by ``temperature`` (same output name)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    raw = f"{output}_before_temperature"
    for node in graph.node:
        node.output[:] = [raw if name == output else name for name in node.output]
    constant = numpy_helper.from_array(np.array(temperature, dtype=np.float32), name="temperature")
    graph.initializer.append(constant)
    graph.node.append(helper.make_node("Div", [raw, "temperature"], [output], name="temperature_scaling"))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def calibrate_version(version_dir: Path, data: Path, split: str, out_root: Path | None = None) -> Path:
    """Fit T on ``data``/``split`` through onnxruntime and write the tempered graph as the next version of
    the same model (in ``out_root``, default the version's own repository); return its directory."""
    from training.evaluate import predict

    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    if (
        manifest.get("task") not in ("sentiment", "image-classification")
        or manifest.get("output") != "logits"
    ):
        raise UnsuitableVersion(f"{version_dir}: calibrate needs a classifier whose graph outputs logits")
    logits, targets = predict(version_dir, manifest, data, split)
    temperature = fit_temperature(logits, targets)
    before = {"nll": nll(logits, targets), "ece": expected_calibration_error(softmax(logits), targets)}
    after = {
        "nll": nll(logits, targets, temperature),
        "ece": expected_calibration_error(softmax(logits / temperature), targets),
    }
    print(
        f"{manifest['name']} v{manifest['version']} on {split} ({len(targets)} samples): "
        f"T = {temperature:.4f}; NLL {before['nll']:.4f} -> {after['nll']:.4f}; "
        f"ECE {before['ece']:.4f} -> {after['ece']:.4f} (on the fitting split itself)"
    )
    graph = manifest["graphs"]["model"]
    calibration = {
        "method": "temperature scaling (Guo et al. 2017): logits / T, T fitted by NLL",
        "temperature": round(temperature, 6),
        "from_version": manifest["version"],
        "fitted_on": f"{Path(data).resolve()} {split} ({len(targets)} samples)",
        "before": before,
        "after": after,
        "command": f"python -m training calibrate {version_dir} --data {data} --split '{split}'",
    }
    new_dir = write_successor(
        version_dir,
        manifest,
        tempered_graph(version_dir / graph["file"], graph["outputs"][0]["name"], temperature),
        ("calibration", calibration),
        f"{manifest.get('description', '')} Calibrated: logits / {temperature:.3f}.".strip(),
        out_root,
    )
    print(f"wrote {new_dir}")
    return new_dir
