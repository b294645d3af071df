"""Tiny but real model versions, written exactly as `models/README.md` describes them.

Every graph is built with `onnx.helper` (no torch) and computes a small, documented function, so a test
can predict its answer from the input alone. The service's tests use these versions as real models, and
a user can put a repository in place before trained models exist:

    python -m tests.model_factory --out models

(A rerun into the same directory stops with a one-line message and writes nothing; `--overwrite`
replaces the tiny versions there.)

Behaviours (the service's tests rely on them; `tests/test_model_factory.py` checks each one):

- `make_classifier`, `color_mode="RGB"` (labels must be 3 names, one per channel): the graph undoes the
  manifest's normalisation, averages each channel over the image and returns `10 * mean` as the logits,
  so the brightest channel wins (pure red -> "red", p ~ 0.9999). Equal channels (white, grey) tie.
- `make_classifier`, `color_mode="L"` with N labels (default `("dark", "mid", "bright")`): brightness
  bins. With b the mean grey value in [0, 1] (after `invert`, if set), logit i is
  `-200 * (b - (i + 0.5) / N) ** 2`: the label of the bin that contains b wins (black -> "dark",
  mid grey -> "mid", white -> "bright").
- `make_sentiment`: each word scores +1 (good, great, love, excellent), -1 (bad, awful, hate, terrible)
  or 0 (anything else, unknown words included); the logits are `[-s, s]` for ["negative", "positive"],
  where s is the sum over the first `lengths` ids, so padding never changes the output. s = 0 is a tie.
- `make_captioner`: the caption's colour word follows the image's (attention-weighted) mean colour and
  the rest follows the previous token. Uniform images, greedy and beam alike: red -> "a red square",
  green -> "a green square", blue -> "a blue square", black -> "a dark square", white or grey ->
  "a white square". A uniform dark red (R=89, G=B=0) is the image where search matters: greedy gives
  "a dark square", beam search (beam size >= 2, length-normalised score) gives "a red square".
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from contract.versions import write_version

OPSET = 17
IR_VERSION = 8  # onnxruntime >= 1.14 reads it
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CLASSIFIER_RGB_SCALE = 10.0
CLASSIFIER_L_SCALE = 200.0
DEFAULT_L_LABELS = ("dark", "mid", "bright")

SENTIMENT_LABELS = ("negative", "positive")
POSITIVE_WORDS = ("good", "great", "love", "excellent")
NEGATIVE_WORDS = ("bad", "awful", "hate", "terrible")
NEUTRAL_WORDS = ("the", "a", "movie", "film", "was", "this", "is", "it", "and", "not")
SENTIMENT_VOCAB = ("<pad>", "<unk>", *NEUTRAL_WORDS, *POSITIVE_WORDS, *NEGATIVE_WORDS)

CAPTION_SPECIALS = ("<pad>", "<unk>", "<start>", "<end>")
CAPTION_VOCAB = (
    *CAPTION_SPECIALS,
    "a",
    "red",
    "green",
    "blue",
    "white",
    "dark",
    "square",
    "image",
    "background",
)
CAPTION_MAX_LENGTH = 20
CAPTION_HIDDEN = 3  # h and c: the image's mean colour, and a step counter
CAPTION_REGIONS = 4  # features: one mean colour per image quadrant
# After "a": logit(colour) = 10 * that channel of the attended colour, logit("white") = 10 * its
# smallest channel + 1, logit("dark") = 4; every other word -10.
CAPTION_COLOUR_SCALE = 10.0
CAPTION_WHITE_BIAS = 1.0
CAPTION_DARK_LOGIT = 4.0


# --------------------------------------------------------------------------------------- helpers


def graph_entry(model: onnx.ModelProto, file: str) -> dict[str, Any]:
    """The manifest's `graph` object for a model, read from its declared inputs and outputs."""
    dtypes: dict[int, str] = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64"}

    def tensor(info: onnx.ValueInfoProto) -> dict[str, Any]:
        tensor_type = info.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim]
        return {"name": info.name, "dtype": dtypes[tensor_type.elem_type], "shape": shape}

    return {
        "file": file,
        "inputs": [tensor(i) for i in model.graph.input],
        "outputs": [tensor(o) for o in model.graph.output],
    }


PROVENANCE = {
    "generator": "tests/model_factory.py",
    "dataset": "none",
    "initialisation": "hand-set weights, no training",
}


def write_model(
    repo: Path,
    name: str,
    version: int,
    overwrite: bool,
    fields: dict[str, Any],
    files: dict[str, bytes | str],
) -> Path:
    """Write a version with the contract's writer (its manifest validated as the service validates it,
    the directory whole or not at all) and return its directory.

    `fields` are the manifest's `task`, `description`, `graphs` and the task's own fields; `format`,
    `name`, `version`, `created` and `files` are filled in, and `metrics` (empty) and `provenance` unless
    given. Without `overwrite`, an existing version is a `FileExistsError`; with it, it is replaced.
    """
    path = Path(repo) / name / str(version)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        shutil.rmtree(path)
    return write_version(repo, name, {"metrics": {}, "provenance": PROVENANCE, **fields}, files, version)


def _checked(model: onnx.ModelProto) -> bytes:
    """A graph's file contents, once `onnx.checker` accepts it."""
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _model(
    nodes: list[onnx.NodeProto],
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: dict[str, np.ndarray],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="tests.model_factory",
    )


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _card(title: str, body: str) -> str:
    return (
        f"# {title}\n\nA tiny hand-built test model from `tests/model_factory.py`; no data, no training, "
        f"no licence constraints.\n\n{body}\n"
    )


def _denormalise_nodes(x: str, out: str) -> tuple[list[onnx.NodeProto], list[str]]:
    """Nodes undoing (x - mean) / std; they read the initializers `std` and `mean` ([1, C, 1, 1])."""
    return [
        helper.make_node("Mul", [x, "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], [out]),
    ], ["std", "mean"]


def _image_section(
    color_mode: str,
    size: tuple[int, int],
    resize: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    invert: bool,
) -> dict[str, Any]:
    return {
        "color_mode": color_mode,
        "resize": resize,
        "size": list(size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "invert": invert,
    }


def _word_level_tokenizer(vocab: Sequence[str], special: Sequence[str] = ()) -> Tokenizer:
    """A WordLevel tokenizer: lowercase, `<br />` and punctuation replaced by spaces, split on spaces."""
    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"<br\s*/?>"), " "),
            normalizers.Replace(Regex(r"[^\w\s]"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if special:
        tokenizer.add_special_tokens(list(special))
    return tokenizer


# ----------------------------------------------------------------------------------- classifier


def make_classifier(
    repo: Path,
    name: str = "tiny-classifier",
    version: int = 1,
    *,
    color_mode: str = "RGB",
    size: tuple[int, int] = (16, 16),
    resize: int | None = None,
    labels: Sequence[str] | None = None,
    output: str = "logits",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    invert: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write an `image-classification` version and return its directory.

    RGB: logits = 10 * per-channel mean of the de-normalised image (labels default red, green, blue).
    L: brightness bins over `labels` (default dark, mid, bright). `mean`/`std` default to ImageNet's
    for RGB and 0.5/0.5 for L. `output="probabilities"` puts a Softmax inside the graph.
    """
    if color_mode not in ("RGB", "L"):
        raise ValueError(f"color_mode must be 'RGB' or 'L', got {color_mode!r}")
    if output not in ("logits", "probabilities"):
        raise ValueError(f"output must be 'logits' or 'probabilities', got {output!r}")
    channels = 3 if color_mode == "RGB" else 1
    labels = (
        tuple(labels)
        if labels is not None
        else (("red", "green", "blue") if color_mode == "RGB" else DEFAULT_L_LABELS)
    )
    if color_mode == "RGB" and len(labels) != 3:
        raise ValueError(f"an RGB classifier has one label per channel (3), got {len(labels)}")
    if len(labels) < 2:
        raise ValueError("a classifier needs at least 2 labels")
    mean = tuple(mean) if mean is not None else (IMAGENET_MEAN if channels == 3 else (0.5,))
    std = tuple(std) if std is not None else (IMAGENET_STD if channels == 3 else (0.5,))
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values for color_mode {color_mode!r}")

    height, width = size
    nodes, _ = _denormalise_nodes("pixels", "raw")
    nodes.append(helper.make_node("ReduceMean", ["raw"], ["colour"], axes=[2, 3], keepdims=0))
    inits = {"std": _f32(std).reshape(1, channels, 1, 1), "mean": _f32(mean).reshape(1, channels, 1, 1)}
    result = "logits" if output == "logits" else "scores"
    if color_mode == "RGB":
        inits["scale"] = _f32(CLASSIFIER_RGB_SCALE)
        nodes.append(helper.make_node("Mul", ["colour", "scale"], [result]))
    else:
        inits["centres"] = (np.arange(len(labels), dtype=np.float32) + 0.5) / len(labels)
        inits["neg_scale"] = _f32(-CLASSIFIER_L_SCALE)
        nodes += [
            helper.make_node("Sub", ["colour", "centres"], ["distance"]),
            helper.make_node("Mul", ["distance", "distance"], ["squared"]),
            helper.make_node("Mul", ["squared", "neg_scale"], [result]),
        ]
    if output == "probabilities":
        nodes.append(helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1))
    model = _model(
        nodes,
        name,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", channels, height, width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", len(labels)])],
        inits,
    )

    rule = (
        "the brightest channel wins"
        if color_mode == "RGB"
        else "the brightness bin containing the mean grey value wins"
    )
    return write_model(
        repo,
        name,
        version,
        overwrite,
        {
            "task": "image-classification",
            "description": f"Tiny {color_mode} test classifier: {rule}.",
            "graphs": {"model": graph_entry(model, "model.onnx")},
            "image": _image_section(color_mode, size, resize, mean, std, invert),
            "labels": list(labels),
            "output": output,
        },
        {
            "model.onnx": _checked(model),
            "card.md": _card(name, f"Image classifier over {list(labels)}: {rule}."),
        },
    )


# ------------------------------------------------------------------------------------ sentiment


def make_sentiment(
    repo: Path,
    name: str = "tiny-sentiment",
    version: int = 1,
    *,
    max_length: int = 32,
    overwrite: bool = False,
) -> Path:
    """Write a `sentiment` version and return its directory.

    logits = [-s, s] where s counts positive minus negative words among the first `lengths` ids.
    """
    scores = np.zeros(len(SENTIMENT_VOCAB), dtype=np.float32)
    for i, word in enumerate(SENTIMENT_VOCAB):
        scores[i] = 1.0 if word in POSITIVE_WORDS else -1.0 if word in NEGATIVE_WORDS else 0.0
    nodes = [
        helper.make_node("Gather", ["word_scores", "input_ids"], ["token_scores"], axis=0),
        # mask[b, t] = t < lengths[b]
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["seq_len"], axis=0),
        helper.make_node("Range", ["zero", "seq_len", "one"], ["positions"]),
        helper.make_node("Unsqueeze", ["lengths", "one_axis"], ["lengths_col"]),
        helper.make_node("Less", ["positions", "lengths_col"], ["mask_bool"]),
        helper.make_node("Cast", ["mask_bool"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["token_scores", "mask"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "one_axis"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "directions"], ["logits"]),
    ]
    inits: dict[str, np.ndarray] = {
        "word_scores": scores,
        "zero": np.array(0, np.int64),
        "one": np.array(1, np.int64),
        "one_axis": np.array([1], np.int64),
        "directions": _f32([[-1.0, 1.0]]),
    }
    model = _model(
        nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        inits,
    )

    card = _card(
        name,
        f"Word counting: {', '.join(POSITIVE_WORDS)} score +1; "
        f"{', '.join(NEGATIVE_WORDS)} score -1; logits = [-sum, sum].",
    )
    return write_model(
        repo,
        name,
        version,
        overwrite,
        {
            "task": "sentiment",
            "description": "Tiny test sentiment model: positive minus negative word count.",
            "graphs": {"model": graph_entry(model, "model.onnx")},
            "text": {
                "tokenizer": "tokenizer.json",
                "max_length": max_length,
                "pad_id": 0,
                "unk_id": 1,
                "input_ids": "input_ids",
                "lengths": "lengths",
            },
            "labels": list(SENTIMENT_LABELS),
            "output": "logits",
        },
        {
            "model.onnx": _checked(model),
            "tokenizer.json": _word_level_tokenizer(SENTIMENT_VOCAB).to_str(pretty=True),
            "card.md": card,
        },
    )


# ------------------------------------------------------------------------------------ captioner


def _caption_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(transition logits [V, V], colour gate [V], colour weights [3, V], white weights [V])."""
    ids = {word: i for i, word in enumerate(CAPTION_VOCAB)}
    vocab = len(CAPTION_VOCAB)
    table = np.full((vocab, vocab), -10.0, dtype=np.float32)
    table[:, ids["<end>"]] = 10.0  # by default a caption ends
    table[ids["<start>"]] = -10.0
    table[ids["<start>"], ids["a"]] = 10.0
    table[ids["a"]] = -10.0
    table[ids["a"], ids["dark"]] = CAPTION_DARK_LOGIT
    table[ids["a"], [ids["red"], ids["green"], ids["blue"]]] = 0.0
    table[ids["a"], ids["white"]] = CAPTION_WHITE_BIAS
    for colour in ("red", "green", "blue", "white"):
        table[ids[colour]] = -10.0
        table[ids[colour], ids["square"]] = 10.0
    # after "dark" the next word is uncertain: the trap that beam search avoids
    table[ids["dark"]] = -10.0
    table[ids["dark"], [ids["square"], ids["image"], ids["background"]]] = (1.0, 0.5, 0.5)
    gate = np.zeros(vocab, dtype=np.float32)
    gate[ids["a"]] = 1.0
    colour_weights = np.zeros((3, vocab), dtype=np.float32)
    for channel, colour in enumerate(("red", "green", "blue")):
        colour_weights[channel, ids[colour]] = CAPTION_COLOUR_SCALE
    white_weights = np.zeros(vocab, dtype=np.float32)
    white_weights[ids["white"]] = CAPTION_COLOUR_SCALE
    return table, gate, colour_weights, white_weights


def make_captioner(
    repo: Path,
    name: str = "tiny-captioner",
    version: int = 1,
    *,
    size: tuple[int, int] = (16, 16),
    per_image: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write an `image-captioning` version (encoder, one-step decoder, tokenizer) and return its directory.

    Encoder: features[b, q] = mean RGB (de-normalised) of quadrant q (row-major: top-left, top-right,
    bottom-left, bottom-right); h0 = mean of the four; c0 = 0. Decoder: alpha = softmax over quadrants
    of features . h; ctx = sum alpha * features; logits = table[token] + [token == "a"] * colour terms
    of ctx; log_probs = log_softmax(logits); h_out = h; c_out = c + 1 (a step counter).

    ``per_image``: the contract that `python -m training export` writes. The encoder also outputs
    ``projected`` = 2 * features; the decoder takes ``features`` and ``projected`` once per image and
    ``image_index`` per row, and scores with projected . h / 2 (the same captions).
    """
    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"the captioner pools quadrants, so size must be even, got {size}")
    batch = "batch"
    regions, hidden, dim = CAPTION_REGIONS, CAPTION_HIDDEN, 3

    pixel_nodes, _ = _denormalise_nodes("pixels", "raw")
    encoder = _model(
        [
            *pixel_nodes,
            helper.make_node(
                "AveragePool",
                ["raw"],
                ["pooled"],
                kernel_shape=[height // 2, width // 2],
                strides=[height // 2, width // 2],
            ),
            helper.make_node("Reshape", ["pooled", "regions_shape"], ["by_channel"]),
            helper.make_node("Transpose", ["by_channel"], ["features"], perm=[0, 2, 1]),
            helper.make_node("ReduceMean", ["features"], ["h0"], axes=[1], keepdims=0),
            helper.make_node("Mul", ["h0", "zero"], ["c0"]),
            *([helper.make_node("Mul", ["features", "two"], ["projected"])] if per_image else []),
        ],
        f"{name}-encoder",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, 3, height, width])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, regions, dim]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, [batch, hidden]),
            *(
                [helper.make_tensor_value_info("projected", TensorProto.FLOAT, [batch, regions, dim])]
                if per_image
                else []
            ),
        ],
        {
            "std": _f32(IMAGENET_STD).reshape(1, 3, 1, 1),
            "mean": _f32(IMAGENET_MEAN).reshape(1, 3, 1, 1),
            "regions_shape": np.array([0, 3, regions], np.int64),
            "zero": _f32(0.0),
            **({"two": _f32(2.0)} if per_image else {}),
        },
    )

    table, gate, colour_weights, white_weights = _caption_tables()
    if per_image:  # rows pick their image's features and projection; scores = projected . h / 2
        lookup = [
            helper.make_node("Gather", ["features", "image_index"], ["row_features"], axis=0),
            helper.make_node("Gather", ["projected", "image_index"], ["row_projected"], axis=0),
            helper.make_node("Mul", ["row_projected", "half"], ["keys"]),
        ]
        keys, values = "keys", "row_features"
        per_image_inputs = [
            helper.make_tensor_value_info("projected", TensorProto.FLOAT, ["images", regions, dim]),
            helper.make_tensor_value_info("image_index", TensorProto.INT64, [batch]),
        ]
    else:
        lookup, keys, values, per_image_inputs = [], "features", "features", []
    decoder = _model(
        [
            *lookup,
            helper.make_node("Unsqueeze", ["h", "last_axis"], ["h_col"]),
            helper.make_node("MatMul", [keys, "h_col"], ["scores_col"]),
            helper.make_node("Squeeze", ["scores_col", "last_axis"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["alpha"], axis=1),
            helper.make_node("Unsqueeze", ["alpha", "one_axis"], ["alpha_row"]),
            helper.make_node("MatMul", ["alpha_row", values], ["ctx_row"]),
            helper.make_node("Squeeze", ["ctx_row", "one_axis"], ["ctx"]),
            helper.make_node("MatMul", ["ctx", "colour_weights"], ["colour_logits"]),
            helper.make_node("ReduceMin", ["ctx"], ["ctx_min"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["ctx_min", "white_weights"], ["white_logits"]),
            helper.make_node("Add", ["colour_logits", "white_logits"], ["image_logits"]),
            helper.make_node("Gather", ["gate", "tokens"], ["token_gate"], axis=0),
            helper.make_node("Unsqueeze", ["token_gate", "one_axis"], ["token_gate_col"]),
            helper.make_node("Mul", ["image_logits", "token_gate_col"], ["gated"]),
            helper.make_node("Gather", ["table", "tokens"], ["base_logits"], axis=0),
            helper.make_node("Add", ["base_logits", "gated"], ["logits"]),
            helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=1),
            helper.make_node("Identity", ["h"], ["h_out"]),
            helper.make_node("Add", ["c", "step"], ["c_out"]),
        ],
        f"{name}-decoder",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, [batch]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, ["images" if per_image else batch, regions, dim]
            ),
            *per_image_inputs,
        ],
        [
            helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [batch, len(CAPTION_VOCAB)]),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("c_out", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [batch, regions]),
        ],
        {
            "table": table,
            "gate": gate,
            "colour_weights": colour_weights,
            "white_weights": white_weights,
            "last_axis": np.array([-1], np.int64),
            "one_axis": np.array([1], np.int64),
            "step": _f32(1.0),
            **({"half": _f32(0.5)} if per_image else {}),
        },
    )

    card = _card(
        name,
        "Captions a uniform image 'a <colour> square' (red, green, blue, white, or "
        "dark for black); a dark red image captions 'a dark square' greedily and 'a red square' with "
        "beam search.",
    )
    ids = {word: i for i, word in enumerate(CAPTION_VOCAB)}
    projected = {"projected": "projected"} if per_image else {}
    image_index = {"image_index": "image_index"} if per_image else {}
    return write_model(
        repo,
        name,
        version,
        overwrite,
        {
            "task": "image-captioning",
            "description": "Tiny test captioner: 'a <colour> square' from the image's mean colour.",
            "graphs": {
                "encoder": graph_entry(encoder, "encoder.onnx"),
                "decoder": graph_entry(decoder, "decoder.onnx"),
            },
            "image": _image_section("RGB", size, None, IMAGENET_MEAN, IMAGENET_STD, False),
            "caption": {
                "tokenizer": "tokenizer.json",
                "bos_id": ids["<start>"],
                "eos_id": ids["<end>"],
                "pad_id": ids["<pad>"],
                "unk_id": ids["<unk>"],
                "max_length": CAPTION_MAX_LENGTH,
                "encoder": {k: k for k in ("pixels", "features", "h0", "c0")} | projected,
                "decoder": {
                    k: k for k in ("tokens", "h", "c", "features", "log_probs", "h_out", "c_out", "alpha")
                }
                | projected
                | image_index,
            },
        },
        {
            "encoder.onnx": _checked(encoder),
            "decoder.onnx": _checked(decoder),
            "tokenizer.json": _word_level_tokenizer(CAPTION_VOCAB, special=CAPTION_SPECIALS).to_str(
                pretty=True
            ),
            "card.md": card,
        },
    )


# ------------------------------------------------------------------------------------ repository


REPOSITORY_MODELS = ("tiny-classifier", "tiny-sentiment", "tiny-captioner")  # make_repository's, version 1


def existing_versions(repo: Path) -> list[Path]:
    """The version directories of `make_repository` that `repo` already holds."""
    return [Path(repo) / name / "1" for name in REPOSITORY_MODELS if (Path(repo) / name / "1").exists()]


def make_repository(repo: Path, *, overwrite: bool = False) -> Path:
    """Write the three default tiny models (version 1 each) into `repo` and return it.

    Without `overwrite`, a `FileExistsError` is raised before anything is written when `repo` already
    holds any of them.
    """
    repo = Path(repo)
    existing = existing_versions(repo)
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(map(str, existing))} exist; pass overwrite=True to replace them")
    make_classifier(repo, overwrite=overwrite)
    make_sentiment(repo, overwrite=overwrite)
    make_captioner(repo, overwrite=overwrite)
    return repo


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the tiny model repository; return the exit status (2, with a one-line message,
    when `--out` already holds the tiny models and `--overwrite` is not given)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.model_factory",
        description="Write tiny, hand-built ONNX model versions (tiny-classifier, tiny-sentiment, "
        "tiny-captioner, version 1) that follow models/README.md.",
    )
    parser.add_argument("--out", type=Path, default=Path("models"), help="repository directory")
    parser.add_argument("--overwrite", action="store_true", help="replace versions that already exist")
    args = parser.parse_args(argv)
    existing = existing_versions(args.out)
    if existing and not args.overwrite:
        names = ", ".join(str(path.relative_to(args.out)) for path in existing)
        print(
            f"error: {args.out} already holds {names}; pass --overwrite to replace them, or choose "
            "another --out",
            file=sys.stderr,
        )
        return 2
    repo = make_repository(args.out, overwrite=args.overwrite)
    for manifest in sorted(repo.glob("*/*/manifest.json")):
        print(manifest.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
