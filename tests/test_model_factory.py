"""The tiny models of `tests/model_factory.py` run in onnxruntime and do what its docstring promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from contract import beam
from contract.decoding import decoder_feeds, decoder_step_outputs, encoder_outputs
from contract.files import sha256_file
from contract.manifest import CaptionSpec
from tests import model_factory as mf


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mf.make_repository(tmp_path_factory.mktemp("models"))


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "manifest.json").read_text())


def uniform_image(rgb: tuple[int, ...], image: dict[str, Any]) -> np.ndarray:
    """A [1, C, H, W] batch of one uniform image, preprocessed as models/README.md says."""
    height, width = image["size"]
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    if image["invert"]:
        x = 1.0 - x
    x = (x - np.asarray(image["mean"], np.float32)) / np.asarray(image["std"], np.float32)
    return np.broadcast_to(x[None, :, None, None], (1, len(rgb), height, width)).astype(np.float32)


# ------------------------------------------------------------------------------------ manifests


@pytest.mark.parametrize(
    ("name", "task", "graphs"),
    [
        ("tiny-classifier", "image-classification", {"model": "model.onnx"}),
        ("tiny-sentiment", "sentiment", {"model": "model.onnx"}),
        ("tiny-captioner", "image-captioning", {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}),
    ],
)
def test_manifest_follows_the_contract(repo: Path, name: str, task: str, graphs: dict[str, str]) -> None:
    version_dir = repo / name / "1"
    data = manifest(version_dir)
    assert data["format"] == "modelserve.manifest/v1"
    assert (data["name"], data["version"], data["task"]) == (name, 1, task)
    assert isinstance(data["description"], str) and data["description"]
    assert data["created"].endswith("Z")
    assert data["metrics"] == {}
    assert data["provenance"]["generator"] == "tests/model_factory.py"
    on_disk = {p.name for p in version_dir.iterdir()} - {"manifest.json"}
    assert set(data["files"]) == on_disk
    for file, digest in data["files"].items():
        assert sha256_file(version_dir / file) == digest
    assert {key: g["file"] for key, g in data["graphs"].items()} == graphs
    for graph in data["graphs"].values():
        model = onnx.load(str(version_dir / graph["file"]))
        onnx.checker.check_model(model)
        sess = session(version_dir / graph["file"])
        declared = [(t["name"], t["dtype"], t["shape"]) for t in graph["inputs"]]
        actual = [
            (i.name, i.type, [d if isinstance(d, int) else -1 for d in i.shape]) for i in sess.get_inputs()
        ]
        assert [
            (n, {"float32": "tensor(float)", "int64": "tensor(int64)"}[d], s) for n, d, s in declared
        ] == actual
        assert [t["name"] for t in graph["outputs"]] == [o.name for o in sess.get_outputs()]
        assert all(t["shape"][0] == -1 for t in graph["inputs"] + graph["outputs"])


def test_existing_version_is_not_overwritten_unless_asked(tmp_path: Path) -> None:
    mf.make_sentiment(tmp_path)
    with pytest.raises(FileExistsError):
        mf.make_sentiment(tmp_path)
    assert mf.make_sentiment(tmp_path, overwrite=True) == tmp_path / "tiny-sentiment" / "1"


def _files(repo: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()}


def test_command_line_rerun_is_one_line_and_overwrite_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mf.main(["--out", str(tmp_path)])
    first = _files(tmp_path)
    assert len(list(tmp_path.glob("*/1/manifest.json"))) == 3
    capsys.readouterr()
    assert mf.main(["--out", str(tmp_path)]) == 2  # was a FileExistsError traceback
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path} already holds ")
    assert "pass --overwrite to replace them" in err
    assert _files(tmp_path) == first  # nothing touched
    assert mf.main(["--out", str(tmp_path), "--overwrite"]) == 0
    assert _files(tmp_path).keys() == first.keys()


def test_command_line_writes_nothing_when_one_model_is_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mf.make_sentiment(tmp_path)
    assert mf.main(["--out", str(tmp_path)]) == 2
    assert "tiny-sentiment/1" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-sentiment"]  # no half-written repository


# ----------------------------------------------------------------------------------- classifier


@pytest.mark.parametrize(
    ("rgb", "label"),
    [
        ((255, 0, 0), "red"),
        ((0, 255, 0), "green"),
        ((0, 0, 255), "blue"),
        ((200, 90, 40), "red"),
        ((10, 60, 50), "green"),
        ((120, 130, 140), "blue"),
    ],
)
def test_rgb_classifier_picks_the_brightest_channel(repo: Path, rgb: tuple[int, ...], label: str) -> None:
    version_dir = repo / "tiny-classifier" / "1"
    data = manifest(version_dir)
    logits = session(version_dir / "model.onnx").run(None, {"pixels": uniform_image(rgb, data["image"])})[0]
    np.testing.assert_allclose(logits[0], 10 * np.asarray(rgb) / 255, atol=1e-4)
    assert data["labels"][int(logits[0].argmax())] == label


def test_rgb_classifier_probabilities_batch(tmp_path: Path) -> None:
    version_dir = mf.make_classifier(tmp_path, output="probabilities", size=(8, 12), resize=16)
    data = manifest(version_dir)
    assert data["output"] == "probabilities" and data["image"]["resize"] == 16
    batch = np.concatenate([uniform_image(c, data["image"]) for c in ((255, 0, 0), (0, 0, 255))])
    probs = session(version_dir / "model.onnx").run(["probabilities"], {"pixels": batch})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs[0, 0] > 0.999 and probs[1, 2] > 0.999


@pytest.mark.parametrize(
    ("grey", "invert", "label"),
    [
        (0, False, "dark"),
        (128, False, "mid"),
        (255, False, "bright"),
        (60, False, "dark"),
        (0, True, "bright"),
        (255, True, "dark"),
    ],
)
def test_grey_classifier_bins_brightness(tmp_path: Path, grey: int, invert: bool, label: str) -> None:
    version_dir = mf.make_classifier(tmp_path, color_mode="L", size=(28, 28), invert=invert)
    data = manifest(version_dir)
    assert data["graphs"]["model"]["inputs"][0]["shape"] == [-1, 1, 28, 28]
    logits = session(version_dir / "model.onnx").run(None, {"pixels": uniform_image((grey,), data["image"])})
    assert data["labels"][int(logits[0][0].argmax())] == label


def test_classifier_rejects_unsupported_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="color_mode"):
        mf.make_classifier(tmp_path, color_mode="CMYK")
    with pytest.raises(ValueError, match="one label per channel"):
        mf.make_classifier(tmp_path, labels=("cat", "dog"))


# ------------------------------------------------------------------------------------ sentiment


def encode_batch(tokenizer: Tokenizer, texts: list[str], pad_to: int = 0) -> dict[str, np.ndarray]:
    rows = [tokenizer.encode(t).ids or [1] for t in texts]
    width = max(pad_to, *(len(r) for r in rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return {"input_ids": ids, "lengths": np.array([len(r) for r in rows], dtype=np.int64)}


def test_tokenizer_cleans_text(repo: Path) -> None:
    tokenizer = Tokenizer.from_file(str(repo / "tiny-sentiment" / "1" / "tokenizer.json"))
    ids = tokenizer.encode("This movie was GREAT!<br />Awful, zzz.").ids
    vocab = list(mf.SENTIMENT_VOCAB)
    assert ids == [vocab.index(w) for w in ("this", "movie", "was", "great", "awful")] + [1]


@pytest.mark.parametrize(
    ("text", "label", "score"),
    [
        ("I love this movie, it was great!", "positive", 2.0),
        ("Awful. I hate it.<br /><br />Terrible film, not good.", "negative", -2.0),
        ("excellent", "positive", 1.0),
        ("bad plot, unknown words everywhere", "negative", -1.0),
    ],
)
def test_sentiment_counts_words(repo: Path, text: str, label: str, score: float) -> None:
    version_dir = repo / "tiny-sentiment" / "1"
    data = manifest(version_dir)
    tokenizer = Tokenizer.from_file(str(version_dir / data["text"]["tokenizer"]))
    logits = session(version_dir / "model.onnx").run(None, encode_batch(tokenizer, [text]))[0]
    np.testing.assert_array_equal(logits, [[-score, score]])
    assert data["labels"][int(logits[0].argmax())] == label


def test_padding_never_changes_a_prediction(repo: Path) -> None:
    version_dir = repo / "tiny-sentiment" / "1"
    tokenizer = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    sess = session(version_dir / "model.onnx")
    texts = ["great", "the movie was bad and awful", "qwerty"]
    alone = np.concatenate([sess.run(None, encode_batch(tokenizer, [t]))[0] for t in texts])
    for pad_to in (0, 7, 40):
        batch = encode_batch(tokenizer, texts, pad_to=pad_to)
        batch["input_ids"][batch["input_ids"] == 0] = mf.SENTIMENT_VOCAB.index("good")  # pad with junk
        np.testing.assert_array_equal(sess.run(None, batch)[0], alone)
    np.testing.assert_array_equal(alone, [[-1, 1], [2, -2], [0, 0]])


# ------------------------------------------------------------------------------------ captioner


def decode(version_dir: Path, rgb: tuple[int, ...], beam_size: int) -> str:
    """The caption the service's search (``contract.beam``, beam size 1 is greedy) makes of a uniform image,
    choosing by mean log-probability per token.

    Also checks on every step that log_probs and alpha are true distributions and that c_out counts steps.
    """
    data = manifest(version_dir)
    spec = CaptionSpec.model_validate(data["caption"])
    encoder, decoder = session(version_dir / "encoder.onnx"), session(version_dir / "decoder.onnx")
    pixels = uniform_image(rgb, data["image"])
    features, h0, c0 = encoder.run(encoder_outputs(spec.encoder), {spec.encoder.pixels: pixels})
    steps = 0

    def step(tokens: np.ndarray, h: np.ndarray, c: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, ...]:
        nonlocal steps
        feeds, _ = decoder_feeds(spec.decoder, tokens, h, c, images, features, None)
        log_probs, h_out, c_out, alpha = decoder.run([*decoder_step_outputs(spec.decoder), "alpha"], feeds)
        steps += 1
        np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(c_out, steps)
        return log_probs, h_out, c_out

    (best,) = beam.decode(
        step,
        h0,
        c0,
        bos_id=spec.bos_id,
        eos_id=spec.eos_id,
        max_length=spec.max_length,
        beam_size=beam_size,
        length_penalty=1.0,
        banned=beam.banned_tokens(bos_id=spec.bos_id, pad_id=spec.pad_id, unk_id=spec.unk_id),
    )
    tokenizer = Tokenizer.from_file(str(version_dir / spec.tokenizer))
    return tokenizer.decode(list(best.tokens))


@pytest.mark.parametrize(
    ("rgb", "greedy", "beam"),
    [
        ((255, 0, 0), "a red square", "a red square"),
        ((0, 255, 0), "a green square", "a green square"),
        ((0, 0, 255), "a blue square", "a blue square"),
        ((0, 0, 0), "a dark square", "a dark square"),
        ((255, 255, 255), "a white square", "a white square"),
        ((128, 128, 128), "a white square", "a white square"),
        ((89, 0, 0), "a dark square", "a red square"),  # greedy commits to "dark"; beam search recovers
    ],
)
def test_captions(repo: Path, rgb: tuple[int, ...], greedy: str, beam: str) -> None:
    version_dir = repo / "tiny-captioner" / "1"
    assert decode(version_dir, rgb, beam_size=1) == greedy
    assert decode(version_dir, rgb, beam_size=2) == beam
    assert decode(version_dir, rgb, beam_size=3) == beam


def test_captioner_batches_and_attends_to_quadrants(repo: Path) -> None:
    version_dir = repo / "tiny-captioner" / "1"
    data = manifest(version_dir)
    red, black = (uniform_image(rgb, data["image"]) for rgb in ((255, 0, 0), (0, 0, 0)))
    pixels = np.concatenate([red, black])
    pixels[1, :, :8, :8] = uniform_image((0, 0, 255), data["image"])[0, :, :8, :8]  # blue top-left quadrant
    features, h0, c0 = session(version_dir / "encoder.onnx").run(None, {"pixels": pixels})
    np.testing.assert_allclose(features[0], [[1, 0, 0]] * 4, atol=1e-5)
    np.testing.assert_allclose(features[1], [[0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(h0, features.mean(axis=1), atol=1e-6)
    np.testing.assert_array_equal(c0, 0)
    tokens = np.array([data["caption"]["bos_id"]] * 2, np.int64)
    _, h_out, _, alpha = session(version_dir / "decoder.onnx").run(
        None, {"tokens": tokens, "h": h0, "c": c0, "features": features}
    )
    np.testing.assert_array_equal(h_out, h0)
    np.testing.assert_allclose(alpha[0], 0.25, atol=1e-6)
    assert alpha[1].argmax() == 0 and alpha[1, 0] > alpha[1, 1]


def test_caption_tokenizer_ids(repo: Path) -> None:
    tokenizer = Tokenizer.from_file(str(repo / "tiny-captioner" / "1" / "tokenizer.json"))
    assert [tokenizer.token_to_id(t) for t in mf.CAPTION_VOCAB] == list(range(len(mf.CAPTION_VOCAB)))
    assert tokenizer.decode([2, 4, 5, 10, 3]) == "a red square"
