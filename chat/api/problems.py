"""Every error leaves the REST API as RFC 9457 ``application/problem+json``.

Client mistakes get their specific status and code; anything unexpected becomes a 500 with no
internal detail in the body and the traceback in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from chat.errors import (
    BadRequest,
    ChatError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    UpgradeRequired,
)
from chat.store.driver.failures import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(error: ChatError, instance: str | None = None) -> Response:
    return Response(
        orjson.dumps(error.problem(instance)),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


async def on_chat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatError)
    return problem_response(exc, request.url.path)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: ChatError
    if exc.status_code == 404:
        error = NotFound(f"no resource at {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = BadRequest(str(exc.detail))
    response = problem_response(error, request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def upgrade_required(request: Request) -> Response:
    """The WebSocket endpoint asked for over plain HTTP (no ``Upgrade: websocket``)."""
    return problem_response(
        UpgradeRequired(
            f"{request.url.path} speaks WebSocket only: connect with an Upgrade: websocket "
            "request (docs/protocol.md)"
        ),
        request.url.path,
    )


async def on_database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        ServiceUnavailable(
            "the database is unavailable; retry shortly", headers={"Retry-After": "2"}
        ),
        request.url.path,
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        ChatError("an unexpected error occurred; it has been logged"), request.url.path
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ChatError: on_chat_error,
    HTTPException: on_http_exception,
    # Lost or refused database connections are the dependency's fault, not the request's.
    **{error: on_database_unavailable for error in DEPENDENCY_ERRORS},
    Exception: on_unexpected,
}
