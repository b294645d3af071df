"""Request limits that every protocol applies the same way: items per request, and texts."""

from __future__ import annotations

from .errors import EmptyText, InvalidInput, TextTooLong, TooManyItems
from .settings import Settings


def check_item_count(count: int, kind: str, max_items: int) -> None:
    """413 when a request carries more than ``max_items`` images or texts (``kind``)."""
    if count > max_items:
        raise TooManyItems(f"{count} {kind} in one request, more than the limit of {max_items}")


def check_texts(texts: list[str], settings: Settings) -> None:
    """At least one text, at most ``max_batch_items``, none blank, none over ``max_text_chars``, each
    valid Unicode (JSON can spell a lone surrogate, ``"\\ud800"``, which no tokenizer takes)."""
    if not texts:
        raise EmptyText("texts must not be empty")
    check_item_count(len(texts), "texts", settings.max_batch_items)
    for i, text in enumerate(texts):
        if not text.strip():
            raise EmptyText(f"text {i} is empty")
        if len(text) > settings.max_text_chars:
            raise TextTooLong(
                f"text {i} has {len(text)} characters, more than the limit of {settings.max_text_chars}"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInput(
                    f"text {i} is not valid Unicode: a lone surrogate at character {exc.start}"
                ) from exc
