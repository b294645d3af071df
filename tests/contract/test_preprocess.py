"""The one image preprocessing (contract.preprocess) on what decoding hands it: the EXIF orientation is
applied once however often an image is oriented, transparency lands on white, and the manifest's
``image`` section gives the same array typed or as manifest.json holds it. (That it computes torchvision's
eval transform is tests/training/test_preprocess.py's, and the service's answers tests/training/
test_round_trip.py's.)"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

from contract.manifest import ImageSpec
from contract.preprocess import orient, preprocess_image

SPEC = {"color_mode": "RGB", "resize": None, "size": [4, 6], "mean": [0.5] * 3, "std": [0.25] * 3}


def rotated_photo() -> Image.Image:
    """A 6 x 4 landscape stored as its 4 x 6 portrait with EXIF orientation 6 (rotate 90 degrees clockwise
    to view): left half red, right half blue once upright."""
    upright = Image.new("RGB", (6, 4), (255, 0, 0))
    upright.paste((0, 0, 255), (3, 0, 6, 4))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_orientation_is_applied_once() -> None:
    image = rotated_photo()
    assert image.size == (4, 6)
    upright = orient(image)
    assert upright.size == (6, 4) and orient(upright).size == (6, 4)
    pixels = preprocess_image(image, SPEC)
    np.testing.assert_array_equal(pixels, preprocess_image(upright, SPEC))
    off, on = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25  # a channel at 0 and at 255, normalised
    np.testing.assert_allclose(pixels[:, 0, 0], [on, off, off], atol=1e-6)  # top left, upright: red
    np.testing.assert_allclose(pixels[:, 0, -1], [off, off, on], atol=1e-6)  # top right: blue


def test_transparency_is_flattened_onto_white() -> None:
    clear = Image.new("RGBA", (6, 4), (0, 0, 0, 0))
    np.testing.assert_allclose(preprocess_image(clear, SPEC), (1 - 0.5) / 0.25)


def test_the_image_section_typed_or_as_json_holds_it() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8))
    for spec in ({**SPEC, "resize": 5}, {**SPEC, "color_mode": "L", "mean": [0.5], "std": [0.25]}):
        np.testing.assert_array_equal(
            preprocess_image(image, spec), preprocess_image(image, ImageSpec.model_validate(spec))
        )
