"""``python -m bench.random_models --out DIR`` stands in for the shipped default models before they exist:
each of its graphs takes and gives what the shipped version's does, and is preprocessed and decoded the
same way (it drifted once: a ResNet captioner at 160 px after the default became EfficientNet-Lite0)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.random_models import main
from bench.run import ROOT, latest_version

SAME = ("graphs", "image", "labels", "output")  # manifest sections that must match, where present


def test_the_random_models_have_the_shipped_defaults_signatures(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    for name in ("pets-resnet18", "sentiment-lstm", "captioner"):
        shipped = json.loads((latest_version(ROOT / "models", name).path / "manifest.json").read_text())
        random = json.loads((tmp_path / name / "1" / "manifest.json").read_text())
        for section in SAME:
            assert random.get(section) == shipped.get(section), (name, section)
        if name == "captioner":
            decoding = ("max_length", "length_penalty", "no_repeat_ngram_size", "vocab_size")
            assert {k: random["caption"].get(k) for k in decoding} == {
                k: shipped["caption"].get(k) for k in decoding
            }
        if name == "sentiment-lstm":
            assert random["text"]["max_length"] <= shipped["text"]["max_length"]
