"""One-epoch smoke runs of every recipe through the CLI, their exports, and evaluate through onnxruntime."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnxruntime as ort  # noqa: E402

from contract.files import sha256_file  # noqa: E402
from training import engine, runs  # noqa: E402
from training.cli import main  # noqa: E402

FAST = ["--epochs", "1", "--workers", "0", "--batch-size", "8"]
COMMON = {
    "format",
    "name",
    "version",
    "task",
    "description",
    "created",
    "files",
    "graphs",
    "metrics",
    "provenance",
}


def _train(args: list[str], out: Path) -> Path:
    assert main([*args, *FAST, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()  # each test trains into its own, empty root
    for name in (
        "config.json",
        "metrics.json",
        "checkpoint.pt",
        "curve-loss.png",
        "curve-acc.png",
        "confusion.png",
    ):
        assert (run_dir / name).is_file(), name
    return run_dir


def _export(run_dir: Path, models: Path, *options: str) -> tuple[Path, dict]:
    assert main(["export", str(run_dir), "--out", str(models), *options]) == 0
    (version_dir,) = models.glob("*/1")
    return version_dir, check_manifest(version_dir)


def check_manifest(version_dir: Path) -> dict:
    """The manifest fields models/README.md requires, and every file's sha256."""
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest.keys() >= COMMON
    assert manifest["format"] == "modelserve.manifest/v1"
    assert manifest["name"] == version_dir.parent.name and manifest["version"] == int(version_dir.name)
    assert manifest["created"].endswith("Z")
    on_disk = {p.name for p in version_dir.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk and "card.md" in on_disk
    assert all(sha256_file(version_dir / f) == h for f, h in manifest["files"].items())
    graph = manifest["graphs"]["model"]
    for tensor in graph["inputs"] + graph["outputs"]:
        assert tensor.keys() == {"name", "dtype", "shape"} and tensor["shape"][0] == -1
    assert graph["outputs"][0]["shape"] == [-1, len(manifest["labels"])] and manifest["output"] == "logits"
    if manifest["task"] == "image-classification":
        assert manifest["image"].keys() == {"color_mode", "resize", "size", "mean", "std", "invert"}
    else:
        assert manifest["text"].keys() == {
            "tokenizer",
            "max_length",
            "pad_id",
            "unk_id",
            "input_ids",
            "lengths",
        }
    assert {"dataset", "seed", "command", "hardware", "training_time_s", "initialisation"} <= manifest[
        "provenance"
    ].keys()
    return manifest


def test_digits_train_export_evaluate(
    mnist_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = _train(["digits", "--data", str(mnist_root), "--augment"], tmp_path / "runs")
    assert runs.load_checkpoint(run_dir)["model_args"]["num_classes"] == 10
    version_dir, manifest = _export(run_dir, tmp_path / "models")
    # the same version again: one line and exit status 2, not a traceback
    capsys.readouterr()
    again = ["export", str(run_dir), "--out", str(tmp_path / "models"), "--version", version_dir.name]
    assert main(again) == 2
    assert capsys.readouterr().err == f"error: {version_dir} already exists; pick another --version\n"
    assert manifest["graphs"]["model"]["inputs"][0]["shape"] == [-1, 1, 28, 28]
    assert main(["evaluate", str(version_dir), "--data", str(mnist_root), "--split", "validation"]) == 2
    assert "MNIST has the splits train and test, not 'validation'" in capsys.readouterr().err
    assert main(["evaluate", str(version_dir), "--data", str(mnist_root), "--split", "test"]) == 0
    manifest = check_manifest(version_dir)
    assert manifest["metrics"]["test"]["samples"] == 20
    assert "validation" not in manifest["metrics"]  # nothing recorded under a split MNIST does not have
    assert np.sum(manifest["provenance"]["evaluation"]["test"]["confusion"]) == 20
    assert "Confusion matrix" in (version_dir / "card.md").read_text()


def test_sentiment_train_export_padding_invariance(text_csv: Path, tmp_path: Path) -> None:
    run_dir = _train(
        ["sentiment", "--data", str(text_csv), "--max-length", "16", "--embed-dim", "8", "--hidden", "8"],
        tmp_path / "runs",
    )
    version_dir, manifest = _export(run_dir, tmp_path / "models")
    assert manifest["text"]["max_length"] == 16 and manifest["labels"] == ["negative", "positive"]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    rows = [tokenizer.encode(t).ids for t in ("Great, wonderful!", "awful<br />boring film", "superb")]
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    alone = [session.run(None, {"input_ids": np.array([r]), "lengths": np.array([len(r)])})[0] for r in rows]
    ids = np.zeros((3, 12), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    batched = session.run(None, {"input_ids": ids, "lengths": np.array([len(r) for r in rows])})[0]
    np.testing.assert_allclose(batched, np.concatenate(alone), atol=1e-5)
    assert main(["evaluate", str(version_dir), "--data", str(text_csv)]) == 0
    assert check_manifest(version_dir)["metrics"]["test"]["samples"] == 16


def test_pretrain_then_finetune_from_checkpoint(image_folder: Path, tmp_path: Path) -> None:
    pre = _train(["pretrain", "--data", str(image_folder), "--image-size", "32"], tmp_path / "pre")
    fine = _train(
        [
            "finetune",
            "--data",
            str(image_folder),
            "--image-size",
            "32",
            "--head-epochs",
            "1",
            "--weights",
            str(pre / "checkpoint.pt"),
        ],
        tmp_path / "fine",
    )
    checkpoint = runs.load_checkpoint(fine)
    assert "project checkpoint" in checkpoint["provenance"]["initialisation"]
    assert len(json.loads((fine / "metrics.json").read_text())["history"]["val_acc"]) == 2
    version_dir, manifest = _export(fine, tmp_path / "models", "--note", "Tiny test run.", "--note", "Two.")
    assert manifest["name"] == "pets-resnet18" and manifest["labels"] == ["cats", "dogs"]
    assert manifest["provenance"]["notes"] == ["Tiny test run.", "Two."]
    assert manifest["image"]["resize"] == 37 and manifest["image"]["size"] == [32, 32]
    assert main(["evaluate", str(version_dir), "--data", str(image_folder), "--split", "validation"]) == 0
    assert check_manifest(version_dir)["metrics"]["validation"]["samples"] == 8
    limits = (version_dir / "card.md").read_text().split("## Known limits")[1]  # re-rendered by evaluate
    assert "- Tiny test run.\n- Two." in limits


def test_flip_average_export_is_mirror_invariant(image_folder: Path, tmp_path: Path) -> None:
    run = _train(
        ["finetune", "--data", str(image_folder), "--image-size", "32", "--head-epochs", "1"],
        tmp_path / "run",
    )
    plain, _ = _export(run, tmp_path / "plain")
    flipped, manifest = _export(run, tmp_path / "flipped", "--flip-average")
    assert "mirror" in manifest["provenance"]["test_time_augmentation"]
    pixels = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    mirrored = pixels[..., ::-1].copy()

    def logits(version_dir: Path, x: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        return session.run(None, {"pixels": x})[0]

    np.testing.assert_allclose(logits(flipped, pixels), logits(flipped, mirrored), atol=1e-5)
    expected = (logits(plain, pixels) + logits(plain, mirrored)) / 2
    np.testing.assert_allclose(logits(flipped, pixels), expected, atol=1e-5)


def test_missing_data_is_a_clear_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["digits", "--data", str(tmp_path), "--out", str(tmp_path / "runs")]) == 2
    assert "MNIST not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["digits", "--data", "x", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["digits", "--data", "x", "--batch-size", "-5"], "argument --batch-size: must be at least 1"),
        (["digits", "--data", "x", "--lr", "-1"], "argument --lr: must be above 0, got -1"),
        (["digits", "--data", "x", "--dropout", "1.5"], "argument --dropout: must be at least 0 and below 1"),
        (["export", "run", "--version", "-1"], "argument --version: must be at least 1, got -1"),
    ],
)
def test_bad_numbers_are_refused_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untrained run written for --epochs 0 (and exported as the newest version) or a traceback from
    deep inside torch was what these got; argparse now refuses them with its one-line message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_device_that_is_not_one_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["digits", "--data", str(tmp_path), "--device", "gpu", "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --device gpu: expected auto, cpu, cuda or cuda:N"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is there")
def test_cuda_asked_for_without_a_gpu_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["digits", "--data", str(tmp_path), "--device", "cuda", "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    message = "error: --device cuda: torch sees no CUDA GPU here; use --device cpu or auto"
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "runs").exists()  # no run directory left behind


def test_a_missing_init_checkpoint_names_init(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.pt"
    argv = [
        "pretrain",
        "--data",
        str(image_folder),
        "--image-size",
        "32",
        "--init",
        str(missing),
        *FAST,
        "--out",
        str(tmp_path / "runs"),
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: --init {missing}: no such file\n"  # not --weights


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),  # no DNS: no internet
        ConnectionResetError(104, "Connection reset by peer"),
        http.client.IncompleteRead(b"partial", 1000),  # the connection dropped during the download
    ],
    ids=["no-network", "reset", "incomplete"],
)
def test_imagenet_weights_without_internet_are_one_line(
    error: Exception,
    image_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # nothing cached: torch downloads

    def offline(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    argv = [
        "finetune",
        "--data",
        str(image_folder),
        "--image-size",
        "32",
        "--weights",
        "imagenet",
        *FAST,
        "--out",
        str(tmp_path / "runs"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "error: --weights imagenet: downloading torchvision's resnet18 ImageNet weights from https://"
    )
    assert "need a download from the internet" in err
    assert "pass --weights PATH to a local state dict or checkpoint" in err
    assert "leave out --weights for random initialisation" in err


def test_a_run_that_fails_before_any_output_leaves_no_run_directory(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "runs"
    assert main(["digits", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2  # bad data
    assert list(out.iterdir()) == []

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "train_one_epoch", crash)  # an error in the first epoch
    with pytest.raises(RuntimeError, match="boom"):
        main(["digits", "--data", str(mnist_root), *FAST, "--out", str(out)])
    assert list(out.iterdir()) == []


def test_a_failed_run_that_wrote_outputs_is_kept(
    text_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "train_one_epoch", crash)
    out = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="boom"):  # sentiment writes tokenizer.json before its epochs
        main(["sentiment", "--data", str(text_csv), *FAST, "--out", str(out)])
    (run_dir,) = out.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "tokenizer.json"]


def test_options_are_never_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    """``--epoch 1`` is an error, not ``--epochs 1`` silently."""
    from training.cli import get_args_parser

    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["digits", "--data", "data", "--epoch", "1"])
    assert "unrecognized arguments: --epoch 1" in capsys.readouterr().err
