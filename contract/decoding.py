"""What the captioner's graphs are fed and asked for, as the manifest's ``caption`` section names them: the
encoder's outputs, and one decoder step's inputs. The service and training's evaluation both build their
runs here, so a decoder is fed the same way whichever side drives it."""

from __future__ import annotations

import numpy as np

from contract.manifest import CaptionDecoderNames, CaptionEncoderNames


def encoder_outputs(names: CaptionEncoderNames) -> list[str]:
    """The encoder outputs to fetch, in order: features, h0, c0, then ``projected`` when the version has it
    (a decoder without it projects the features at every step)."""
    return [names.features, names.h0, names.c0] + ([names.projected] if names.projected else [])


def decoder_step_outputs(names: CaptionDecoderNames) -> list[str]:
    """The decoder outputs a search needs, in order: log-probabilities, h, c."""
    return [names.log_probs, names.h_out, names.c_out]


def decoder_feeds(
    names: CaptionDecoderNames,
    tokens: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    image_index: np.ndarray,
    features: np.ndarray,
    projected: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One decoder step's feeds for rows of (previous token, state, index of their image in ``features``).

    A decoder with ``image_index`` takes the images' features (and ``projected``) once per image and the
    index per row; an older one takes them gathered per row. Returns (all feeds, the per-image part fed
    whole: empty for an older decoder), so a caller can keep the per-image part on its device."""
    feeds = {names.tokens: tokens.astype(np.int64, copy=False), names.h: h, names.c: c}
    per_image = {names.features: features}
    if names.projected and projected is not None:
        per_image[names.projected] = projected
    if names.image_index:
        return feeds | per_image | {names.image_index: image_index.astype(np.int64, copy=False)}, per_image
    return feeds | {name: value[image_index] for name, value in per_image.items()}, {}
