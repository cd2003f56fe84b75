"""What the contract fuzzer does not send: bodies that are not JSON at all.

Schemathesis (``tests/api/contract``) generates schema-valid and schema-invalid bodies, query
strings and path parameters for every operation from the OpenAPI document and fails on any 5xx
or undocumented answer. It always sends JSON, so this property test keeps what it alone
checks: raw bytes (invalid UTF-8, truncated JSON) under any content type, and a body over the
size limit, each refused with a 4xx problem+json and never a 5xx. Requests carry a valid token
of a user who owns the resources, so the bytes reach the body parser, not authentication.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.api.endpoint import Operation
from chat.api.routes import build_api
from tests.api.builders import World, build_world
from tests.api_client import Api

OPERATIONS = build_api().operations
SLOT_OPERATIONS = {"create_slot", "update_slot", "withdraw_slot"}
BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/xml"]
)


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    return await build_world(api)


def _user_for(op: Operation, world: World) -> int:
    return world.business if op.operation_id in SLOT_OPERATIONS else world.creator


def _url(op: Operation, world: World) -> str:
    url = op.openapi_path
    for name in op.path_params:
        url = url.replace("{" + name + "}", quote(str(world.path_value(name)), safe=""))
    return url


async def _send(
    api: Api, op: Operation, world: World, content: bytes, content_type: str = "application/json"
) -> int:
    """Send raw bytes; a refusal must be a 4xx problem+json. Returns the status."""
    headers = api.auth(_user_for(op, world))
    if content_type:
        headers["Content-Type"] = content_type
    response = await api.http.request(op.method, _url(op, world), content=content, headers=headers)
    assert response.status_code < 500, f"{op.method} {response.url}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        assert isinstance(problem["detail"], str)
    return response.status_code


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.operation_id)
@EXAMPLES
@given(raw=st.binary(max_size=200), content_type=content_types)
async def test_non_json_and_invalid_utf8_bodies_are_4xx(
    api: Api, world: World, op: Operation, raw: bytes, content_type: str
) -> None:
    await _send(api, op, world, raw, content_type)


async def test_an_oversized_body_is_413(api: Api, world: World) -> None:
    op = next(o for o in OPERATIONS if o.operation_id == "create_event")
    assert await _send(api, op, world, b'{"title": "' + b"x" * 300_000 + b'"}') == 413
