"""``ngrams``: a sentiment version plus an NB-weighted bag of word n-grams, as its next version.

The bag is NBSVM's recipe (Wang & Manning 2012, "Baselines and Bigrams"): binary features for the word
unigrams and hashed word bigrams of a text (a feature counts once however often it occurs), each scaled by
its naive-Bayes log-count ratio, then a logistic regression. On IMDB it reads every word of a review where
the LSTM reads a window, and the two disagree often enough that their combination beats both.

The new graph is the old one, fed its own window of the ids (the first ``max_length`` of the old version),
beside the bag, which reads up to the new ``max_length``; their class-1 margins are mixed by a logistic
regression fitted on a split neither was trained on, which also calibrates the result. Inputs, outputs and
the tokenizer stay as they were, so the service serves it like any sentiment version. Binary sentiment only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.text import pad_ids, window
from training.data import text
from training.options import NGRAM_BUCKETS as BUCKETS
from training.options import NGRAM_C as C
from training.options import NGRAM_MAX_LENGTH as MAX_LENGTH
from training.version import UnsuitableVersion, read_manifest, write_successor


def feature_ids(ids: np.ndarray, vocab: int, buckets: int) -> np.ndarray:
    """The distinct feature ids of one text's token ids: each unigram is its id, each bigram (a, b) is
    ``vocab + (a * vocab + b) % buckets``; what the graph computes for one row."""
    bigrams = vocab + (ids[:-1] * vocab + ids[1:]) % buckets
    return np.unique(np.concatenate([ids, bigrams]))


def feature_matrix(rows: list[np.ndarray], vocab: int, buckets: int):
    """Binary features [texts, vocab + buckets] (scipy CSR) of each row of token ids."""
    from scipy import sparse

    columns = [feature_ids(row, vocab, buckets) for row in rows]
    row_index = np.repeat(np.arange(len(rows)), [len(c) for c in columns])
    return sparse.csr_matrix(
        (np.ones(len(row_index), np.float32), (row_index, np.concatenate(columns))),
        shape=(len(rows), vocab + buckets),
    )


def fit_nb_logistic(features, targets: np.ndarray, c: float = C) -> tuple[np.ndarray, float]:
    """NBSVM with a logistic loss: the log-count ratio r of each feature (add-one smoothed), then L2
    logistic regression on the features scaled by r. Returns the weight per feature (coefficient times r,
    so a text's score is the sum over its features) and the intercept."""
    from sklearn.linear_model import LogisticRegression

    positive = 1 + np.asarray(features[targets == 1].sum(axis=0)).ravel()
    negative = 1 + np.asarray(features[targets == 0].sum(axis=0)).ravel()
    ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    regression = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
    regression.fit(features.multiply(ratio).tocsr(), targets)
    return (regression.coef_.ravel() * ratio).astype(np.float32), float(regression.intercept_[0])


def fit_mixture(margins: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and intercept of the logistic regression of ``targets`` on the branches' margins [N, 2]
    (almost unregularised: it has three parameters and thousands of samples)."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression(C=1e4, max_iter=1000).fit(margins, targets)
    return regression.coef_.ravel().astype(np.float32), float(regression.intercept_[0])


def token_rows(tokenizer, texts: list[str], max_length: int, unk_id: int) -> list[np.ndarray]:
    """Token ids per text as the service reads them: the first ``max_length``, at least one."""
    return [np.asarray(window(e.ids, max_length, unk_id), np.int64) for e in tokenizer.encode_batch(texts)]


def combined_graph(
    source: Path,
    spec: dict,
    window: int,
    vocab: int,
    weights: np.ndarray,
    intercept: float,
    mixture: np.ndarray,
    mixture_intercept: float,
    output: str,
) -> bytes:
    """``source``'s graph (a binary sentiment graph with ``spec``'s inputs and logits ``output``) reading
    the first ``window`` ids, beside the n-gram bag over all of them; ``output`` becomes [-m/2, m/2] with
    m = mixture . (lstm margin, bag score) + mixture_intercept."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    ids, lengths = spec["input_ids"], spec["lengths"]
    buckets = len(weights) - vocab
    # the old graph reads the window; its logits are renamed
    renamed = {ids: "window_ids", lengths: "window_lengths", output: "lstm_logits"}
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    constants: dict[str, np.ndarray] = {
        "ng_zero": np.array([0], np.int64),
        "ng_one": np.array([1], np.int64),
        "ng_minus_one": np.array([-1], np.int64),
        "ng_window": np.array([window], np.int64),
        "ng_scalar_zero": np.array(0, np.int64),
        "ng_scalar_one": np.array(1, np.int64),
        "ng_big": np.array([np.iinfo(np.int64).max], np.int64),
        "ng_vocab": np.array(vocab, np.int64),
        "ng_buckets": np.array(buckets, np.int64),
        # features that are padding (past a row's length) read this last, zero, weight
        "ng_absent": np.array(vocab + buckets, np.int64),
        "ng_weights": np.append(weights, np.float32(0)).astype(np.float32),
        "ng_intercept": np.array(intercept, np.float32),
        "ng_float_zero": np.array(0, np.float32),
        "ng_mixture": mixture.reshape(2, 1).astype(np.float32),
        "ng_mixture_intercept": np.array(mixture_intercept, np.float32),
        "ng_halves": np.array([[-0.5, 0.5]], np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, name=k) for k, v in constants.items())
    node = helper.make_node
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(
        [
            # the old graph's window, ahead of it: the first `window` ids, lengths at most `window`
            node("Slice", [ids, "ng_zero", "ng_window", "ng_one"], ["window_ids"]),
            node("Min", [lengths, "ng_window"], ["window_lengths"]),
            *old,
            # valid[b, t] = t < lengths[b]
            node("Shape", [ids], ["ng_shape"]),
            node("Gather", ["ng_shape", "ng_scalar_one"], ["ng_steps"], axis=0),
            node("Range", ["ng_scalar_zero", "ng_steps", "ng_scalar_one"], ["ng_positions"]),
            node("Unsqueeze", [lengths, "ng_one"], ["ng_lengths_column"]),
            node("Less", ["ng_positions", "ng_lengths_column"], ["ng_valid"]),
            node("Where", ["ng_valid", ids, "ng_absent"], ["ng_unigrams"]),
            # bigram (a, b) at t, valid when t + 1 < length
            node("Slice", [ids, "ng_zero", "ng_minus_one", "ng_one"], ["ng_first"]),
            node("Slice", [ids, "ng_one", "ng_big", "ng_one"], ["ng_second"]),
            node("Slice", ["ng_valid", "ng_one", "ng_big", "ng_one"], ["ng_pair_valid"]),
            node("Mul", ["ng_first", "ng_vocab"], ["ng_scaled"]),
            node("Add", ["ng_scaled", "ng_second"], ["ng_pair"]),
            node("Mod", ["ng_pair", "ng_buckets"], ["ng_bucket"]),
            node("Add", ["ng_bucket", "ng_vocab"], ["ng_bucket_id"]),
            node("Where", ["ng_pair_valid", "ng_bucket_id", "ng_absent"], ["ng_bigrams"]),
            node("Concat", ["ng_unigrams", "ng_bigrams"], ["ng_features"], axis=1),
            # each distinct feature once: sort the row, keep an id where it differs from the one before
            node("Shape", ["ng_features"], ["ng_feature_shape"]),
            node("Slice", ["ng_feature_shape", "ng_one", "ng_big", "ng_zero"], ["ng_count"]),
            node("TopK", ["ng_features", "ng_count"], ["ng_sorted", "ng_order"], axis=1, largest=0),
            node("Slice", ["ng_sorted", "ng_zero", "ng_minus_one", "ng_one"], ["ng_before_tail"]),
            node("Slice", ["ng_sorted", "ng_zero", "ng_one", "ng_one"], ["ng_head"]),
            node("Sub", ["ng_head", "ng_one"], ["ng_before_head"]),  # differs from the first id
            node("Concat", ["ng_before_head", "ng_before_tail"], ["ng_before"], axis=1),
            node("Equal", ["ng_sorted", "ng_before"], ["ng_repeat"]),
            node("Gather", ["ng_weights", "ng_sorted"], ["ng_feature_weights"], axis=0),
            node("Where", ["ng_repeat", "ng_float_zero", "ng_feature_weights"], ["ng_counted"]),
            node("ReduceSum", ["ng_counted", "ng_one"], ["ng_sum"], keepdims=1),
            node("Add", ["ng_sum", "ng_intercept"], ["ng_score"]),
            # the LSTM's class-1 margin beside the bag's score, mixed
            node("Slice", ["lstm_logits", "ng_one", "ng_big", "ng_one"], ["ng_lstm_positive"]),
            node("Slice", ["lstm_logits", "ng_zero", "ng_one", "ng_one"], ["ng_lstm_negative"]),
            node("Sub", ["ng_lstm_positive", "ng_lstm_negative"], ["ng_lstm_margin"]),
            node("Concat", ["ng_lstm_margin", "ng_score"], ["ng_margins"], axis=1),
            node("MatMul", ["ng_margins", "ng_mixture"], ["ng_mixed"]),
            node("Add", ["ng_mixed", "ng_mixture_intercept"], ["ng_margin"]),
            node("Mul", ["ng_margin", "ng_halves"], [output]),
        ]
    )
    del graph.value_info[:]  # shapes inside the old graph no longer hold for renamed values
    onnx.checker.check_model(model)
    assert all(o.name == output for o in graph.output) and graph.output[0].type.tensor_type.elem_type == (
        TensorProto.FLOAT
    )
    return model.SerializeToString()


def ngram_version(
    version_dir: Path,
    data: Path,
    fit_split: str,
    *,
    train_split: str = "train",
    buckets: int = BUCKETS,
    max_length: int = MAX_LENGTH,
    c: float = C,
    out_root: Path | None = None,
) -> Path:
    """Fit the bag on ``data``/``train_split`` and the mixture on ``fit_split`` (sliced as evaluate reads
    it), check the new graph against the same computation in numpy, and write it as the next version of
    the same model; return its directory."""
    from tokenizers import Tokenizer

    from training.evaluate import predict, split_rows

    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    spec = manifest.get("text") or {}
    if manifest.get("task") != "sentiment" or len(manifest.get("labels", [])) != 2 or not spec.get("lengths"):
        raise UnsuitableVersion(
            f"{version_dir}: ngrams needs a binary sentiment version whose graph takes lengths"
        )
    if manifest.get("output") != "logits":
        raise UnsuitableVersion(f"{version_dir}: ngrams needs a graph that outputs logits")
    if max_length < spec["max_length"]:
        raise UnsuitableVersion(
            f"--max-length {max_length} is below the {spec['max_length']} words {version_dir} reads: the new "
            "version reads at least what the old one did"
        )
    tokenizer = Tokenizer.from_file(str(version_dir / spec["tokenizer"]))
    vocab = tokenizer.get_vocab_size()

    def rows_and_targets(split: str) -> tuple[list[np.ndarray], np.ndarray]:
        name, selected = split_rows(split)
        texts, raw = text.load_text(data, name)
        targets = np.asarray(text.encode_labels(raw[selected], manifest["labels"]))
        return token_rows(tokenizer, texts[selected], max_length, spec["unk_id"]), targets

    train_rows, train_targets = rows_and_targets(train_split)
    weights, intercept = fit_nb_logistic(feature_matrix(train_rows, vocab, buckets), train_targets, c)
    fit_rows, fit_targets = rows_and_targets(fit_split)
    scores = feature_matrix(fit_rows, vocab, buckets) @ weights + intercept
    logits, _ = predict(version_dir, manifest, data, fit_split)
    margins = np.stack([logits[:, 1] - logits[:, 0], scores], axis=1)
    mixture, mixture_intercept = fit_mixture(margins, fit_targets)
    accuracy = {
        "lstm": float(np.mean((margins[:, 0] > 0) == fit_targets)),
        "ngrams": float(np.mean((scores > 0) == fit_targets)),
        "combined": float(np.mean((margins @ mixture + mixture_intercept > 0) == fit_targets)),
    }
    print(
        f"{manifest['name']} v{manifest['version']} on {fit_split} ({len(fit_targets)} samples): accuracy "
        + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items())
        + f"; mixture {mixture.round(4).tolist()} + {mixture_intercept:.4f}"
    )
    graph = manifest["graphs"]["model"]
    step = {
        "method": "NBSVM (Wang & Manning 2012) with a logistic loss: binary word unigrams and hashed "
        "bigrams scaled by their naive-Bayes log-count ratios",
        "buckets": buckets,
        "c": c,
        "from_version": manifest["version"],
        "lstm_window": spec["max_length"],
        "max_length": max_length,
        "trained_on": f"{Path(data).resolve()} {train_split} ({len(train_targets)} samples)",
        "mixture_fitted_on": f"{Path(data).resolve()} {fit_split} ({len(fit_targets)} samples)",
        "mixture": {"lstm": float(mixture[0]), "ngrams": float(mixture[1]), "intercept": mixture_intercept},
        "fit_split_accuracy": accuracy,
        "command": f"python -m training ngrams {version_dir} --data {data} --split '{fit_split}'"
        f" --buckets {buckets} --max-length {max_length} --c {c}",
    }
    combined = combined_graph(
        version_dir / graph["file"],
        spec,
        spec["max_length"],
        vocab,
        weights,
        intercept,
        mixture,
        mixture_intercept,
        graph["outputs"][0]["name"],
    )
    _check(combined, spec, fit_rows, margins @ mixture + mixture_intercept)
    new_dir = write_successor(
        version_dir,
        manifest,
        combined,
        ("ngrams", step),
        f"Binary sentiment of English text: v{manifest['version']}'s model on the first {spec['max_length']} "
        f"words, mixed with an NB-weighted bag of word unigrams and bigrams over the first {max_length}.",
        out_root,
        text={**spec, "max_length": max_length},
    )
    print(f"wrote {new_dir}")
    return new_dir


def _check(graph: bytes, spec: dict, rows: list[np.ndarray], expected: np.ndarray, batch: int = 64) -> None:
    """The combined graph's margins equal numpy's on ``rows``, padded in batches as the service pads them
    (raises before anything is written)."""
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = []
    for start in range(0, len(rows), batch):
        ids, lengths = pad_ids(rows[start : start + batch], spec["pad_id"])
        logits = session.run(None, {spec["input_ids"]: ids, spec["lengths"]: lengths})[0]
        got.append(logits[:, 1] - logits[:, 0])
    worst = float(np.abs(np.concatenate(got) - expected).max())
    if worst > 1e-3 * max(1.0, float(np.abs(expected).max())):
        raise AssertionError(f"the combined graph's margins differ from numpy's by up to {worst:.3g}")
    print(f"graph check: margins equal numpy's to {worst:.2g} on {len(rows)} texts")
