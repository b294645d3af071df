"""Helpers of the deployment checks: the repository's files, the linters installed beside Python (the dev
extra), ``${VAR:-default}`` interpolation as docker compose does it, and what the Kubernetes and KServe
checks share (the app's routes, the images, probes, the variables Kubernetes adds for Services)."""

from __future__ import annotations

import base64
import functools
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from starlette.routing import Match

from service.main import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "MODELSERVE_"
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def tool(name: str) -> str:
    """A command-line tool of the dev extra, from the environment that runs the tests."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: install the dev extra")
    return str(path)


def run_tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(name), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def interpolated_names(text: str) -> set[str]:
    """The variables a compose file interpolates (``${NAME}``, ``${NAME:-default}``)."""
    return {match["name"] for match in _INTERPOLATION.finditer(text)}


def with_defaults(value: Any) -> Any:
    """``value`` with every ``${NAME:-default}`` replaced by its default, as compose does with NAME unset."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda match: match["default"] or "", value)
    if isinstance(value, dict):
        return {key: with_defaults(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_defaults(item) for item in value]
    return value


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The service's settings when ``env`` is its whole ``MODELSERVE_*`` environment."""
    for name in [name for name in os.environ if name.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def unknown_settings(names: set[str]) -> list[str]:
    """The ``MODELSERVE_*`` names that are not a field of ``Settings``."""
    fields = Settings.model_fields
    return sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX) :].lower() not in fields)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if current:
                keyword, _, arguments = current.partition(" ")
                instructions.append((keyword.upper(), arguments.strip()))
            current = ""
    return instructions


def env_pairs(arguments: str) -> dict[str, str]:
    """The variables an ``ENV KEY=VALUE ...`` instruction sets."""
    return dict(token.split("=", 1) for token in shlex.split(arguments))


def settings_with_keys(
    env: dict[str, str], keys_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """``settings_from`` for a deployment whose ``MODELSERVE_API_KEYS_FILE`` (a mounted Secret, absent
    here) holds ``keys_file``: the setting reads and checks the file."""
    keys = tmp_path / "api-keys"
    keys.write_text(keys_file)
    return settings_from({**env, f"{PREFIX}API_KEYS_FILE": str(keys)}, monkeypatch)


@functools.cache
def _app() -> FastAPI:
    """The application, its routes included and nothing loaded."""
    with tempfile.TemporaryDirectory() as empty:
        return create_app(Settings(models_dir=Path(empty), api_keys_file=None))


def answers_get(path: str) -> bool:
    """Whether a route of the application takes ``GET path`` (as a probe or a scraper sends it)."""
    app = _app()
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "app": app}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


def serving_images() -> dict[str, str]:
    """The serving image per variant, as docker-compose.yml names (and builds) them."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {"gpu": services["api"]["image"], "cpu": services["api-cpu"]["image"]}


def image_uid() -> int:
    """The uid the serving image runs as (its last USER)."""
    instructions = dockerfile_instructions(ROOT / "Dockerfile")
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    return int(users[-1].split(":")[0])


def secret_value(secret: dict[str, Any], key: str) -> str | None:
    """A Secret's value for ``key``, from ``stringData`` or (base64) ``data``."""
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


def probe_problems(container: dict[str, Any], expected: dict[str, str]) -> list[str]:
    """What is wrong with a container's HTTP probes: ``expected`` maps each probe to its path; each must
    be a GET route of the app, on a port of the container (by name or number)."""
    ports = container.get("ports", [])
    names = {port.get("name") for port in ports} | {port["containerPort"] for port in ports}
    problems = []
    for probe, path in expected.items():
        http = container.get(probe, {}).get("httpGet")
        where = f"container {container['name']}: {probe}"
        if http is None:
            problems.append(f"{where}: no httpGet")
            continue
        if http.get("path") != path:
            problems.append(f"{where} is on {http.get('path')}, not {path}")
        if not answers_get(http.get("path", "")):
            problems.append(f"{where} path {http.get('path')} is no GET route of the app")
        if http.get("port") not in names:
            problems.append(f"{where} port {http.get('port')} is no port of the container")
    return problems


def service_link_settings(service_name: str, ports: list[dict[str, Any]]) -> list[str]:
    """The settings that Kubernetes' service-link variables of a Service would set in every pod of its
    namespace (``<NAME>_SERVICE_HOST``, ``<NAME>_PORT``, ...): a Service named modelserve gives
    ``MODELSERVE_PORT=tcp://<ip>:<port>``."""
    name = service_name.upper().replace("-", "_")
    variables = {f"{name}_SERVICE_HOST", f"{name}_SERVICE_PORT", f"{name}_PORT"}
    for port in ports:
        protocol, number = port.get("protocol", "TCP"), port["port"]
        if "name" in port:
            variables.add(f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
        base = f"{name}_PORT_{number}_{protocol}"
        variables |= {base, f"{base}_PROTO", f"{base}_PORT", f"{base}_ADDR"}
    named_like_settings = {variable for variable in variables if variable.startswith(PREFIX)}
    return sorted(named_like_settings - set(unknown_settings(named_like_settings)))
