"""Settings come from MODELSERVE_* variables; command-line options override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.__main__ import parse_args
from service.settings import DEFAULT_PROVIDERS, Settings


def test_environment_and_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSERVE_PORT", "9000")
    monkeypatch.setenv("MODELSERVE_MAX_UPLOAD_BYTES", "123")
    monkeypatch.setenv("MODELSERVE_PROVIDERS", '["CUDAExecutionProvider", "CPUExecutionProvider"]')
    overrides = parse_args(["--port", "8001", "--models-dir", "elsewhere", "--require-gpu"])
    settings = Settings(**overrides)
    assert (settings.port, settings.models_dir, settings.require_gpu) == (8001, Path("elsewhere"), True)
    assert settings.max_upload_bytes == 123
    assert settings.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_defaults() -> None:
    settings = Settings()
    assert settings.providers == DEFAULT_PROVIDERS
    assert DEFAULT_PROVIDERS == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert settings.default_image_classifier == "imagenet-lite0"
    assert settings.require_gpu is False


def test_a_model_s_own_queue_deadline() -> None:
    from service.batching import BatchConfig

    settings = Settings(
        batch_max_wait_ms=250,
        batching={"captioner": {"max_wait_ms": 0}, "pets-resnet18": {"max_wait_ms": 500, "max_size": 8}},
    )
    assert BatchConfig.for_model(settings, "sentiment-lstm").max_wait_s == 0.25
    assert BatchConfig.for_model(settings, "captioner").max_wait_s == 0.0
    pets = BatchConfig.for_model(settings, "pets-resnet18")
    assert (pets.max_wait_s, pets.max_size) == (0.5, 8)


def test_the_cpu_memory_arena_reaches_the_sessions() -> None:
    from service.providers import session_options

    assert session_options(Settings()).enable_cpu_mem_arena is True
    assert session_options(Settings(cpu_memory_arena=False)).enable_cpu_mem_arena is False
