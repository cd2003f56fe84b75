"""Declaring REST operations once: the route, the input and output models, the errors.

Each handler is declared with :meth:`Api.operation`; that one declaration gives the Starlette
route, the request parsing and validation (problem+json on any bad input), authentication, the
JSON response, and the operation's entry in the OpenAPI document — so the document cannot drift
from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chat.api.rate_limits import charge_user
from chat.auth import bearer_token
from chat.errors import (
    FieldError,
    MalformedJson,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from chat.state import AppState
from chat.store.pg import users as user_store

MAX_BODY_BYTES = 256 * 1024
_PATH_PARAM = re.compile(r"\{([a-z_]+)(?::([a-z]+))?\}")


@dataclass(frozen=True, slots=True)
class Rule:
    """An input rule JSON Schema cannot state (it compares fields, or depends on the clock, the
    caller or stored data). The OpenAPI document lists it in the operation's description and
    in ``x-rules``; a request breaking it is a 422 naming one of ``fields``."""

    fields: tuple[str, ...]
    text: str


CURSOR_RULE = Rule(("cursor",), "A cursor is a `next_cursor` this operation returned, unchanged.")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the request, the caller, and the validated inputs."""

    request: Request
    state: AppState
    user_id: int
    body: Any
    query: Any

    def path_id(self, name: str) -> int:
        value: int = self.request.path_params[name]
        return value

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")


Handler = Callable[[Call], Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    auth: bool
    rules: tuple[Rule, ...] = ()
    also: tuple[tuple[int, str], ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)

    @property
    def path_params(self) -> list[str]:
        return [name for name, _ in _PATH_PARAM.findall(self.path)]

    @property
    def path_param_types(self) -> dict[str, str]:
        """Each path parameter's convertor (``id`` or ``uuid``)."""
        return {name: kind or "str" for name, kind in _PATH_PARAM.findall(self.path)}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def _field_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        location = "/".join(str(part) for part in err["loc"])
        errors.append(
            FieldError(f"{prefix}{location}" if location else prefix.rstrip("/"), err["msg"])
        )
    return errors


async def _read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(
            f"request bodies must be application/json, got {content_type or 'no Content-Type'}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


async def _validated_body(request: Request, model: type[BaseModel]) -> BaseModel:
    data = await _read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed(
            "the body must be a JSON object", errors=[FieldError("body", "expected an object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "the body has invalid fields", errors=_field_errors(exc, "body/")
        ) from None


def _validated_query(request: Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, value)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed(
            "the query string has invalid parameters", errors=_field_errors(exc, "query/")
        ) from None


@dataclass
class Api:
    """A set of operations under one prefix; produces routes and the OpenAPI paths."""

    prefix: str = "/v1"
    operations: list[Operation] = field(default_factory=list)

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: Sequence[int] = (),
        auth: bool = True,
        rules: Sequence[Rule] = (),
        also: Sequence[tuple[int, str]] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare an operation. ``status`` is its success status; ``also`` lists other
        success statuses it may answer (with the same body), with what they mean."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method.upper(),
                    self.prefix + path,
                    handler,
                    summary,
                    tag,
                    body,
                    query,
                    response,
                    status,
                    tuple(errors),
                    auth,
                    tuple(rules),
                    tuple(also),
                )
            )
            return handler

        return register

    def include(self, other: Api) -> None:
        """Mount another module's operations under this prefix."""
        self.operations.extend(replace(op, path=self.prefix + op.path) for op in other.operations)

    def routes(self) -> list[Route]:
        grouped: dict[str, list[Operation]] = {}
        for op in self.operations:
            grouped.setdefault(op.path, []).append(op)
        return [
            Route(path, _dispatcher({op.method: op for op in ops}), methods=[o.method for o in ops])
            for path, ops in grouped.items()
        ]


def _dispatcher(by_method: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await _run(by_method[method], request)

    return endpoint


async def authenticate(state: AppState, request: Request) -> int:
    """The caller's user id: a valid token of a live, active account (as the gateway checks).

    A deactivated or deleted account's tokens are refused at once, not when they expire.
    """
    user_id = state.tokens.verify(bearer_token(request.headers.get("authorization")))
    async with state.pg.acquire() as conn:
        if not await user_store.is_active_user(conn, user_id):
            raise Unauthorized("the token's user does not exist or is deactivated")
    return user_id


async def _run(op: Operation, request: Request) -> Response:
    state: AppState = request.state.app
    user_id = 0
    if op.auth:
        user_id = await authenticate(state, request)
        charge_user(request, user_id)
    query = _validated_query(request, op.query) if op.query else None
    body = await _validated_body(request, op.body) if op.body else None
    result = await op.handler(Call(request, state, user_id, body, query))
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204 if op.status == 200 else op.status)
    return json_response(result.model_dump(mode="json"), op.status)
