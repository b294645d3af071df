"""What the task routes share: runtime lookup, bounds checks and the error responses they document."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query
from starlette.types import Receive

from ..batching import Ticket
from ..errors import ClientGone, InvalidInput, ServiceError
from ..registry import ModelRegistry, ModelVersion
from ..runtimes import Runtime
from ..schemas import ErrorBody, ErrorDetail

R = TypeVar("R", bound=Runtime)
U = TypeVar("U")
A = TypeVar("A")
R_ = TypeVar("R_")


def resolve_runtime(
    registry: ModelRegistry, kind: type[R], model: str | None, default: str
) -> tuple[ModelVersion, R]:
    """The version that serves a request of ``kind``'s task, and its runtime."""
    entry = registry.resolve(kind.task, model, default)
    if not isinstance(entry.runtime, kind):
        raise ServiceError(f"model {entry.name} has no {kind.task} runtime")
    return entry, entry.runtime


async def answer_unless_gone(receive: Receive, ticket: Ticket[U]) -> U:
    """Await a batcher's answer while watching the connection: if the client goes away first, the work is
    abandoned (``Ticket``: dropped while queued, a caption at its next step) and ``ClientGone`` raised.
    ``receive`` is the request's ASGI receive, whose body has been read: what comes next is the
    disconnect."""
    if ticket.done():
        return ticket.result()
    answer = asyncio.wrap_future(ticket)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server is shutting down and out of time: stop the work too
        ticket.abandon()
        raise
    finally:
        gone.cancel()
    if not answer.done():
        ticket.abandon()
        answer.cancel()
        raise ClientGone("the client closed the connection before the answer")
    return answer.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def check_range(name: str, value: int, low: int, high: int) -> None:
    """422 unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses of a route, all in the one error shape."""
    return {status: {"model": ErrorBody} for status in statuses}


def answerable(outcomes: Sequence[U | ServiceError]) -> list[U]:
    """The items of a request that can be answered. A request none of whose items can be (a single bad
    image, say) fails as a whole, with the error of its first item."""
    items = [outcome for outcome in outcomes if not isinstance(outcome, ServiceError)]
    if not items:
        raise next(outcome for outcome in outcomes if isinstance(outcome, ServiceError))
    return items


def in_slots(
    outcomes: Sequence[object],
    answers: Iterable[A],
    answered: Callable[[int, A], R_],
    failed: Callable[[int, ErrorDetail], R_],
) -> list[R_]:
    """One result per item, in request order: ``answered(index, answer)`` with the next answer for an
    item that was answered, ``failed(index, error)`` for one that could not be."""
    pending = iter(answers)
    return [
        failed(i, error_detail(outcome)) if isinstance(outcome, ServiceError) else answered(i, next(pending))
        for i, outcome in enumerate(outcomes)
    ]


def error_detail(error: ServiceError) -> ErrorDetail:
    """The error of one item, as the one error shape's content."""
    return ErrorDetail(code=error.code, message=error.message, status=error.status_code)


ModelInQuery = Annotated[
    str | None,
    Query(alias="model", description="The model, in the query string instead of the form or body."),
]


def requested_model(given: str | None, in_query: str | None) -> str | None:
    """The model a request names, in its body or form, or in the query string (``?model=``); naming two
    different ones is a 422, and neither is ever ignored."""
    if given is not None and in_query is not None and given != in_query:
        raise InvalidInput(f"the request names two models: {given!r} and, in the query string, {in_query!r}")
    return given if given is not None else in_query
