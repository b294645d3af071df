"""The Open Inference Protocol v2, spoken by the official client (``tritonclient[http]``) to a real uvicorn
process over the tiny models: health, metadata, the repository index, inference on every pipeline and
every graph in JSON and with binary data (answers equal to /v1's), and the errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from contract.manifest import Manifest
from contract.outputs import softmax
from service.preprocessing import TextEncoder, decode_image, image_batch, load_tokenizer
from tests.model_factory import make_captioner, make_classifier, make_repository

from .conftest import image_bytes, running_server, upload

MAX_BATCH_ITEMS = 4
MAX_UPLOAD_BYTES = 200_000
DARK_RED = (89, 0, 0)  # greedy and beam search caption it differently (tests/model_factory.py)
MODES = pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models, a captioner with the per-image decoder, and a version whose graph was replaced
    (it fails to load)."""
    repo = make_repository(tmp_path_factory.mktemp("models"))
    make_captioner(repo, name="tiny-captioner-pi", per_image=True)
    broken = make_classifier(repo, name="broken-classifier")
    (broken / "model.onnx").write_bytes(b"not onnx")
    return repo


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[str]:
    limits = {
        "MODELSERVE_MAX_BATCH_ITEMS": str(MAX_BATCH_ITEMS),
        "MODELSERVE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    }
    with running_server(repo, **limits) as url:
        yield url


@pytest.fixture
def triton(server: str) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(server.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server) as client:
        yield client


def manifest(repo: Path, name: str) -> Manifest:
    return Manifest.read(repo / name / "1" / "manifest.json")


def infer(
    triton: triton_http.InferenceServerClient,
    model: str,
    inputs: dict[str, np.ndarray],
    outputs: list[str],
    binary: bool,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Infer through tritonclient, inputs and outputs all as JSON or all as binary data; checks the
    outputs came back in the form asked for."""
    tensors = []
    for name, array in inputs.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    requested = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    result = triton.infer(model, tensors, outputs=requested, **options)
    arrays = {}
    for name in outputs:
        output = result.get_output(name)
        assert ("binary_data_size" in output.get("parameters", {})) is binary
        assert ("data" in output) is not binary
        arrays[name] = result.as_numpy(name)
    return arrays


def text(array: np.ndarray) -> list[Any]:
    """A BYTES output as nested lists of str (JSON gives str, binary data gives bytes)."""
    return np.vectorize(lambda x: x.decode() if isinstance(x, bytes) else x, otypes=[object])(array).tolist()


def images_tensor(files: list[bytes], binary: bool) -> np.ndarray:
    """A BYTES input of encoded image files: raw with binary data, base64 in JSON."""
    return np.array(files if binary else [base64.b64encode(f) for f in files], dtype=object)


def raises(status: str, message: str) -> Any:
    """The tritonclient exception for an error answer, matched on status and whole message."""

    class Matcher:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
            assert isinstance(exc, InferenceServerException), f"no InferenceServerException, got {exc!r}"
            assert (exc.status(), exc.message()) == (status, message)
            return True

    return Matcher()


# ------------------------------------------------------------------------------- health and metadata


def test_health(triton: triton_http.InferenceServerClient, http: httpx.Client) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("tiny-classifier")
    assert triton.is_model_ready("tiny-captioner.decoder", "1")
    assert not triton.is_model_ready("broken-classifier")
    assert not triton.is_model_ready("tiny-classifier", "2")
    live, ready = http.get("/v2/health/live"), http.get("/v2/health/ready")
    assert (live.status_code, live.content, ready.status_code, ready.content) == (200, b"", 200, b"")
    assert http.get("/v2/models/broken-classifier/ready").status_code == 400
    assert http.get("/v2/models/nope/ready").json() == {"error": "unknown model 'nope'"}


def test_server_metadata(triton: triton_http.InferenceServerClient) -> None:
    assert triton.get_server_metadata() == {
        "name": "modelserve",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data", "model_repository"],
    }


def test_pipeline_metadata(triton: triton_http.InferenceServerClient) -> None:
    classes = [{"datatype": "BYTES", "name": "labels"}, {"datatype": "FP32", "name": "probabilities"}]
    image = [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    expected = {
        "tiny-classifier": (
            "modelserve_image_classification",
            image,
            [{**t, "shape": [-1, 3]} for t in classes],
        ),
        "tiny-sentiment": (
            "modelserve_sentiment",
            [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            [{**t, "shape": [-1, 2]} for t in classes],
        ),
        "tiny-captioner": (
            "modelserve_image_captioning",
            image,
            [
                {"name": "caption", "datatype": "BYTES", "shape": [-1]},
                {"name": "score", "datatype": "FP32", "shape": [-1]},
            ],
        ),
    }
    for name, (platform, inputs, outputs) in expected.items():
        metadata = triton.get_model_metadata(name)
        assert metadata == {
            "name": name,
            "versions": ["1"],
            "platform": platform,
            "inputs": inputs,
            "outputs": outputs,
        }
        assert triton.get_model_metadata(name, "1") == metadata


def test_graph_metadata_is_the_manifest(triton: triton_http.InferenceServerClient, repo: Path) -> None:
    datatypes = {"float32": "FP32", "int64": "INT64"}
    for model, key in [
        ("tiny-classifier", "model"),
        ("tiny-sentiment", "model"),
        ("tiny-captioner", "encoder"),
        ("tiny-captioner", "decoder"),
    ]:
        graph = manifest(repo, model).graphs[key]

        def tensors(specs: list[Any]) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": datatypes[t.dtype], "shape": t.shape} for t in specs]

        metadata = triton.get_model_metadata(f"{model}.{key}", "1")
        assert metadata == {
            "name": f"{model}.{key}",
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": tensors(graph.inputs),
            "outputs": tensors(graph.outputs),
        }
    decoder = triton.get_model_metadata("tiny-captioner.decoder")
    assert decoder["inputs"][0] == {"name": "tokens", "datatype": "INT64", "shape": [-1]}


def test_metadata_needs_no_model_config(triton: triton_http.InferenceServerClient) -> None:
    """Metadata comes from the manifest; there is no Triton model configuration to ask for."""
    assert triton.get_model_metadata("tiny-classifier.model")["inputs"][0]["shape"] == [-1, 3, 16, 16]
    with raises("404", "Not Found"):
        triton.get_model_config("tiny-classifier.model")


def test_metadata_errors(triton: triton_http.InferenceServerClient) -> None:
    with raises("404", "unknown model 'nope'"):
        triton.get_model_metadata("nope")
    with raises("404", "model 'tiny-classifier' has no version 2"):
        triton.get_model_metadata("tiny-classifier", "2")
    with raises("404", "unknown model 'tiny-classifier.encoder'"):
        triton.get_model_metadata("tiny-classifier.encoder")
    with raises("404", "unknown model 'tiny-classifier.'"):  # an empty graph name is no graph
        triton.get_model_metadata("tiny-classifier.")


def test_repository_index(triton: triton_http.InferenceServerClient, http: httpx.Client) -> None:
    index = triton.get_model_repository_index()
    reason = "model.onnx does not match its sha256 in manifest.json"
    assert index[:2] == [
        {"name": name, "version": "1", "state": "UNAVAILABLE", "reason": reason}
        for name in ("broken-classifier", "broken-classifier.model")
    ]
    ready = [
        "tiny-captioner",
        "tiny-captioner-pi",
        "tiny-captioner-pi.decoder",
        "tiny-captioner-pi.encoder",
        "tiny-captioner.decoder",
        "tiny-captioner.encoder",
        "tiny-classifier",
        "tiny-classifier.model",
        "tiny-sentiment",
        "tiny-sentiment.model",
    ]
    assert index[2:] == [{"name": n, "version": "1", "state": "READY", "reason": ""} for n in ready]
    assert http.post("/v2/repository/index", json={"ready": True}).json() == index[2:]
    assert http.post("/v2/repository/index", json={"ready": "yes"}).json() == {
        "error": "'ready' must be true or false"
    }
    triton.load_model("tiny-classifier")  # already served: a rescan that changes nothing
    assert triton.is_model_ready("tiny-classifier")
    with raises("400", f"no version of 'broken-classifier' loads: {reason}"):
        triton.load_model("broken-classifier")


# ---------------------------------------------------------------------------------------- pipelines


@MODES
def test_classification_pipeline_equals_v1(
    triton: triton_http.InferenceServerClient, http: httpx.Client, binary: bool
) -> None:
    files = [image_bytes((255, 0, 0)), image_bytes((0, 200, 0)), image_bytes((0, 0, 200), "JPEG")]
    out = infer(
        triton,
        "tiny-classifier",
        {"image": images_tensor(files, binary)},
        ["labels", "probabilities"],
        binary,
    )
    v1 = http.post("/v1/classify-image", files=[upload(f) for f in files], data={"top_k": "3"}).json()
    assert text(out["labels"]) == [[p["label"] for p in r["predictions"]] for r in v1["results"]]
    assert out["probabilities"].tolist() == [
        [np.float32(p["probability"]) for p in r["predictions"]] for r in v1["results"]
    ]
    assert [row[0] for row in text(out["labels"])] == ["red", "green", "blue"]


@MODES
def test_sentiment_pipeline_equals_v1(
    triton: triton_http.InferenceServerClient, http: httpx.Client, binary: bool
) -> None:
    texts = ["A great film, I love it.", "Awful.", "The film was not bad, it was terrible. Ünïcode."]
    data = np.array([t.encode() for t in texts], dtype=object)
    out = infer(triton, "tiny-sentiment", {"text": data}, ["labels", "probabilities"], binary)
    v1 = http.post("/v1/sentiment", json={"texts": texts}).json()["results"]
    ranked = [sorted(r["probabilities"].items(), key=lambda item: -item[1]) for r in v1]
    assert text(out["labels"]) == [[label for label, _ in row] for row in ranked]
    assert out["probabilities"].tolist() == [[np.float32(p) for _, p in row] for row in ranked]
    assert (
        [row[0] for row in text(out["labels"])]
        == [r["label"] for r in v1]
        == ["positive", "negative", "negative"]
    )


@MODES
def test_captioning_pipeline_equals_v1(
    triton: triton_http.InferenceServerClient, http: httpx.Client, binary: bool
) -> None:
    files = [image_bytes((0, 0, 255)), image_bytes(DARK_RED)]
    for beam_size, expected in [(1, "a dark square"), (3, "a red square")]:
        out = infer(
            triton,
            "tiny-captioner",
            {"image": images_tensor(files, binary)},
            ["caption", "score"],
            binary,
            parameters={"beam_size": beam_size},
        )
        v1 = http.post(
            "/v1/caption", files=[upload(f) for f in files], data={"beam_size": str(beam_size)}
        ).json()["results"]
        assert text(out["caption"]) == [r["caption"] for r in v1] == ["a blue square", expected]
        assert out["score"].tolist() == [np.float32(r["score"]) for r in v1]


def test_request_id_is_echoed(triton: triton_http.InferenceServerClient) -> None:
    tensor = triton_http.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"good"], dtype=object))
    result = triton.infer("tiny-sentiment", [tensor], request_id="request-42")
    assert result.get_response()["id"] == "request-42"
    assert result.get_response()["model_name"] == "tiny-sentiment"
    assert result.get_response()["model_version"] == "1"
    # No outputs named: every output, as binary data (what tritonclient asks for then).
    assert text(result.as_numpy("labels")) == [["positive", "negative"]]
    assert "id" not in triton.infer("tiny-sentiment", [tensor]).get_response()


# ------------------------------------------------------------------------------------------- graphs


@MODES
def test_classifier_graph_gives_v1_probabilities(
    triton: triton_http.InferenceServerClient, http: httpx.Client, repo: Path, binary: bool
) -> None:
    files = [image_bytes((255, 0, 0)), image_bytes((40, 50, 200), "JPEG")]
    spec = manifest(repo, "tiny-classifier")
    assert spec.image is not None and spec.labels is not None
    pixels = image_batch([decode_image(f, 10**6) for f in files], spec.image)
    logits = infer(triton, "tiny-classifier.model", {"pixels": pixels}, ["logits"], binary)["logits"]
    assert logits.dtype == np.float32 and logits.shape == (2, 3)
    v1 = http.post("/v1/classify-image", files=[upload(f) for f in files], data={"top_k": "3"}).json()
    for row, result in zip(softmax(logits), v1["results"], strict=True):
        by_label = {p["label"]: p["probability"] for p in result["predictions"]}
        assert row.tolist() == [np.float32(by_label[label]) for label in spec.labels]


@MODES
def test_sentiment_graph_gives_v1_probabilities(
    triton: triton_http.InferenceServerClient, http: httpx.Client, repo: Path, binary: bool
) -> None:
    texts = ["great great film", "bad", "the movie"]
    spec = manifest(repo, "tiny-sentiment")
    assert spec.text is not None and spec.labels is not None
    ids, lengths, _ = TextEncoder(
        load_tokenizer(repo / "tiny-sentiment" / "1" / "tokenizer.json"), spec.text
    ).encode(texts)
    out = infer(triton, "tiny-sentiment.model", {"input_ids": ids, "lengths": lengths}, ["logits"], binary)
    assert out["logits"].tolist() == [[-2.0, 2.0], [1.0, -1.0], [0.0, 0.0]]
    v1 = http.post("/v1/sentiment", json={"texts": texts}).json()["results"]
    assert softmax(out["logits"]).tolist() == [
        [np.float32(r["probabilities"][label]) for label in spec.labels] for r in v1
    ]


@MODES
def test_captioner_graphs_decode_the_v1_caption(
    triton: triton_http.InferenceServerClient, http: httpx.Client, repo: Path, binary: bool
) -> None:
    """Greedy decoding on the client, one decoder step per request, gives /v1's greedy captions."""
    files = [image_bytes((0, 255, 0)), image_bytes(DARK_RED), image_bytes((255, 255, 255))]
    spec = manifest(repo, "tiny-captioner")
    assert spec.image is not None and spec.caption is not None
    pixels = image_batch([decode_image(f, 10**6) for f in files], spec.image)
    encoded = infer(triton, "tiny-captioner.encoder", {"pixels": pixels}, ["features", "h0", "c0"], binary)
    features, h, c = encoded["features"], encoded["h0"], encoded["c0"]
    tokens = np.full(len(files), spec.caption.bos_id, dtype=np.int64)
    captions: list[list[int]] = [[] for _ in files]
    done = np.zeros(len(files), dtype=bool)
    for _ in range(spec.caption.max_length):
        step = infer(
            triton,
            "tiny-captioner.decoder",
            {"tokens": tokens, "h": h, "c": c, "features": features},
            ["log_probs", "h_out", "c_out"],
            binary,
        )
        tokens, h, c = step["log_probs"].argmax(axis=1).astype(np.int64), step["h_out"], step["c_out"]
        for i, token in enumerate(tokens.tolist()):
            if not done[i] and token != spec.caption.eos_id:
                captions[i].append(token)
        done |= tokens == spec.caption.eos_id
        if done.all():
            break
    tokenizer = load_tokenizer(repo / "tiny-captioner" / "1" / "tokenizer.json")
    decoded = [tokenizer.decode(ids) for ids in captions]
    v1 = http.post("/v1/caption", files=[upload(f) for f in files], data={"beam_size": "1"}).json()["results"]
    assert decoded == [r["caption"] for r in v1] == ["a green square", "a dark square", "a white square"]


# ------------------------------------------------------------------------------------------- errors


def test_inference_errors(triton: triton_http.InferenceServerClient) -> None:
    pixels = np.zeros((1, 3, 16, 16), dtype=np.float32)
    with raises("404", "unknown model 'nope'"):
        infer(triton, "nope", {"pixels": pixels}, ["logits"], binary=True)
    with raises("404", "model 'tiny-classifier.model' has no version 3"):
        infer(triton, "tiny-classifier.model", {"pixels": pixels}, ["logits"], binary=True, model_version="3")
    with raises("400", "input 'pixels' has datatype INT64; model 'tiny-classifier.model' expects FP32"):
        infer(triton, "tiny-classifier.model", {"pixels": pixels.astype(np.int64)}, ["logits"], binary=False)
    with raises(
        "400",
        "input 'pixels' has shape [1, 3, 8, 8]; model 'tiny-classifier.model' expects [-1, 3, 16, 16] "
        "(-1: any size from 1)",
    ):
        infer(
            triton, "tiny-classifier.model", {"pixels": pixels[:, :, :8, :8].copy()}, ["logits"], binary=True
        )
    with raises("400", "model 'tiny-classifier.model' has no output 'probabilities'; its outputs: logits"):
        infer(triton, "tiny-classifier.model", {"pixels": pixels}, ["probabilities"], binary=True)
    with raises("400", "model 'tiny-sentiment.model' needs input(s) lengths"):
        infer(
            triton, "tiny-sentiment.model", {"input_ids": np.ones((1, 2), np.int64)}, ["logits"], binary=True
        )
    with raises("400", "model 'tiny-classifier' has no input 'text'; its inputs: image"):
        infer(triton, "tiny-classifier", {"text": np.array([b"x"], dtype=object)}, ["labels"], binary=True)


@MODES
def test_bad_image_bytes(triton: triton_http.InferenceServerClient, binary: bool) -> None:
    files = [image_bytes(), b"not an image"]
    for model, output in [("tiny-classifier", "labels"), ("tiny-captioner", "caption")]:
        with raises("400", "image 1: the file is not an image"):
            infer(triton, model, {"image": images_tensor(files, binary)}, [output], binary)


def test_limits_and_graph_errors(triton: triton_http.InferenceServerClient) -> None:
    texts = np.array([b"good"] * (MAX_BATCH_ITEMS + 1), dtype=object)
    with raises(
        "413", f"{MAX_BATCH_ITEMS + 1} texts in one request, more than the limit of {MAX_BATCH_ITEMS}"
    ):
        infer(triton, "tiny-sentiment", {"text": texts}, ["labels"], binary=True)
    with raises("400", "text 0 is empty"):
        infer(triton, "tiny-sentiment", {"text": np.array([b"  "], dtype=object)}, ["labels"], binary=True)
    with raises("400", "text 0 is not UTF-8"):
        infer(triton, "tiny-sentiment", {"text": np.array([b"\xff"], dtype=object)}, ["labels"], binary=True)
    with raises("400", "parameter beam_size must be an integer between 1 and 8, got 0"):
        infer(
            triton,
            "tiny-captioner",
            {"image": np.array([image_bytes()], dtype=object)},
            ["caption"],
            binary=True,
            parameters={"beam_size": 0},
        )
    with pytest.raises(InferenceServerException) as info:
        ids, lengths = np.array([[99]], dtype=np.int64), np.array([1], dtype=np.int64)
        infer(triton, "tiny-sentiment.model", {"input_ids": ids, "lengths": lengths}, ["logits"], binary=True)
    assert info.value.status() == "400"
    assert info.value.message().startswith("model.onnx cannot run on these inputs:")
    assert "indices element out of data bounds" in info.value.message()


def test_graph_inputs_must_share_the_batch_size(triton: triton_http.InferenceServerClient) -> None:
    inputs = {
        "tokens": np.array([2, 2], dtype=np.int64),
        "h": np.zeros((3, 3), dtype=np.float32),
        "c": np.zeros((3, 3), dtype=np.float32),
        "features": np.zeros((3, 4, 3), dtype=np.float32),
    }
    with raises(
        "400",
        "the inputs disagree on the batch size (first dimension, batch): tokens 2, h 3, c 3, features 3",
    ):
        infer(triton, "tiny-captioner.decoder", inputs, ["log_probs"], binary=True)


def test_a_per_image_decoder_takes_rows_and_images_of_their_own_sizes(
    triton: triton_http.InferenceServerClient, http: httpx.Client, repo: Path
) -> None:
    """The per-image decoder's rows (``batch``) and images (``images``) differ in number: greedy decoding
    on the client with rows that repeat images gives each row its image's /v1 caption."""
    files = [image_bytes((0, 255, 0)), image_bytes((255, 255, 255))]
    spec = manifest(repo, "tiny-captioner-pi")
    assert spec.image is not None and spec.caption is not None
    pixels = image_batch([decode_image(f, 10**6) for f in files], spec.image)
    names = ["features", "h0", "c0", "projected"]
    encoded = infer(triton, "tiny-captioner-pi.encoder", {"pixels": pixels}, names, binary=True)
    image_index = np.array([0, 1, 1, 0], dtype=np.int64)
    h, c = encoded["h0"][image_index], encoded["c0"][image_index]
    tokens = np.full(len(image_index), spec.caption.bos_id, dtype=np.int64)
    per_image = {"features": encoded["features"], "projected": encoded["projected"]}
    captions: list[list[int]] = [[] for _ in image_index]
    for _ in range(4):  # "a <colour> square <end>"
        feeds = {"tokens": tokens, "h": h, "c": c, **per_image, "image_index": image_index}
        step = infer(triton, "tiny-captioner-pi.decoder", feeds, ["log_probs", "h_out", "c_out"], binary=True)
        tokens, h, c = step["log_probs"].argmax(axis=1).astype(np.int64), step["h_out"], step["c_out"]
        for row, token in enumerate(tokens.tolist()):
            if token != spec.caption.eos_id:
                captions[row].append(token)
    tokenizer = load_tokenizer(repo / "tiny-captioner-pi" / "1" / "tokenizer.json")
    v1 = http.post(
        "/v1/caption", files=[upload(f) for f in files], data={"model": "tiny-captioner-pi", "beam_size": "1"}
    ).json()["results"]
    assert [tokenizer.decode(ids) for ids in captions] == [v1[i]["caption"] for i in image_index]
    feeds = {"tokens": tokens, "h": h, "c": c, **per_image, "image_index": image_index}
    with raises(
        "400", "the inputs disagree on the batch size (first dimension, images): features 2, projected 1"
    ):
        infer(
            triton,
            "tiny-captioner-pi.decoder",
            feeds | {"projected": per_image["projected"][:1]},
            ["c_out"],
            True,
        )
    with pytest.raises(InferenceServerException) as info:  # an image that is not there
        infer(triton, "tiny-captioner-pi.decoder", feeds | {"image_index": image_index + 2}, ["c_out"], True)
    assert info.value.status() == "400"
    assert info.value.message().startswith("decoder.onnx cannot run on these inputs:")


# --------------------------------------------------------------------------- the wire, without the client


def test_malformed_requests(http: httpx.Client) -> None:
    url = "/v2/models/tiny-classifier.model/infer"

    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]

    assert error(http.post(url, content=b"{")) == (
        400,
        "the inference request is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    )
    assert error(http.post(url, json=[])) == (400, "the inference request must be a JSON object")
    assert error(http.post(url, json={"inputs": []})) == (400, "the request has no inputs")
    assert error(http.post(url, json={"inputs": [{"name": "pixels", "datatype": "FP32"}]})) == (
        400,
        "input 'pixels' has no 'shape'",
    )
    tensor = {"name": "pixels", "datatype": "FP32", "shape": [1, 3, 16, 16]}
    assert error(http.post(url, json={"inputs": [{**tensor, "data": [1.0] * 10}]})) == (
        400,
        "input 'pixels' has 10 elements, its shape [1, 3, 16, 16] needs 768",
    )
    assert error(http.post(url, json={"inputs": [{**tensor, "data": ["a"] * 768}]})) == (
        400,
        "input 'pixels': FP32 data must be numbers",
    )
    head = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": 3072}}]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))}
    assert error(http.post(url, content=head + b"\0" * 3000, headers=headers)) == (
        400,
        "input 'pixels': binary_data_size 3072 runs past the end of the body "
        "(3000 bytes of binary data left)",
    )
    assert error(http.post(url, content=head + b"\0" * 3080, headers=headers)) == (
        400,
        "the body has 3080 bytes of binary data after the JSON object, but the inputs' binary_data_size "
        "add up to 3072",
    )
    assert error(http.post(url, content=head, headers={"Inference-Header-Content-Length": "x"})) == (
        400,
        f"Inference-Header-Content-Length 'x' is not a length within the body of {len(head)} bytes",
    )
    # a digit to str.isdigit, not to int(); a value too long to quote whole
    for odd, quoted in (("\u00b2".encode("latin-1"), "'\u00b2'"), (b"9" * 5000, repr("9" * 40 + "..."))):
        assert error(http.post(url, content=head, headers={"Inference-Header-Content-Length": odd})) == (
            400,
            f"Inference-Header-Content-Length {quoted} is not a length within the body of {len(head)} bytes",
        )
    images = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}
    assert error(http.post("/v2/models/tiny-classifier/infer", json=images)) == (
        400,
        "input 'image' element 0 is not base64; in JSON, send each file base64-encoded",
    )


def test_nested_json_data_and_binary_bytes_by_hand(http: httpx.Client) -> None:
    flat = np.linspace(-2, 2, 768, dtype=np.float32)
    nested = {
        "name": "pixels",
        "datatype": "FP32",
        "shape": [1, 3, 16, 16],
        "data": flat.reshape(1, 3, 16, 16).tolist(),
    }
    logits = http.post("/v2/models/tiny-classifier.model/infer", json={"inputs": [nested]}).json()["outputs"][
        0
    ]
    flattened = http.post(
        "/v2/models/tiny-classifier.model/infer", json={"inputs": [{**nested, "data": flat.tolist()}]}
    ).json()["outputs"][0]
    assert logits == flattened and logits["shape"] == [1, 3]
    # BYTES in binary: a 4-byte little-endian length before each element.
    texts = [b"good", "très bien".encode()]
    raw = b"".join(len(t).to_bytes(4, "little") + t for t in texts)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "labels", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = http.post(
        "/v2/models/tiny-sentiment/infer",
        content=head + raw,
        headers={
            "Inference-Header-Content-Length": str(len(head)),
            "Content-Type": "application/octet-stream",
        },
    )
    length = int(response.headers["Inference-Header-Content-Length"])
    assert response.headers["content-type"] == "application/octet-stream"
    output = json.loads(response.content[:length])["outputs"][0]
    assert output == {
        "name": "labels",
        "datatype": "BYTES",
        "shape": [2, 2],
        "parameters": {"binary_data_size": 48},
    }
    expected = b"".join(
        len(t).to_bytes(4, "little") + t for t in [b"positive", b"negative", b"negative", b"positive"]
    )
    assert response.content[length:] == expected


def test_v2_errors_keep_their_shape_and_v1_keeps_its_own(http: httpx.Client) -> None:
    assert http.get("/v2/nowhere").json() == {"error": "Not Found"}
    assert http.get("/v2/models/tiny-classifier/infer").status_code == 405
    too_big = http.post("/v2/models/tiny-classifier/infer", content=b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert (too_big.status_code, too_big.json()) == (
        413,
        {"error": f"request body is larger than the limit of {MAX_UPLOAD_BYTES} bytes"},
    )
    not_ready = http.post("/v2/models/broken-classifier/infer", json={"inputs": []})
    assert (not_ready.status_code, not_ready.json()) == (
        503,
        {
            "error": "model 'broken-classifier' version 1 is not ready: "
            "model.onnx does not match its sha256 in manifest.json"
        },
    )
    assert http.get("/v1/nowhere").json() == {
        "error": {"code": "not_found", "message": "Not Found", "status": 404}
    }
    junk = http.post("/v1/classify-image", files=[upload(b"junk", "junk.png")]).json()
    assert junk["error"]["code"] == "invalid_image"


def test_requests_waiting_for_a_batch_do_not_hold_worker_threads(tiny_repo: Path) -> None:
    """48 concurrent requests, more than the 40 threads of the worker pool, all join one batch: a request
    waits for its batcher without holding a thread (holding one, only 40 could be queued and the batch
    would run at its 5 s delay with 40, then again with the rest)."""
    batching = json.dumps({"tiny-sentiment": {"max_size": 48, "max_delay_ms": 5000}})
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["great"]}]}

    async def send_all(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=48)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/v2/models/tiny-sentiment/infer", json=body) for _ in range(48))
            )
        return [answer.status_code for answer in answers]

    with running_server(tiny_repo, MODELSERVE_BATCHING=batching) as url:
        assert asyncio.run(send_all(url)) == [200] * 48
        metrics = httpx.get(f"{url}/metrics").text
    labels = '{model="tiny-sentiment",version="1"}'
    assert f"modelserve_batch_size_count{labels} 1.0" in metrics
    assert f"modelserve_batch_size_sum{labels} 48.0" in metrics


def test_strings_that_are_not_unicode_and_deep_nesting_are_400s(http: httpx.Client) -> None:
    """JSON can spell a lone surrogate ("\\ud800"), which is not Unicode: in a tensor's data it is refused,
    and quoted in an error message it is escaped (rendering it used to fail, a 500)."""

    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]

    def post(url: str, body: str) -> httpx.Response:
        return http.post(url, content=body.encode(), headers={"content-type": "application/json"})

    data = '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\\ud800"]}]}'
    assert error(post("/v2/models/tiny-sentiment/infer", data)) == (
        400,
        "input 'text': a string is not valid Unicode (a lone surrogate)",
    )
    name = '{"inputs": [{"name": "\\ud800", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}'
    response = post("/v2/models/tiny-sentiment/infer", name)
    assert b"'\\ud800'" in response.content  # the JSON escape, in valid UTF-8
    assert error(response) == (400, "model 'tiny-sentiment' has no input '\ud800'; its inputs: text")
    deep = "[" * 100_000
    assert error(post("/v2/models/tiny-sentiment/infer", deep)) == (
        400,
        "the inference request is nested too deeply",
    )
    assert error(post("/v2/repository/index", deep)) == (400, "the index request is nested too deeply")
    assert http.get("/v2/health/live").status_code == 200


def test_a_free_axis_after_the_first_is_held_to_max_axis_size(http: httpx.Client) -> None:
    """A token sequence costs in proportion to its length; /v1 truncates texts, /v2 graph inputs are held
    to max_axis_size (1024 by default)."""
    url = "/v2/models/tiny-sentiment.model/infer"

    def tensors(length: int) -> dict[str, Any]:
        return {
            "inputs": [
                {"name": "input_ids", "datatype": "INT64", "shape": [1, length], "data": [2] * length},
                {"name": "lengths", "datatype": "INT64", "shape": [1], "data": [length]},
            ]
        }

    assert http.post(url, json=tensors(1024)).status_code == 200
    response = http.post(url, json=tensors(1025))
    assert (response.status_code, response.json()) == (
        413,
        {"error": "input 'input_ids' has 1025 along axis 1, more than the limit of 1024 (max_axis_size)"},
    )
