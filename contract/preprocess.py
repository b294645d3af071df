"""Image preprocessing as the manifest's ``image`` section says (models/README.md), in numpy and Pillow:
the one function the service applies to every upload and training's ``evaluate`` to every test image.
torchvision's eval transform (training/presets.py) is the reference it is tested against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .manifest import ImageSpec

# Largest value of a 16-bit greyscale pixel (PNG), which Pillow reads in an integer mode ("I;16", "I")
MAX_16_BIT = 65535

# Most pixels of the whole resized image (before the center crop) made as such; above, only the crop's
# region is resized. A photo shrinks to far fewer; a long thin image grows instead: 65,500 x 1 at a shorter
# side of 183 is 12 million pixels (it took 20 s and 9 GB), 200,000 x 1 would be 37 million.
RESIZE_WHOLE_MAX_PIXELS = 4_000_000


def orient(image: Image.Image) -> Image.Image:
    """A decoded image upright (its EXIF orientation applied) and in RGB or L: transparency flattened onto
    white, palette, CMYK and other modes to RGB, 16-bit grey scaled to 8 bits. An image already upright
    in RGB or L is returned as it is, so orienting twice costs nothing."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return _to_rgb_or_grey(image)


def preprocess_image(image: Image.Image, spec: ImageSpec | Mapping[str, Any]) -> np.ndarray:
    """One decoded image -> float32 array [C, H, W], following the manifest's ``image`` section (typed,
    or as manifest.json holds it): oriented (:func:`orient`), converted to ``color_mode``, resized and
    cropped, scaled to [0, 1], inverted if asked, normalised per channel, channels first."""
    spec = ImageSpec.model_validate(spec)  # an ImageSpec is taken as it is
    image = _resize_and_crop(orient(image).convert(spec.color_mode), spec)
    x: np.ndarray = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 2:
        x = x[:, :, None]
    if spec.invert:
        x = np.float32(1.0) - x
    x = (x - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def _to_rgb_or_grey(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white and reduce palette, 16-bit and CMYK modes to RGB or L."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("RGB", "L"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit greyscale: scaled to 8 bits (Pillow's convert("L") clips every value above 255 to white)
        values = np.asarray(image, dtype=np.float32)
        return Image.fromarray(np.rint(np.clip(values, 0, MAX_16_BIT) * (255 / MAX_16_BIT)).astype(np.uint8))
    return image.convert("RGB")


def _resize_and_crop(image: Image.Image, spec: ImageSpec) -> Image.Image:
    height, width = spec.size
    if spec.resize is None:
        return image.resize((width, height), Image.Resampling.BILINEAR)
    # Shorter side to `resize` (the longer one truncated, as torchvision does), then center-crop.
    w, h = image.size
    if w <= h:
        new_w, new_h = spec.resize, int(spec.resize * h / w)
    else:
        new_w, new_h = int(spec.resize * w / h), spec.resize
    top = round((new_h - height) / 2.0)
    left = round((new_w - width) / 2.0)
    inside = left >= 0 and top >= 0 and left + width <= new_w and top + height <= new_h  # crop within
    if new_w * new_h > max(w * h, RESIZE_WHOLE_MAX_PIXELS) and inside:
        # resize only the source region the crop keeps (Pillow's box, same scale and pixel centres): the
        # same image to within a few levels (its fixed-point weights round differently), without making
        # the whole resized one
        sx, sy = w / new_w, h / new_h
        box = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
        return image.resize((width, height), Image.Resampling.BILINEAR, box=box)
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    return image.crop((left, top, left + width, top + height))
