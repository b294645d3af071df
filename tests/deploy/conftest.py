"""Helpers of the deployment checks: the repository's files, the linters installed beside Python (the dev
extra), and ``${VAR:-default}`` interpolation as docker compose does it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
