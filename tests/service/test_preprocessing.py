"""Image and text preprocessing, without sessions."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from contract.manifest import ImageSpec, TextSpec
from service.errors import ImageTooLarge, InvalidImage
from service.preprocessing import DecodeBudget, TextEncoder, decode_image, image_batch, load_pixels
from tests.model_factory import _word_level_tokenizer

from .conftest import image_bytes


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    assert decode_image(buffer.getvalue(), 10_000).size == (20, 40)


def test_gif_first_frame_and_modes() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    first = decode_image(buffer.getvalue(), 10_000)
    assert first.mode == "RGB" and first.getpixel((0, 0)) == (255, 0, 0)
    transparent = decode_image(image_bytes((0, 0, 0, 0), mode="RGBA"), 10_000)
    assert transparent.getpixel((0, 0)) == (255, 255, 255)  # flattened onto white
    assert decode_image(image_bytes(128, mode="L"), 10_000).mode == "L"


def test_size_is_checked_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="image is 32x24 pixels, more than the limit of 100"):
        decode_image(image_bytes(), 100)


def test_resize_shorter_side_then_center_crop() -> None:
    spec = ImageSpec(color_mode="RGB", resize=8, size=(4, 4), mean=[0, 0, 0], std=[1, 1, 1])
    image = Image.new("RGB", (32, 16), (0, 0, 0))
    image.paste((255, 255, 255), (8, 0, 24, 16))  # a white band: the middle half of the columns
    batch = image_batch([image], spec)
    assert batch.shape == (1, 3, 4, 4) and batch.dtype == np.float32
    assert np.allclose(batch, 1.0)  # the crop keeps the centre only


def test_a_long_thin_image_is_not_resized_whole_before_its_crop(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1500 x 4 at a shorter side of 183 would be 68,625 x 183 (12.6 million pixels) before a 160 x 160 crop;
    # a 65,500 x 1 JPEG (17 KB) took 20 s and 9 GB that way. Only the crop's region is resized, and the
    # result is the whole resize's crop to within a few levels (Pillow's fixed-point filter weights round
    # differently from an offset; a region off by a pixel would differ by ~85 levels on these random ones).
    spec = ImageSpec(color_mode="RGB", resize=183, size=(160, 160), mean=[0, 0, 0], std=[1, 1, 1])
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(4, 1500, 3), dtype=np.uint8))
    whole = image.resize((68625, 183), Image.Resampling.BILINEAR).crop((34232, 11, 34392, 171))
    made: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def recorded(self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
        made.append(tuple(size))
        return resize(self, size, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", recorded)
    pixels = image_batch([image], spec)[0]
    assert made == [(160, 160)]
    expected = np.asarray(whole, dtype=np.float32).transpose(2, 0, 1) / 255
    difference = np.abs(pixels - expected) * 255
    assert difference.max() <= 6 and difference.mean() < 2


def test_a_photo_is_resized_whole_then_cropped_as_torchvision_does(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ImageSpec(color_mode="RGB", resize=183, size=(160, 160), mean=[0, 0, 0], std=[1, 1, 1])
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, size=(375, 500, 3), dtype=np.uint8))
    expected = np.asarray(image.resize((244, 183), Image.Resampling.BILINEAR).crop((42, 12, 202, 172)))
    pixels = image_batch([image], spec)[0]
    np.testing.assert_array_equal(pixels, expected.astype(np.float32).transpose(2, 0, 1) / np.float32(255))


def test_grey_invert_and_normalise() -> None:
    spec = ImageSpec(color_mode="L", resize=None, size=(2, 3), mean=[0.5], std=[0.5], invert=True)
    batch = image_batch([Image.new("RGB", (5, 5), (0, 0, 0))], spec)
    assert batch.shape == (1, 1, 2, 3)
    assert np.allclose(batch, 1.0)  # black -> 0, inverted -> 1, (1 - 0.5) / 0.5


def test_text_encoder_truncates_pads_and_keeps_one_token() -> None:
    tokenizer = _word_level_tokenizer(["<pad>", "<unk>", "good", "film"])
    spec = TextSpec(tokenizer="t.json", max_length=3, pad_id=0, unk_id=1, input_ids="ids", lengths="lengths")
    ids, lengths, truncated = TextEncoder(tokenizer, spec).encode(["Good film, good film!", "...", "what"])
    assert ids.tolist() == [[2, 3, 2], [1, 0, 0], [1, 0, 0]]
    assert lengths.tolist() == [3, 1, 1]
    assert truncated == [True, False, False]


def test_large_jpegs_are_decoded_at_a_reduced_size_the_target_allows() -> None:
    spec = ImageSpec(color_mode="RGB", resize=64, size=(56, 56), mean=[0.5] * 3, std=[0.5] * 3)
    big = image_bytes((200, 40, 90), "JPEG", size=(1000, 600), quality=95)
    reduced = decode_image(big, 10**7, spec)
    assert reduced.size == (125, 75)  # 1/8: the shorter side still covers 64
    wide = image_bytes((200, 40, 90), "JPEG", size=(1000, 400))
    assert decode_image(wide, 10**7, spec).size == (250, 100)  # 1/4: at 1/8 it would be 50 < 64
    assert decode_image(big, 10**7).size == (1000, 600)  # no spec: full size
    small = image_bytes((200, 40, 90), "JPEG", size=(100, 60))
    assert decode_image(small, 10**7, spec).size == (100, 60)  # nothing to spare
    png = image_bytes((200, 40, 90), "PNG", size=(1000, 600))
    assert decode_image(png, 10**7, spec).size == (1000, 600)  # draft is for JPEG only
    full = image_batch([decode_image(big, 10**7)], spec)
    assert np.abs(image_batch([reduced], spec) - full).max() < 0.05  # same picture


def test_16_bit_grey_is_scaled_to_8_bits() -> None:
    """A 16-bit greyscale PNG (Pillow mode I;16) decodes to the same 8-bit image as the 8-bit PNG of the
    same picture; converting it straight to L clipped every value above 255 to white."""
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    buffer = io.BytesIO()
    Image.fromarray(grey.astype(np.uint16) * 257).save(buffer, "PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    decoded = decode_image(buffer.getvalue(), 10_000)
    assert decoded.mode == "L"
    assert np.array_equal(np.asarray(decoded), grey)


def test_a_jpeg_with_several_pictures_is_its_first_picture() -> None:
    """Cameras write JPEGs with more pictures after the photo (multi-picture format: Pillow says MPO);
    they were refused as an unsupported format."""
    first, second = Image.new("RGB", (40, 30), (250, 0, 0)), Image.new("RGB", (40, 30), (0, 0, 250))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    decoded = np.asarray(decode_image(buffer.getvalue(), 10_000))
    assert decoded.shape == (30, 40, 3)
    assert decoded[..., 0].mean() > 200 and decoded[..., 2].mean() < 50


def test_the_decode_budget_holds_decoded_pixels_and_lets_one_image_through() -> None:
    budget = DecodeBudget(pixels=100)
    inside = threading.Semaphore(0)
    release = threading.Event()
    counts: list[int] = []

    def decode(pixels: int) -> None:
        with budget.hold(pixels):
            counts.append(budget.held)
            inside.release()
            release.wait(10)

    threads = [threading.Thread(target=decode, args=(60,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=10)
    assert not inside.acquire(timeout=0.3)  # the second 60 would make 120: it waits
    release.set()
    for thread in threads:
        thread.join(10)
    assert counts == [60, 60, 60] and budget.held == 0 and budget.peak == 60
    with budget.hold(500):  # alone, an image larger than the budget still goes
        assert budget.held == 500


def test_a_decode_holds_the_pixels_it_decodes() -> None:
    """What is held is the size decoded: a 1000x600 JPEG for a 64-pixel target is decoded at 1/8."""
    spec = ImageSpec(color_mode="RGB", resize=64, size=(56, 56), mean=[0.5] * 3, std=[0.5] * 3)
    budget = DecodeBudget(pixels=10**6)
    big = image_bytes((200, 40, 90), "JPEG", size=(1000, 600), quality=95)
    assert load_pixels(big, 10**7, spec, budget).shape == (3, 56, 56)
    assert (budget.peak, budget.held) == (125 * 75, 0)
    png = image_bytes((200, 40, 90), "PNG", size=(1000, 600))
    load_pixels(png, 10**7, spec, budget)
    assert (budget.peak, budget.held) == (1000 * 600, 0)
    with pytest.raises(InvalidImage):
        load_pixels(big[: len(big) // 2], 10**7, spec, budget)
    assert budget.held == 0  # released when decoding fails too


def test_a_large_decode_is_not_overtaken_for_ever_by_small_ones() -> None:
    """Decodes start in the order they asked: a large image waiting for room goes before small ones that
    ask after it, however many keep coming."""
    budget = DecodeBudget(pixels=100)
    order: list[str] = []
    small_held = threading.Event()
    release_first = threading.Event()

    def decode(name: str, pixels: int, hold_until: threading.Event | None = None) -> None:
        with budget.hold(pixels):
            order.append(name)
            if hold_until is not None:
                small_held.set()
                hold_until.wait(10)

    first = threading.Thread(target=decode, args=("small 1", 30, release_first))
    first.start()
    assert small_held.wait(10)
    large = threading.Thread(target=decode, args=("large", 90))  # 30 + 90 > 100: waits
    large.start()
    time.sleep(0.2)
    late = threading.Thread(target=decode, args=("small 2", 30))  # would fit now, but asked after it
    late.start()
    time.sleep(0.2)
    assert order == ["small 1"]
    release_first.set()
    for thread in (first, large, late):
        thread.join(10)
    assert order == ["small 1", "large", "small 2"] and budget.held == 0
