"""Preprocessing, separate from the session calls: image bytes -> float arrays, text -> token ids."""

from .image import DecodeBudget, decode_image, image_batch, load_pixels
from .text import TextEncoder, load_tokenizer

__all__ = ["DecodeBudget", "TextEncoder", "decode_image", "image_batch", "load_pixels", "load_tokenizer"]
