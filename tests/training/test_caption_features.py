"""The captioner's feature cache is float16: an encoder whose outputs leave float16's range (a diverged
fine-tuned encoder) is a one-line error naming the cause, not inf in the cache and a traceback later."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from training.caption.features import FLOAT16_MAX, cached_features  # noqa: E402
from training.errors import NumericalError  # noqa: E402
from training.presets import ImagePreset  # noqa: E402


class Scaled(torch.nn.Module):
    """Pixels times a factor, as [N, L, D] features."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = torch.nn.Parameter(torch.tensor(factor))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels * self.factor).flatten(2).transpose(1, 2)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = []
    for i, colour in enumerate([(255, 255, 255), (10, 200, 30)]):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), colour).save(path)
        paths.append(path)
    return paths


PRESET = ImagePreset(size=(8, 8), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_features_in_range_are_cached_as_float16(images: list[Path], tmp_path: Path) -> None:
    features = cached_features(Scaled(1000.0), images, PRESET, torch.device("cpu"), tmp_path / "cache")
    assert features.dtype == torch.float16
    assert float(features.max()) == 1000.0  # white pixels are 1.0
    assert len(list((tmp_path / "cache").glob("features-*.pt"))) == 1


@pytest.mark.parametrize("factor", [FLOAT16_MAX * 2, float("nan")])
def test_features_beyond_float16_are_refused_and_not_cached(
    images: list[Path], tmp_path: Path, factor: float
) -> None:
    with pytest.raises(NumericalError, match="float16 feature cache holds: its weights have diverged"):
        cached_features(Scaled(factor), images, PRESET, torch.device("cpu"), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
