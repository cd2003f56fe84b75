"""No input, however malformed, makes the API fail with a 5xx; every refusal is problem+json.

For every operation (read from ``build_api().operations``, so new endpoints are covered),
hypothesis sends bodies (arbitrary JSON, valid bodies with fields replaced by junk, non-JSON
bytes, invalid UTF-8, wrong content types), path ids (huge, negative, zero, text) and query
strings. Requests carry a valid token of a user who owns the resources, so the junk reaches
the deepest code (validation, the handler, SQL) rather than stopping at authentication.

The tests are ``async`` and run each example in the session event loop (pytest-asyncio wraps
hypothesis' inner test), talking to the same real uvicorn server as every other API test.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.api.endpoint import Operation
from chat.api.routes import build_api
from tests.api.builders import World, body_for, build_world
from tests.conftest import Api

OPERATIONS = build_api().operations
SLOT_OPERATIONS = {"create_slot", "update_slot", "withdraw_slot"}

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "\x00", "NaN", "1e999", "-1", "0", "9" * 40, "2030-01-01T00:00:00"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/xml"]
)
path_ids = (
    st.integers().map(str)
    | st.integers(min_value=2**63 - 5, max_value=10**30).map(str)
    | st.text(min_size=1, max_size=20)
)


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    return await build_world(api)


def _user_for(op: Operation, world: World) -> int:
    return world.business if op.operation_id in SLOT_OPERATIONS else world.creator


def _url(op: Operation, world: World, ids: dict[str, str] | None = None) -> str:
    url = op.openapi_path
    for name in op.path_params:
        value = ids[name] if ids else str(world.path_value(name))
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def _field_names(op: Operation) -> list[str]:
    model = op.body or op.query
    return sorted(model.model_fields) if model else ["x"]


async def _send(
    api: Api,
    op: Operation,
    world: World,
    *,
    url: str | None = None,
    content: bytes | None = None,
    content_type: str = "application/json",
    params: dict[str, str] | None = None,
) -> None:
    headers = api.auth(_user_for(op, world))
    if content is not None and content_type:
        headers["Content-Type"] = content_type
    response = await api.http.request(
        op.method, url or _url(op, world), content=content, params=params, headers=headers
    )
    assert response.status_code < 500, f"{op.method} {response.url}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        assert isinstance(problem["detail"], str)


def _mutated(valid: dict[str, Any], names: list[str], data: st.DataObject) -> dict[str, Any]:
    """A valid body with some fields replaced by junk, dropped, or joined by unknown ones."""
    body = dict(valid)
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3)):
        if data.draw(st.booleans()):
            body[name] = data.draw(json_values)
        else:
            body.pop(name, None)
    if data.draw(st.integers(0, 4)) == 0:
        body[data.draw(st.text(max_size=10))] = data.draw(json_values)
    return body


BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]
QUERY_OPERATIONS = [op for op in OPERATIONS if op.query is not None]
PATH_OPERATIONS = [op for op in OPERATIONS if op.path_params]


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.operation_id)
@EXAMPLES
@given(data=st.data())
async def test_junk_json_bodies_never_cause_a_5xx(
    api: Api, world: World, op: Operation, data: st.DataObject
) -> None:
    valid = body_for(op, world) or {}
    body = data.draw(
        json_values | st.just(valid).map(lambda v: _mutated(v, _field_names(op), data))
    )
    await _send(api, op, world, content=json.dumps(body).encode())


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.operation_id)
@EXAMPLES
@given(raw=st.binary(max_size=200), content_type=content_types)
async def test_non_json_and_invalid_utf8_bodies_are_4xx(
    api: Api, world: World, op: Operation, raw: bytes, content_type: str
) -> None:
    await _send(api, op, world, content=raw, content_type=content_type)


@pytest.mark.parametrize("op", PATH_OPERATIONS, ids=lambda op: op.operation_id)
@EXAMPLES
@given(data=st.data())
async def test_junk_path_ids_never_cause_a_5xx(
    api: Api, world: World, op: Operation, data: st.DataObject
) -> None:
    ids = {name: data.draw(path_ids) for name in op.path_params}
    body = body_for(op, world)
    content = json.dumps(body).encode() if body is not None else None
    await _send(api, op, world, url=_url(op, world, ids), content=content)


@pytest.mark.parametrize("op", QUERY_OPERATIONS, ids=lambda op: op.operation_id)
@EXAMPLES
@given(data=st.data())
async def test_junk_query_strings_never_cause_a_5xx(
    api: Api, world: World, op: Operation, data: st.DataObject
) -> None:
    keys = st.sampled_from(_field_names(op)) | st.text(max_size=8)
    values = st.text(max_size=40) | path_ids | st.sampled_from(["", "0", "-1", "1e999"])
    params = data.draw(st.dictionaries(keys, values, max_size=4))
    await _send(api, op, world, params=params)


async def test_an_oversized_body_is_413(api: Api, world: World) -> None:
    op = next(o for o in OPERATIONS if o.operation_id == "create_event")
    await _send(api, op, world, content=b'{"title": "' + b"x" * 300_000 + b'"}')
