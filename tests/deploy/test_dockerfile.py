"""The Dockerfile, offline (no engine here, so nothing is built): hadolint finds nothing, what it copies
and runs exists, its settings are the service's, and the pinned requirements satisfy pyproject.toml."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import (
    PREFIX,
    ROOT,
    dockerfile_instructions,
    env_pairs,
    run_tool,
    settings_from,
    unknown_settings,
)

DOCKERFILE = ROOT / "Dockerfile"
# The images' platform, for which docker/lock.sh compiles the locks.
IMAGE_ENVIRONMENT = {"python_version": "3.12", "sys_platform": "linux", "platform_machine": "x86_64"}


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in dockerfile_instructions(DOCKERFILE):
        if keyword == "FROM":
            current = []
            result[arguments.split()[-1]] = current
        current.append((keyword, arguments))
    return result


def stage_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stages()[name]:
        if keyword == "ENV":
            env.update(env_pairs(arguments))
    return env


def test_hadolint_finds_nothing() -> None:
    result = run_tool("hadolint", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_ignores_only_justified_rules() -> None:
    config = (ROOT / ".hadolint.yaml").read_text()
    ignored = re.findall(r"^\s+- (DL\d+|SC\d+)\s*$", config, flags=re.MULTILINE)
    assert ignored, "nothing ignored: drop this test's premise"
    for rule in ignored:
        assert re.search(rf"#\s*{rule}\b.*\S", config), f"{rule} is ignored without a comment saying why"


def test_hadolint_does_check(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = run_tool("hadolint", "--config", str(ROOT / ".hadolint.yaml"), str(broken))
    assert result.returncode != 0 and "DL3002" in result.stdout  # last USER should not be root


def test_targets_and_the_default_one() -> None:
    names = list(stages())
    assert {"api", "train", "base-gpu", "base-cpu"} <= set(names)
    assert names[-1] == "api"  # a plain `docker build .` builds the serving image
    from_lines = {name: stage[0][1] for name, stage in stages().items()}
    assert from_lines["base-gpu"].startswith("${CUDA_IMAGE}")
    assert "ARG CUDA_IMAGE=nvidia/cuda:13." in DOCKERFILE.read_text()  # onnxruntime-gpu 1.31: CUDA 13
    assert "cudnn-runtime" in DOCKERFILE.read_text()


def test_the_serving_image_is_non_root_with_a_readiness_healthcheck() -> None:
    api = stages()["api"]
    users = [arguments for keyword, arguments in api if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    (healthcheck,) = [arguments for keyword, arguments in api if keyword == "HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "-m", "service.healthcheck"]')
    (cmd,) = [arguments for keyword, arguments in api if keyword == "CMD"]
    assert cmd == '["python", "-m", "service"]'  # exec form: python gets SIGTERM itself
    for module in ("service.healthcheck", "service.__main__"):
        assert importlib.util.find_spec(module) is not None


def test_what_it_copies_exists_and_passes_the_dockerignore() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in stages().values():
        for keyword, arguments in stage:
            if keyword != "COPY" or "--from=" in arguments:
                continue
            *sources, _ = [token for token in arguments.split() if not token.startswith("--")]
            for source in sources:
                for variant in ("gpu", "cpu"):
                    path = source.replace("${VARIANT}", variant)
                    assert (ROOT / path).exists(), f"COPY {path}: no such file"
                    assert path.split("/")[0] in allowed, f"COPY {path}: excluded by .dockerignore"


def test_its_settings_are_settings_of_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for variant in ("gpu", "cpu"):
        env = {**stage_env(f"base-{variant}"), **stage_env("api")}
        assert unknown_settings(set(env)) == []
        settings = settings_from({k: v for k, v in env.items() if k.startswith(PREFIX)}, monkeypatch)
        assert (settings.host, settings.port, str(settings.models_dir)) == ("0.0.0.0", 8000, "/models")
    assert settings_from(stage_env("base-gpu"), monkeypatch).providers[0] == "CUDAExecutionProvider"
    assert settings_from(stage_env("base-cpu"), monkeypatch).providers == ["CPUExecutionProvider"]


def pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [r for r in map(Requirement, listed) if r.marker is None or r.marker.evaluate(IMAGE_ENVIRONMENT)]


@pytest.mark.parametrize(
    ("lock", "extra"),
    [
        ("requirements-service-gpu.txt", None),
        ("requirements-service-cpu.txt", None),
        ("requirements-train.txt", "train"),
    ],
)
def test_locks_pin_every_dependency_at_an_allowed_version(lock: str, extra: str | None) -> None:
    pinned = pins(ROOT / "docker" / lock)
    for requirement in requirements(extra):
        name = canonicalize_name(requirement.name)
        if lock.endswith("-cpu.txt") and name == "onnxruntime-gpu":
            name = canonicalize_name("onnxruntime")  # the CPU image's build of the same version
        assert name in pinned, f"{lock} does not pin {name}: run docker/lock.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock}: {name}=={pinned[name]}"
        )


def test_the_cpu_lock_differs_only_by_the_onnxruntime_build() -> None:
    gpu, cpu = (
        pins(ROOT / "docker/requirements-service-gpu.txt"),
        pins(ROOT / "docker/requirements-service-cpu.txt"),
    )
    assert cpu.pop("onnxruntime") == gpu.pop("onnxruntime-gpu")
    assert cpu == gpu


def test_train_and_export_exports_the_run_it_trained(tmp_path: Path) -> None:
    """The train services' entrypoint, with a stand-in ``python`` that records its arguments."""
    script = ROOT / "docker" / "train-and-export.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$LOG"\n'
        '[ "$3" = export ] || mkdir -p "$(eval echo \\${$#})/digits-cnn-20260101-000000"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}
    env.update(RUNS_DIR=str(tmp_path / "runs"), MODELS_DIR=str(tmp_path / "models"))
    subprocess.run(["sh", str(script), "digits", "--data", "/data", "--epochs", "1"], env=env, check=True)
    train, export = log.read_text().splitlines()
    job = next((tmp_path / "runs").glob("job-*"))
    assert train == f"-m training digits --data /data --epochs 1 --out {job}"
    assert export == f"-m training export {job}/digits-cnn-20260101-000000/ --out {tmp_path / 'models'}"
    usage = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: train-and-export RECIPE" in usage.stderr
