"""The captioner's decoder feeds: per image with ``image_index``, gathered per row without it."""

from __future__ import annotations

import numpy as np

from contract.decoding import decoder_feeds, decoder_step_outputs, encoder_outputs
from contract.manifest import CaptionDecoderNames, CaptionEncoderNames

BASE = {"tokens": "t", "h": "h", "c": "c", "features": "f", "log_probs": "lp", "h_out": "ho", "c_out": "co"}


def _rows() -> tuple[np.ndarray, ...]:
    tokens = np.array([5, 6, 7], dtype=np.int32)  # int32 in: the graph's int64 out
    h = c = np.zeros((3, 4), np.float32)
    image_index = np.array([1, 1, 0])
    features = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    return tokens, h, c, image_index, features


def test_a_decoder_with_image_index_gets_each_image_once() -> None:
    names = CaptionDecoderNames(**BASE, alpha="a", projected="p", image_index="i")
    tokens, h, c, index, features = _rows()
    projected = features * 2
    feeds, per_image = decoder_feeds(names, tokens, h, c, index, features, projected)
    assert feeds["f"] is features and feeds["p"] is projected and per_image == {"f": features, "p": projected}
    assert feeds["i"].dtype == np.int64 and feeds["t"].dtype == np.int64
    assert decoder_step_outputs(names) == ["lp", "ho", "co"]


def test_an_older_decoder_gets_its_rows_features_gathered() -> None:
    names = CaptionDecoderNames(**BASE, alpha="a")
    tokens, h, c, index, features = _rows()
    feeds, per_image = decoder_feeds(names, tokens, h, c, index, features, None)
    assert per_image == {} and set(feeds) == {"t", "h", "c", "f"}
    np.testing.assert_array_equal(feeds["f"], features[[1, 1, 0]])


def test_encoder_outputs_name_projected_only_when_the_version_has_it() -> None:
    common = {"pixels": "x", "features": "f", "h0": "h", "c0": "c"}
    assert encoder_outputs(CaptionEncoderNames(**common)) == ["f", "h", "c"]
    assert encoder_outputs(CaptionEncoderNames(**common, projected="p")) == ["f", "h", "c", "p"]
