"""Model versions change at run time: with ``repository_poll_s``, a new version is loaded and warmed, then
served, and the old one retired (``latest:N``); a version that fails to load never displaces a working
one, and is tried again once its files change; a removed version hands back to the one before; the v2
repository extension loads and unloads; and 10 swaps under load fail no request."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.versions import VersionPolicy
from tests.model_factory import make_classifier

from .conftest import image_bytes, running_client, running_server, upload

RED = image_bytes((255, 0, 0))


def labels(version: int) -> list[str]:
    """Each version names its classes after itself: an answer tells which version computed it."""
    return [f"red{version}", f"green{version}", f"blue{version}"]


def publish(repo: Path, version: int, scratch: Path) -> Path:
    """Write a classifier version aside, then move it into the repository in one rename (as an export
    does): the service never sees half of it."""
    aside = make_classifier(scratch, version=version, labels=labels(version))
    target = repo / "tiny-classifier" / str(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(aside, target)
    return target


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def states(client: TestClient) -> dict[int, tuple[str, str | None, bool]]:
    models = client.get("/v1/models").json()["models"]
    return {
        m["version"]: (m["status"], m["reason"], m["serving"])
        for m in models
        if m["name"] == "tiny-classifier"
    }


def served_version(client: TestClient) -> int:
    response = client.post("/v1/classify-image", files=[upload(RED)], data={"model": "tiny-classifier"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["predictions"][0]["label"] == f"red{body['version']}"
    return int(body["version"])


@pytest.fixture
def polled(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    repo, scratch = tmp_path / "models", tmp_path / "scratch"
    publish(repo, 1, scratch)
    settings = {"repository_poll_s": 0.05, "version_policy": "latest:1", "retire_grace_s": 0.1}
    with running_client(repo, **settings) as client:
        yield client, scratch


def test_a_new_version_serves_once_loaded_and_the_old_one_retires(polled: tuple[TestClient, Path]) -> None:
    client, scratch = polled
    repo = Path(client.app.state.settings.models_dir)  # type: ignore[attr-defined]
    assert served_version(client) == 1
    publish(repo, 2, scratch)
    wait_for(lambda: served_version(client) == 2)
    assert states(client) == {
        1: ("unloaded", "not served under the version policy latest:1", False),
        2: ("ready", None, True),
    }
    pinned = client.post("/v1/classify-image", files=[upload(RED)], data={"model": "tiny-classifier:1"})
    assert pinned.status_code == 503 and "latest:1" in pinned.json()["error"]["message"]
    index = {(e["name"], e["version"]): e["state"] for e in client.post("/v2/repository/index").json()}
    assert index[("tiny-classifier", "1")] == "UNAVAILABLE" and index[("tiny-classifier", "2")] == "READY"


def test_a_broken_version_never_displaces_a_working_one(polled: tuple[TestClient, Path]) -> None:
    client, scratch = polled
    repo = Path(client.app.state.settings.models_dir)  # type: ignore[attr-defined]
    good = make_classifier(scratch, version=2, labels=labels(2))
    broken = repo / "tiny-classifier" / "2"
    shutil.copytree(good, broken)
    (broken / "model.onnx").write_bytes(b"half a graph")
    wait_for(lambda: states(client).get(2, ("",))[0] == "failed")
    assert served_version(client) == 1
    assert states(client)[2][1] == "model.onnx does not match its sha256 in manifest.json"
    shutil.copy(good / "model.onnx", broken / "model.onnx")  # the copy completes: tried again
    wait_for(lambda: served_version(client) == 2)
    shutil.rmtree(broken)  # removed: the version before serves again
    wait_for(lambda: served_version(client) == 1)
    assert set(states(client)) == {1}


def test_v2_unload_then_load(tiny_repo: Path, tmp_path: Path) -> None:
    repo = Path(shutil.copytree(tiny_repo, tmp_path / "models"))
    with running_client(repo, retire_grace_s=0, default_sentiment_model="tiny-sentiment") as client:
        assert client.post("/v2/repository/models/tiny-sentiment/unload").status_code == 200
        refused = client.post("/v1/sentiment", json={"text": "good"})
        assert refused.status_code == 503
        assert (
            refused.json()["error"]["message"] == "model 'tiny-sentiment' is not ready: unloaded by request"
        )
        assert client.get("/v2/models/tiny-sentiment/ready").status_code == 400
        assert client.post("/v2/repository/models/tiny-sentiment/load").status_code == 200
        assert client.post("/v1/sentiment", json={"text": "good"}).json()["results"][0]["label"] == "positive"
        assert client.post("/v2/repository/models/nope/unload").status_code == 404


def test_ten_swaps_under_load_fail_no_request(tmp_path: Path) -> None:
    repo, scratch = tmp_path / "models", tmp_path / "scratch"
    publish(repo, 1, scratch)
    env = {
        "MODELSERVE_REPOSITORY_POLL_S": "0.05",
        "MODELSERVE_VERSION_POLICY": "latest:1",
        "MODELSERVE_RETIRE_GRACE_S": "1",
    }
    answered: Counter[int] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/v1/classify-image", files=[upload(RED)])
                body = response.json()
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {body}")
                    continue
                version = body["version"]
                if body["results"][0]["predictions"][0]["label"] != f"red{version}":
                    failures.append(f"version {version} answered {body}")
                answered[version] += 1

    with running_server(repo, **env) as url:
        threads = [threading.Thread(target=client_loop, args=(url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: answered[1] > 0)
            for version in range(2, 12):
                publish(repo, version, scratch)
                wait_for(lambda v=version: answered[v] >= 10)  # type: ignore[misc]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert failures == []
    assert set(answered) == set(range(1, 12))
    assert sum(answered.values()) > 100


def test_version_policies() -> None:
    assert str(VersionPolicy.parse("latest:2")) == "latest:2"
    specific = VersionPolicy.parse("specific:3,1")
    assert specific.admits(3) and not specific.admits(2) and str(specific) == "specific:1,3"
    assert not VersionPolicy.parse("all").enough(100) and VersionPolicy.parse("latest:2").enough(2)
    with pytest.raises(ValueError, match="not all, latest:N or specific"):
        VersionPolicy.parse("latest:0")
