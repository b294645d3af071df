"""What the task routes share: runtime lookup, bounds checks and the error responses they document."""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import InvalidInput, ServiceError
from ..registry import ModelRegistry, ModelVersion
from ..runtimes import Runtime
from ..schemas import ErrorBody

R = TypeVar("R", bound=Runtime)


def resolve_runtime(
    registry: ModelRegistry, kind: type[R], model: str | None, default: str
) -> tuple[ModelVersion, R]:
    """The version that serves a request of ``kind``'s task, and its runtime."""
    entry = registry.resolve(kind.task, model, default)
    if not isinstance(entry.runtime, kind):
        raise ServiceError(f"model {entry.name} has no {kind.task} runtime")
    return entry, entry.runtime


def check_range(name: str, value: int, low: int, high: int) -> None:
    """422 unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses of a route, all in the one error shape."""
    return {status: {"model": ErrorBody} for status in statuses}
