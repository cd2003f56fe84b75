"""Who may call what, for every operation the app serves.

The operations are read from ``build_api().operations``, so a new endpoint is covered the
moment it exists: it must get an entry in :data:`OUTSIDER` (what a signed-in user who has
nothing to do with the target resource gets) and, if it takes a body, in :data:`BODIES`, or
these tests fail and say so.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest

from chat.api.endpoint import Operation
from chat.api.routes import build_api
from chat.store.cql.messages import MessageStore
from tests.api.builders import World, body_for, build_world
from tests.api_client import TEST_JWT_SECRET, Api

OPERATIONS = build_api().operations
AUTHENTICATED = [op for op in OPERATIONS if op.auth]

# What an outsider gets. 404: the target exists but is not theirs, and is not revealed.
# 403: a role or ownership rule on something that is public anyway (slots are listings).
# "own": the operation acts only on the caller's own data (their profile, a new event), so
# an outsider simply succeeds — the check is that it touches nothing of anyone else's.
# "public": readable or usable by any signed-in user (slot search and booking).
OUTSIDER: dict[str, int | str] = {
    "get_me": "own",
    "update_me": "own",
    "create_event": "own",
    "list_my_events": "own",
    "get_event": 404,
    "update_event": 404,
    "add_participant": 404,
    "remove_participant": 404,
    "confirm_participation": 404,
    "leave_event": 404,
    "change_status": 404,
    "create_slot": 403,
    "search_slots": "public",
    "get_slot": "public",
    "update_slot": 403,
    "withdraw_slot": 403,
    "book_slot": "public",
    "create_payment": 404,
    "get_payment": 404,
    "change_payment_status": 404,
    "list_event_payments": 404,
    "get_event_history": 404,
    "list_messages": 404,
    "delete_message": 404,
    "mark_read": 404,
    "my_activity": "own",
    "my_unread": "own",
}

# Path values for calls made without a world (no token, bad tokens): well-formed, so the
# route matches and what is tested is authentication, not routing.
PLACEHOLDERS: dict[str, object] = {"message_id": uuid.UUID(int=1)}


async def owners_view(api: Api, world: World) -> list[Any]:
    """The resources as their owners see them (to prove a refused call changed nothing)."""
    return [
        (
            await api.http.get(f"/v1/events/{world.event_id}", headers=api.auth(world.creator))
        ).json(),
        (await api.http.get(f"/v1/slots/{world.slot_id}", headers=api.auth(world.business))).json(),
        (
            await api.http.get(f"/v1/payments/{world.payment_id}", headers=api.auth(world.creator))
        ).json(),
        (
            await api.http.get(
                f"/v1/events/{world.event_id}/messages", headers=api.auth(world.creator)
            )
        ).json(),
        (await api.http.get("/v1/me/unread", headers=api.auth(world.creator))).json(),
    ]


def url_for(op: Operation, world: World | None) -> str:
    url = op.openapi_path
    for name in op.path_params:
        value = world.path_value(name) if world else PLACEHOLDERS.get(name, 1)
        url = url.replace("{" + name + "}", str(value))
    return url


async def call(
    api: Api, op: Operation, world: World | None, headers: dict[str, str]
) -> httpx.Response:
    body = body_for(op, world) if world else None
    return await api.http.request(
        op.method, url_for(op, world), json=body if op.body else None, headers=headers
    )


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_every_operation_is_classified_for_outsiders() -> None:
    unclassified = {op.operation_id for op in AUTHENTICATED} - set(OUTSIDER)
    assert not unclassified, f"add these operations to OUTSIDER: {sorted(unclassified)}"
    assert [op.operation_id for op in OPERATIONS if not op.auth] == ["create_user"]


@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.operation_id)
async def test_without_a_token_every_operation_is_401(api: Api, op: Operation) -> None:
    response = await call(api, op, None, {})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def _unsigned(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` and no signature (an attacker's classic)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _bad_tokens(user_id: int) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + 600}
    return {
        "expired": jwt.encode(
            {"sub": str(user_id), "iat": now - 7200, "exp": now - 3600}, TEST_JWT_SECRET
        ),
        "forged": jwt.encode(claims, "not-the-server-secret-" + "y" * 32),
        "none_alg": _unsigned(claims),
        "non_numeric_sub": jwt.encode({**claims, "sub": "alice"}, TEST_JWT_SECRET),
        "no_exp": jwt.encode({"sub": str(user_id)}, TEST_JWT_SECRET),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "kind", ["expired", "forged", "none_alg", "non_numeric_sub", "no_exp", "garbage"]
)
@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.operation_id)
async def test_bad_tokens_are_401_on_every_operation(api: Api, op: Operation, kind: str) -> None:
    token = _bad_tokens(1)[kind]
    response = await call(api, op, None, {"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer a b", "token abc"])
async def test_malformed_authorization_headers_are_401(api: Api, header: str) -> None:
    response = await api.http.get("/v1/users/me", headers={"Authorization": header})
    assert_problem(response, 401)


@pytest.mark.parametrize("op", AUTHENTICATED, ids=lambda op: op.operation_id)
async def test_outsider_cannot_see_or_touch_others_resources(
    api: Api, message_store: MessageStore, op: Operation
) -> None:
    world = await build_world(api, message_store)
    before = await owners_view(api, world)
    response = await call(api, op, world, api.auth(world.outsider))
    expected = OUTSIDER[op.operation_id]

    if isinstance(expected, int):
        assert_problem(response, expected)
        assert await owners_view(api, world) == before, "a refused call changed something"
        return
    assert response.status_code < 300, response.text
    if expected == "own":
        assert await owners_view(api, world) == before
    if op.operation_id == "list_my_events":
        assert world.event_id not in [e["id"] for e in response.json()["items"]]
    if op.operation_id == "my_unread":
        assert world.event_id not in [i["event_id"] for i in response.json()["items"]]
    if op.operation_id == "my_activity":
        assert response.json()["items"] == []
    if op.operation_id == "get_slot":
        assert response.json()["booked_by"] is None
