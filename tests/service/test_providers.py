"""Which GPU providers can be created is found out once per process, with a one-node graph, and
onnxruntime's screenful of errors about the ones that cannot becomes one line each with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service import providers
from service.providers import CPU, CUDA, GPU_PROVIDERS, TENSORRT
from service.settings import Settings

from .conftest import ROOT, free_port

# What onnxruntime-gpu 1.31 wrote on a machine without the CUDA 13 libraries (colour codes included)
CUDA_OUTPUT = [
    "\x1b[1;31m2026-11-22 23:06:47.783671773 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 operator()] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:2043 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so with error: "
    "libcublasLt.so.13: cannot open shared object file: No such file or directory",
    "\x1b[m",
    "\x1b[0;93m2026-11-22 23:06:47.783704614 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1295 "
    "CreateExecutionProviderFactoryInstance] Failed to create CUDAExecutionProvider. Require cuDNN 9.* and "
    "CUDA 13.*. Please install all dependencies as mentioned in the GPU requirements page, make sure "
    "they're in the PATH, and that your GPU is supported.\x1b[m",
]


def test_the_probe_graph_is_valid_onnx_and_runs() -> None:
    model = onnx.load_from_string(providers._probe_model())
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(providers._probe_model(), providers=[CPU])
    (out,) = session.run(None, {"x": np.array([-2.0], np.float32)})
    assert out.tolist() == [0.0]
    (out,) = session.run(None, {"x": np.array([3.5], np.float32)})
    assert out.tolist() == [3.5]


def test_onnxruntime_output_is_taken_and_other_output_passes_through(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with providers._native_output() as lines:
        for line in CUDA_OUTPUT:
            os.write(2, (line + "\n").encode())
        print("*************** EP Error ***************")
        print("EP Error boom\n when using [('TensorrtExecutionProvider', {})]")
        print("Falling back to ['CPUExecutionProvider'] and retrying.")
        print("****************************************")
        os.write(2, b"another thread's log line\n")
        print("printed meanwhile")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == "another thread's log line\nprinted meanwhile\n"
    assert lines[0].startswith("2026-11-22 23:06:47.783671773 [E:onnxruntime:Default")  # no colour codes
    assert " when using [('TensorrtExecutionProvider', {})]" in lines
    assert "\x1b" not in "".join(lines)


def test_the_reason_is_read_from_onnxruntime_output() -> None:
    lines = [providers._ANSI.sub("", line) for line in CUDA_OUTPUT]
    assert providers._reason(CUDA, lines) == (
        "libonnxruntime_providers_cuda.so: libcublasLt.so.13: cannot open shared object file: "
        "No such file or directory; Require cuDNN 9.* and CUDA 13.*"
    )
    assert providers._reason(TENSORRT, lines) == ""  # nothing there is about TensorRT


@pytest.mark.parametrize("name", sorted(GPU_PROVIDERS))
def test_the_check_agrees_with_a_session_and_runs_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers, "_checks", {})
    probes = []
    probe = providers._probe

    def counting(*args: object, **kwargs: object) -> providers.ProviderCheck:
        probes.append(args[0])
        return probe(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(providers, "_probe", counting)
    settings = Settings(providers=[name, CPU])
    check = providers.check_provider(name, settings)
    assert providers.check_provider(name, settings) is check
    assert probes == [name]
    session = ort.InferenceSession(providers._probe_model(), providers=[name, CPU])
    assert check.usable == (name in session.get_providers())
    assert bool(check.reason) == (not check.usable)
    assert providers.usable_providers(settings) == ([name, CPU] if check.usable else [CPU])
    assert providers.unavailable_providers(settings) == ({} if check.usable else {name: check.reason})
    assert probes == [name]


def test_the_server_says_once_why_a_provider_is_not_used(tiny_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    port = free_port()
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--models-dir", str(tiny_repo), "--log-level", "warning"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["models"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert "EP Error" not in text and "[E:onnxruntime" not in text
    unavailable = models[0]["unavailable_providers"]
    assert all(m["unavailable_providers"] == unavailable for m in models)
    used = {p for m in models for p in m["providers"]}
    assert set(unavailable) == set(models[0]["requested_providers"]) - used
    for name, reason in unavailable.items():
        assert text.count(f"{name} cannot be created here") == 1
        assert reason in text


def test_a_provider_not_in_the_build_is_named_once(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It was logged again for every session (every graph, every padded size)."""
    monkeypatch.setattr(providers, "_unknown_logged", set())
    settings = Settings(models_dir=tiny_repo, providers=["NopeExecutionProvider", CPU])
    for _ in range(3):
        graph = tiny_repo / "tiny-classifier" / "1" / "model.onnx"
        assert providers.create_session(graph, settings).get_providers() == [CPU]
    warnings = [r.getMessage() for r in caplog.records if "not in this onnxruntime build" in r.getMessage()]
    assert warnings == ["execution providers not in this onnxruntime build, ignored: NopeExecutionProvider"]
