"""Training and service compute the same function: each task trained for an epoch, exported by
``python -m training export``, loaded by the service's own repository code (``load_version``), and
answering on the same raw inputs (encoded image files, texts) what the PyTorch model answers with the
training side's preprocessing (torchvision's eval transform, training's tokenizer encoding). A change to
either side's preprocessing alone breaks these."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from contract.versions import VersionDir  # noqa: E402
from service.preprocessing import load_pixels  # noqa: E402
from service.repository import load_version, read_manifest  # noqa: E402
from service.runtimes import ClassifierRuntime, Runtime, SentimentRuntime  # noqa: E402
from service.settings import Settings  # noqa: E402
from training import runs  # noqa: E402
from training.caption.evaluate import preset_from_manifest  # noqa: E402
from training.cli import main  # noqa: E402
from training.data import text as text_data  # noqa: E402
from training.export import build_model  # noqa: E402

FAST = ["--epochs", "1", "--workers", "0", "--batch-size", "8"]


def train_and_export(args: list[str], tmp_path: Path) -> tuple[dict, Path]:
    """A one-epoch run of ``args`` and its export: (the checkpoint, the version directory)."""
    assert main([*args, *FAST, "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "models")]) == 0
    (version_dir,) = (tmp_path / "models").glob("*/1")
    return runs.load_checkpoint(run_dir), version_dir


def served(version_dir: Path) -> Runtime:
    """The version as the service loads it (checksums, sessions, warm-up), on CPU."""
    source = VersionDir(version_dir.parent.name, int(version_dir.name), version_dir)
    settings = Settings(models_dir=version_dir.parent.parent, providers=["CPUExecutionProvider"])
    return load_version(read_manifest(source), version_dir, settings)


def photos() -> list[bytes]:
    """Encoded images of assorted sizes, modes and formats (PNG: no JPEG draft-mode scaling)."""
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)),
        Image.new("RGB", (64, 48), (200, 30, 90)),
    ]
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    return encoded


def image_round_trip(checkpoint: dict, version_dir: Path) -> None:
    runtime = served(version_dir)
    assert isinstance(runtime, ClassifierRuntime)
    model = build_model(checkpoint)
    preset = preset_from_manifest(checkpoint["image"])
    for data in photos():
        service = runtime.infer(np.stack([load_pixels(data, 10**8, runtime.image_spec)]))[0]
        with torch.no_grad():
            pixels = preset.eval_transform()(Image.open(io.BytesIO(data))).unsqueeze(0)
            expected = torch.softmax(model(pixels), dim=1)[0].numpy()
        np.testing.assert_allclose(service, expected, atol=2e-3)


def test_digits_round_trip(mnist_root: Path, tmp_path: Path) -> None:
    image_round_trip(*train_and_export(["digits", "--data", str(mnist_root)], tmp_path))


def test_resnet_round_trip(image_folder: Path, tmp_path: Path) -> None:
    args = ["pretrain", "--data", str(image_folder), "--image-size", "32"]
    image_round_trip(*train_and_export(args, tmp_path))


def test_sentiment_round_trip(text_csv: Path, tmp_path: Path) -> None:
    args = ["sentiment", "--data", str(text_csv), "--max-length", "16", "--embed-dim", "8", "--hidden", "8"]
    checkpoint, version_dir = train_and_export(args, tmp_path)
    runtime = served(version_dir)
    assert isinstance(runtime, SentimentRuntime)
    model = build_model(checkpoint)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    texts = [
        "Great, wonderful!",
        "awful<br />boring film",
        "superb",
        "😀 !!",
        "good " * 40,
        "Not bad at all.",
    ]
    service = runtime.predict(texts)
    rows = text_data.encode(tokenizer, texts, 16)
    ids = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        expected = torch.softmax(model(ids, torch.tensor([len(r) for r in rows])), dim=1).numpy()
    np.testing.assert_allclose(service, expected, atol=1e-4)
