"""The contract's numpy/PIL preprocessing (contract.preprocess), which the service applies to uploads and
``evaluate`` to test images, matches training's torchvision eval transform (training/presets.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from contract.preprocess import preprocess_image  # noqa: E402
from training import presets  # noqa: E402


@pytest.mark.parametrize(
    "preset",
    [
        presets.resnet_preset(64),
        presets.resnet_preset(48, crop=False),
        presets.digits_preset(),
        presets.ImagePreset(size=(20, 30), resize=24, invert=True),
    ],
)
@pytest.mark.parametrize("size", [(200, 150), (37, 91)])
def test_numpy_matches_torchvision(preset: presets.ImagePreset, size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    expected = preset.eval_transform()(image).numpy()
    got = preprocess_image(image, preset.manifest())
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
