"""Batch padding (``batch_padding``) on real tiny models: a graph sees only power-of-two batch sizes, and
every request still gets exactly the answer it gets unpadded. And the GPU session set-up that the H100 run
showed was needed: a lost TensorRT does not cost CUDA its options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from contract.versions import discover
from service import providers
from service.repository import load_version, read_manifest
from service.runtimes import CaptionerRuntime, ClassifierRuntime, Runtime, SentimentRuntime, base
from service.runtimes.base import batch_rows, pad_rows, padded_size
from service.settings import Settings

TEXTS = ["a fine film", "dull", "not good at all, really not good", "great", "so so"]


class RecordingSession:
    """Stands in for a session: records the batch size of every run, then runs the real one."""

    def __init__(self, session: ort.InferenceSession, sizes: list[int]) -> None:
        self.session = session
        self.sizes = sizes

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[Any]:
        self.sizes.append(next(iter(feeds.values())).shape[0])
        return self.session.run(outputs, feeds)

    def get_providers(self) -> list[str]:
        return self.session.get_providers()


def load(repo: Path, name: str, padding: str) -> tuple[Runtime, list[int]]:
    """A loaded, warmed-up runtime of ``name`` with ``batch_padding=padding``, and the batch sizes its
    graphs run at from now on."""
    version = next(v for v in discover(repo) if v.name == name)
    settings = Settings(models_dir=repo, batch_padding=padding)
    runtime = load_version(read_manifest(version), version.path, settings)
    sizes: list[int] = []
    runtime.sessions = {key: RecordingSession(s, sizes) for key, s in runtime.sessions.items()}  # type: ignore[misc]
    for key, sized in runtime.sized_sessions.items():
        runtime.sized_sessions[key] = {n: RecordingSession(s, sizes) for n, s in sized.items()}  # type: ignore[misc]
    return runtime, sizes


def images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(count)
    return [Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)) for _ in range(count)]


def test_padded_sizes_are_powers_of_two() -> None:
    assert [padded_size(n) for n in (1, 2, 3, 4, 5, 8, 9, 31, 32, 33, 96)] == [
        1, 2, 4, 4, 8, 8, 16, 32, 32, 64, 128,
    ]  # fmt: skip


def test_pad_rows_repeats_the_last_row() -> None:
    value = np.arange(6).reshape(3, 2)
    assert pad_rows(value, 4).tolist() == [[0, 1], [2, 3], [4, 5], [4, 5]]


def test_batch_rows_needs_one_shared_first_axis() -> None:
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.zeros(3)}) == 3
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.zeros(2)}) is None
    assert batch_rows({"a": np.zeros((3, 2)), "b": np.float32(1)}) is None


def test_classifier_padded_runs_give_the_unpadded_answers(tiny_repo: Path) -> None:
    padded, sizes = load(tiny_repo, "tiny-classifier", "on")
    plain, plain_sizes = load(tiny_repo, "tiny-classifier", "off")
    assert isinstance(padded, ClassifierRuntime) and isinstance(plain, ClassifierRuntime)
    photos = images(5)
    got = padded.infer(padded.preprocess(photos))
    want = plain.infer(plain.preprocess(photos))
    assert sizes == [8] and plain_sizes == [5]
    assert got.shape == want.shape == (5, len(plain.labels))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sentiment_padded_runs_give_the_unpadded_answers(tiny_repo: Path) -> None:
    padded, sizes = load(tiny_repo, "tiny-sentiment", "on")
    plain, _ = load(tiny_repo, "tiny-sentiment", "off")
    assert isinstance(padded, SentimentRuntime) and isinstance(plain, SentimentRuntime)
    got = padded.predict(TEXTS)
    want = plain.predict(TEXTS)
    assert sizes == [8]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("contract", ["per_row", "per_image"])
def test_captioner_padded_decoding_gives_the_unpadded_captions(
    contract: str, tiny_repo: Path, per_image_repo: Path
) -> None:
    # per image: features and projected are shared by the rows, not padded with them
    repo = tiny_repo if contract == "per_row" else per_image_repo
    padded, sizes = load(repo, "tiny-captioner", "on")
    plain, _ = load(repo, "tiny-captioner", "off")
    assert isinstance(padded, CaptionerRuntime) and isinstance(plain, CaptionerRuntime)
    photos = images(3)
    got = padded.predict(photos, max_length=6, beam_size=3)
    want = plain.predict(photos, max_length=6, beam_size=3)
    assert [caption for caption, _ in got] == [caption for caption, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-5)
    assert sizes and all(size & (size - 1) == 0 for size in sizes)  # encoder 3 -> 4, decoder 9 -> 16
    assert 4 in sizes and 16 in sizes


def test_auto_pads_only_graphs_on_a_gpu_provider(tiny_repo: Path) -> None:
    runtime, _ = load(tiny_repo, "tiny-classifier", "auto")
    on_gpu = any(p != "CPUExecutionProvider" for s in runtime.providers().values() for p in s[:1])
    assert bool(runtime.sized_sessions) == on_gpu


class FallbackSession:
    """What onnxruntime hands back when TensorRT fails to load and it falls back to CUDA and CPU."""

    def __init__(self, providers: list[str]) -> None:
        self.providers = providers

    def get_providers(self) -> list[str]:
        return self.providers


def test_a_session_that_lost_tensorrt_is_made_again_with_the_cuda_options(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime's own fallback drops every provider option (device_id, memory limit); the service asks
    again without TensorRT, so that CUDA gets its options. (onnxruntime cannot be made to fall back to CUDA
    on a machine without a GPU, hence the stand-in sessions, and a provider check that let both through, as
    it does where TensorRT runs the one-node probe graph but not the model.)"""
    asked: list[list[str]] = []

    def session(path: Path, names: list[str], settings: Settings) -> FallbackSession:
        asked.append(names)
        return FallbackSession(["CUDAExecutionProvider", "CPUExecutionProvider"])

    monkeypatch.setattr(providers, "_session", session)
    monkeypatch.setattr(providers, "check_provider", lambda name, _: providers.ProviderCheck(name, True))
    built_in = [providers.TENSORRT, providers.CUDA, providers.CPU]
    monkeypatch.setattr(ort, "get_available_providers", lambda: built_in)
    settings = Settings(models_dir=tiny_repo)
    created = providers.create_session(tiny_repo / "model.onnx", settings)
    assert created.get_providers()[0] == providers.CUDA
    assert asked == [
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
    ]


def test_each_padded_size_runs_in_a_session_of_its_own(tiny_repo: Path) -> None:
    """Warm-up makes one session per power of two up to the batch limit, and a session never sees two
    batch sizes (what makes onnxruntime's CUDA convolutions set themselves up again)."""
    runtime, _ = load(tiny_repo, "tiny-classifier", "on")
    assert isinstance(runtime, ClassifierRuntime)
    sized = runtime.sized_sessions["model"]
    assert sorted(sized) == [1, 2, 4, 8, 16, 32]
    assert len({id(session) for session in sized.values()}) == 6
    seen: dict[int, list[int]] = {size: [] for size in sized}
    runtime.sized_sessions["model"] = {n: RecordingSession(s, seen[n]) for n, s in sized.items()}  # type: ignore[misc]
    for count in (3, 5, 3, 17, 1):
        assert runtime.infer(runtime.preprocess(images(count))).shape[0] == count
    assert seen == {1: [1], 2: [], 4: [4, 4], 8: [8], 16: [], 32: [32]}


def test_sessions_per_size_ask_for_the_providers_the_graph_got(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that failed for the graph's own session (TensorRT without its libraries: a second
    session each time, service/providers.py) is not tried again for every batch size."""
    asked: list[list[str]] = []
    create = base.create_session

    def recording(path: Path, settings: Settings) -> ort.InferenceSession:
        asked.append(list(settings.providers))
        return create(path, settings)

    monkeypatch.setattr(base, "create_session", recording)
    runtime, _ = load(tiny_repo, "tiny-classifier", "on")
    got = runtime.sessions["model"].get_providers()
    assert asked[0] == Settings(models_dir=tiny_repo).providers  # the graph's own session: the settings'
    assert len(asked) == 6 and all(names == got for names in asked[1:])  # sizes 2 to 32: what it got
