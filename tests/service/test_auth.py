"""API keys: off by default; with ``api_keys_file``, every endpoint but health needs a key of its scope,
given as a Bearer token or X-API-Key, refused with 401 (and WWW-Authenticate) or 403 in the one error
shape (the v2 protocol's under /v2); tritonclient works with a key."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton_http
from fastapi.testclient import TestClient
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from service.keys import main as keys_main
from service.settings import Settings

from .conftest import ROOT, error, running_client, running_server

UNAUTHORIZED = (
    "this endpoint needs an API key (Authorization: Bearer <key>, or X-API-Key); the request has no API key"
)


def new_key(keys_file: Path, scope: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert keys_main(["new", "--scope", scope, "--file", str(keys_file)]) == 0
    return out.getvalue().strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A keys file with an inference key and an admin key."""
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    inference = new_key(path, "inference")
    admin = new_key(path, "admin")
    return path, inference, admin


@pytest.fixture(scope="module")
def client(tiny_repo: Path, keys: tuple[Path, str, str]) -> Iterator[TestClient]:
    with running_client(tiny_repo, api_keys_file=keys[0]) as shared:
        yield shared


def test_the_file_holds_hashes_not_keys(keys: tuple[Path, str, str]) -> None:
    path, inference, admin = keys
    text = path.read_text()
    assert inference not in text and admin not in text
    assert [line.split()[0] for line in text.splitlines()] == ["inference", "admin"]


def test_health_stays_open(client: TestClient) -> None:
    for path in ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"):
        assert client.get(path).status_code == 200, path


def test_no_key_or_an_unknown_key_is_401(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"text": "good"})
    assert (response.status_code, response.json()) == (401, error("unauthorized", UNAUTHORIZED, 401))
    assert response.headers["www-authenticate"] == 'Bearer realm="modelserve"'
    response = client.post("/v1/sentiment", json={"text": "good"}, headers={"X-API-Key": "guess"})
    assert response.status_code == 401
    assert response.json()["error"]["message"].endswith("the request has an API key that is not known")
    assert "guess" not in response.text
    assert client.get("/docs").status_code == 401
    v2 = client.get("/v2/models/tiny-sentiment")
    assert (v2.status_code, v2.json()) == (401, {"error": UNAUTHORIZED})


def test_a_key_as_bearer_or_header(client: TestClient, keys: tuple[Path, str, str]) -> None:
    _, inference, _ = keys
    for headers in ({"Authorization": f"Bearer {inference}"}, {"X-API-Key": inference}):
        response = client.post("/v1/sentiment", json={"text": "good"}, headers=headers)
        assert response.status_code == 200, response.text


def test_admin_endpoints_need_the_admin_scope(client: TestClient, keys: tuple[Path, str, str]) -> None:
    _, inference, admin = keys
    for method, path in (("GET", "/metrics"), ("GET", "/v1/models"), ("POST", "/v2/repository/index")):
        refused = client.request(method, path, headers={"X-API-Key": inference})
        assert refused.status_code == 403, path
        assert refused.json() == (
            {"error": "this endpoint needs an API key of scope admin"}
            if path.startswith("/v2")
            else error("forbidden", "this endpoint needs an API key of scope admin", 403)
        )
        assert client.request(method, path, headers={"X-API-Key": admin}).status_code == 200, path
    answer = client.post("/v1/sentiment", json={"text": "good"}, headers={"X-API-Key": admin})
    assert answer.status_code == 200  # admin includes inference


def test_refusals_are_counted(client: TestClient, keys: tuple[Path, str, str]) -> None:
    client.post("/v1/caption", files=[])
    metrics = client.get("/metrics", headers={"X-API-Key": keys[2]}).text
    assert 'status="401"' in metrics


def test_tritonclient_sends_the_key(tiny_repo: Path, keys: tuple[Path, str, str]) -> None:
    path, inference, _ = keys
    with running_server(tiny_repo, MODELSERVE_API_KEYS_FILE=str(path)) as url:
        client = triton_http.InferenceServerClient(url.removeprefix("http://"))
        text = triton_http.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"great film"], dtype=object))
        with pytest.raises(InferenceServerException, match="needs an API key"):
            client.infer("tiny-sentiment", [text])
        result = client.infer("tiny-sentiment", [text], headers={"Authorization": f"Bearer {inference}"})
        assert result.as_numpy("labels")[0, 0] == b"positive"
        assert client.is_server_live()  # health needs no key
        client.close()


def test_a_bad_keys_file_is_a_settings_error(tmp_path: Path) -> None:
    bad = tmp_path / "keys"
    bad.write_text("admin not-a-digest\n")
    with pytest.raises(ValidationError, match="line 1: the second field is not a sha256 hex digest"):
        Settings(api_keys_file=bad)
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ValidationError, match="holds no key"):
        Settings(api_keys_file=empty)
    started = subprocess.run(
        [sys.executable, "-m", "service", "--models-dir", str(tmp_path)],
        cwd=ROOT,
        env={"MODELSERVE_API_KEYS_FILE": str(bad), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "api_keys_file" in started.stderr and "Traceback" not in started.stderr


def test_the_hash_command_gives_the_line_of_a_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.keys", "hash", "--scope", "admin"],
        input="my-key\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    scope, digest = done.stdout.split()
    assert scope == "admin" and len(digest) == 64 and "my-key" not in done.stdout
