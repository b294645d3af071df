"""Image decoding of uploads (format, size and integrity checks, reduced-scale JPEG decoding, the decode
budget), then the manifest's preprocessing to NCHW float32 (``contract.preprocess``)."""

from __future__ import annotations

import io
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
from PIL import Image, UnidentifiedImageError

from contract.manifest import ImageSpec
from contract.preprocess import orient, preprocess_image

from ..errors import ImageTooLarge, InvalidImage, UnsupportedMediaType

# MPO: a JPEG with more pictures after the first (multi-picture format), as many cameras write; the first
# picture is the photo.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF"})


class DecodeBudget:
    """Bounds the pixels being decoded at once, over every thread: a decode holds its image's pixel count
    (after any reduced-scale JPEG decoding) until its preprocessed array is made, and waits while that
    would pass ``pixels``; alone, an image always fits. Decodes start in the order they asked, so a large
    image is not overtaken for ever by a stream of small ones. A 5 KB PNG can declare 39 million pixels,
    120 MB decoded: sixteen of them at once took the process from 0.7 to 5 GB."""

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self.held = 0
        self.peak = 0  # the most held at once, for tests and curiosity
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()  # a token per decode waiting to start, first come first

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Wait for the turn of this decode and until ``pixels`` fit (or nothing else is held), and hold
        them for the block."""
        token = object()
        with self._cond:
            self._waiting.append(token)
            while self._waiting[0] is not token or (self.held and self.held + pixels > self.pixels):
                self._cond.wait()
            self._waiting.popleft()
            self.held += pixels
            self.peak = max(self.peak, self.held)
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self.held -= pixels
                self._cond.notify_all()


def decode_image(data: bytes, max_pixels: int, spec: ImageSpec | None = None) -> Image.Image:
    """Decode an upload to an oriented RGB or L image (first frame of a GIF).

    The size is checked from the header, before any pixel is decoded, so a decompression bomb costs
    nothing. With the ``spec`` the image is for, a JPEG at least twice the size that preprocessing needs
    is decoded at a reduced scale (1/2, 1/4 or 1/8, still at least that size: Pillow's draft mode), which
    is several times faster for large photos. Raises ``InvalidImage`` (400), ``UnsupportedMediaType``
    (415) or ``ImageTooLarge`` (413).
    """
    return _decoded(open_image(data, max_pixels, spec))


def open_image(data: bytes, max_pixels: int, spec: ImageSpec | None = None) -> Image.Image:
    """``decode_image`` up to the pixels: the header read and checked, the JPEG scale chosen."""
    if not data:
        raise InvalidImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image is larger than {max_pixels} pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage("the file is not an image") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedMediaType(
            f"image format {image.format} is not supported; send JPEG, PNG, WebP, BMP or GIF"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels, more than the limit of {max_pixels}")
    if spec is not None and image.format in ("JPEG", "MPO"):
        needed = spec.resize if spec.resize is not None else max(spec.size)  # either orientation
        image.draft(image.mode, (needed, needed))
    return image


def _decoded(image: Image.Image) -> Image.Image:
    try:
        image.load()
        return orient(image)
    except Exception as exc:  # Pillow raises many types on truncated or corrupt data; all mean bad input
        raise InvalidImage("the image is truncated or corrupt") from exc


def load_pixels(
    data: bytes, max_pixels: int, spec: ImageSpec, budget: DecodeBudget | None = None
) -> np.ndarray:
    """An encoded image -> its float32 array [C, H, W] for ``spec`` (``decode_image``, then
    ``preprocess_image``), holding its pixels in ``budget`` from decoding to the array."""
    image = open_image(data, max_pixels, spec)
    width, height = image.size  # after draft: the size that will be decoded
    with budget.hold(width * height) if budget is not None else nullcontext():
        return preprocess_image(_decoded(image), spec)


def image_batch(images: list[Image.Image], spec: ImageSpec) -> np.ndarray:
    """Decoded images -> one float32 batch [N, C, H, W]."""
    return np.stack([preprocess_image(image, spec) for image in images])
