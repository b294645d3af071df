"""The manifest's image preprocessing in numpy and PIL only (what the service does), for ``evaluate``."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def _resize_short_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)  # the same rounding as torchvision's Resize(int)
    new = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new, Image.Resampling.BILINEAR)


def _center_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    left = round((image.width - width) / 2.0)
    top = round((image.height - height) / 2.0)
    return image.crop((left, top, left + width, top + height))


def preprocess_image(image: Image.Image, spec: dict) -> np.ndarray:
    """One image to a float32 [C, H, W] array following a manifest ``image`` block (models/README.md)."""
    image = ImageOps.exif_transpose(image).convert(spec["color_mode"])
    height, width = spec["size"]
    if spec["resize"] is None:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    else:
        image = _center_crop(_resize_short_side(image, spec["resize"]), height, width)
    x: np.ndarray = np.asarray(image, dtype=np.float32) / 255.0
    if x.ndim == 2:
        x = x[:, :, None]
    if spec["invert"]:
        x = 1.0 - x
    x = (x - np.asarray(spec["mean"], dtype=np.float32)) / np.asarray(spec["std"], dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
