"""``python -m service.gpu_check`` on the tiny models: the providers each graph really gets, the difference
of every output from CPU's, and an exit status that fails on a mismatch, a broken version, or (when asked
for) a graph without a GPU provider. On a machine without a GPU both sides run on CPU."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from contract.files import file_hashes
from contract.manifest import write_manifest
from service.gpu_check import EXIT_MISMATCH, EXIT_NO_GPU, compare, main
from service.providers import create_session
from service.settings import Settings
from tests.model_factory import make_classifier

GRAPH_OUTPUTS = {
    ("tiny-classifier", "model", "logits"),
    ("tiny-sentiment", "model", "logits"),
    *(("tiny-captioner", "encoder", name) for name in ("features", "h0", "c0")),
    *(("tiny-captioner", "decoder", name) for name in ("log_probs", "h_out", "c_out", "alpha")),
}


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[list[str]]]:
    """Exit status, printed text, and the table's rows (cells split on runs of 2+ spaces)."""
    status = main(list(args))
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = []
    if any(line.startswith("-----") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
        for line in lines[start:]:
            if not line:
                break
            rows.append(re.split(r"\s{2,}", line))
    return status, out, rows


def test_every_graph_output_is_compared_on_the_providers_it_really_gets(
    tiny_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, rows = run_check(capsys, "--models-dir", str(tiny_repo))
    assert status == 0, out
    assert {(row[0], row[2], row[4]) for row in rows} == GRAPH_OUTPUTS
    settings = Settings(models_dir=tiny_repo)
    for model, version, graph, providers, *_, result in rows:
        manifest = json.loads((tiny_repo / model / version / "manifest.json").read_text())
        session = create_session(tiny_repo / model / version / manifest["graphs"][graph]["file"], settings)
        assert providers == ", ".join(session.get_providers())
        assert result == "ok"
    assert "9 outputs of 4 graphs compared: 0 beyond tolerance" in out


def test_require_gpu_fails_when_a_graph_runs_on_cpu_only(
    tiny_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--models-dir", str(tiny_repo), "--providers", "CPUExecutionProvider")
    status, out, _ = run_check(capsys, *args, "--require-gpu")
    assert status == EXIT_NO_GPU
    assert "0 graphs run on a GPU provider, 4 on CPU only" in out
    assert run_check(capsys, *args)[0] == 0  # without the flag, CPU only is reported, not failed


def add_noise(version_dir: Path) -> None:
    """Make a classifier version's logits random (RandomNormalLike), so two sessions disagree."""
    model = onnx.load(version_dir / "model.onnx")
    producer = next(node for node in model.graph.node if "logits" in node.output)
    producer.output[0] = "clean"
    model.graph.node.extend(
        [
            helper.make_node("RandomNormalLike", ["clean"], ["noise"]),
            helper.make_node("Add", ["clean", "noise"], ["logits"]),
        ]
    )
    onnx.save(model, version_dir / "model.onnx")
    manifest = json.loads((version_dir / "manifest.json").read_text())
    write_manifest(version_dir, {**manifest, "files": file_hashes(version_dir)})


def test_outputs_beyond_tolerance_fail(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_noise(make_classifier(repo, name="noisy-classifier"))
    status, _, rows = run_check(capsys, "--models-dir", str(repo))
    assert status == EXIT_MISMATCH
    assert [row[-1] for row in rows if row[0] == "noisy-classifier"] == ["MISMATCH"]
    assert all(row[-1] == "ok" for row in rows if row[0] != "noisy-classifier")


def test_a_version_that_does_not_load_is_reported_and_fails(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "tiny-sentiment" / "1" / "model.onnx").write_bytes(b"not a graph")
    status, out, rows = run_check(capsys, "--models-dir", str(repo))
    assert status == EXIT_MISMATCH
    assert "not checked: tiny-sentiment/1: RuntimeLoadError: model.onnx does not match its sha256" in out
    assert {row[0] for row in rows} == {"tiny-classifier", "tiny-captioner"}


def test_an_empty_repository_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_check(capsys, "--models-dir", str(tmp_path))
    assert status == EXIT_MISMATCH and f"no model versions in {tmp_path}" in out


def test_compare() -> None:
    expected = np.array([1.0, -2.0, 100.0], dtype=np.float32)
    shifted = expected + np.float32(5e-4)
    assert compare(shifted, expected, atol=1e-3, rtol=0) == pytest.approx((5e-4, True), rel=0.05)
    assert compare(expected + np.float32([0, 0, 0.5]), expected, atol=1e-3, rtol=1e-2)[1]  # 0.5 <= 1.001
    assert compare(expected + np.float32([0, 0, 2.0]), expected, atol=1e-3, rtol=1e-2) == (2.0, False)
    assert compare(expected[:2], expected, atol=1, rtol=1) == (float("inf"), False)
    nan = np.array([np.nan, 1.0])
    assert compare(nan, nan, atol=0, rtol=0) == (0.0, True)
    assert not compare(nan, np.array([0.0, 1.0]), atol=0, rtol=0)[1]
