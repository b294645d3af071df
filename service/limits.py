"""Limits that /v1, /v2 and the batch command apply the same way: items per request, texts, and images
(pixels per image, and the process's bound on pixels being decoded at once)."""

from __future__ import annotations

import threading
import unicodedata

import numpy as np

from contract.manifest import ImageSpec

from .errors import EmptyText, InvalidInput, ServiceError, TextTooLong, TooManyItems
from .preprocessing import DecodeBudget, load_pixels
from .settings import Settings


def check_item_count(count: int, kind: str, max_items: int) -> None:
    """413 when a request carries more than ``max_items`` images or texts (``kind``)."""
    if count > max_items:
        raise TooManyItems(f"{count} {kind} in one request, more than the limit of {max_items}")


# Unicode categories with nothing to read: separators, controls, format characters (zero-width spaces and
# joiners, the byte-order mark) and combining marks with no letter to combine with
INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})


def check_text(index: int, text: str, max_chars: int) -> None:
    """One text: not blank, not over ``max_chars`` (a memory guard: a longer text is read up to the
    model's window, not refused), valid Unicode (JSON can spell a lone surrogate, ``"\\ud800"``, which no
    tokenizer takes) and with something visible in it (a text of zero-width spaces or a NUL has no token:
    it was read as one unknown word, and got that word's prediction as if it were a review)."""
    if not text.strip():
        raise EmptyText(f"text {index} is empty")
    if len(text) > max_chars:
        raise TextTooLong(f"text {index} has {len(text)} characters, more than the limit of {max_chars}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"text {index} is not valid Unicode: a lone surrogate at character {exc.start}"
            ) from exc
    if all(unicodedata.category(char) in INVISIBLE for char in text):  # stops at the first visible one
        raise EmptyText(
            f"text {index} has nothing visible: only spaces, control or zero-width characters, or "
            "combining marks"
        )


def check_text_count(texts: list[str], settings: Settings) -> None:
    """At least one text and at most ``max_batch_items``: faults of the whole request."""
    if not texts:
        raise EmptyText("texts must not be empty")
    check_item_count(len(texts), "texts", settings.max_batch_items)


def check_texts(texts: list[str], settings: Settings) -> None:
    """The whole-request rule (the v2 protocol's): the first bad text fails the request."""
    check_text_count(texts, settings)
    for i, text in enumerate(texts):
        check_text(i, text, settings.max_text_chars)


def text_outcomes(texts: list[str], settings: Settings) -> list[str | ServiceError]:
    """The per-item rule (/v1): each text, or the error that keeps it from being answered."""
    check_text_count(texts, settings)
    outcomes: list[str | ServiceError] = []
    for i, text in enumerate(texts):
        try:
            check_text(i, text, settings.max_text_chars)
        except ServiceError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(text)
    return outcomes


_budgets: dict[int, DecodeBudget] = {}
_budgets_lock = threading.Lock()


def decode_budget(settings: Settings) -> DecodeBudget:
    """The process's bound on pixels being decoded at once (one per ``max_decoding_pixels`` value)."""
    with _budgets_lock:
        return _budgets.setdefault(settings.max_decoding_pixels, DecodeBudget(settings.max_decoding_pixels))


def named_pixels(name: str, data: bytes, settings: Settings, spec: ImageSpec) -> np.ndarray:
    """``load_pixels`` within the settings' limits (``max_image_pixels``, the process's decode budget),
    with ``name`` (a file name, "image 2") leading the message of any error."""
    try:
        return load_pixels(data, settings.max_image_pixels, spec, decode_budget(settings))
    except ServiceError as exc:
        raise type(exc)(f"{name}: {exc.message}") from exc
