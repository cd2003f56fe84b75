"""Inputs are accepted exactly as the OpenAPI document says: numbers, decimals, text, times.

Each case here is one where a regex engine, a JSON Schema validator and Python's parsers could
disagree (integral floats, exponent or padded decimal strings, Unicode whitespace, lower-case
RFC 3339, bare-hex UUIDs); the answer must be the one the document gives.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import events_helpers
from tests.api.builders import create_event, create_payment, in_hours
from tests.api_client import Api


async def _add(api: Api, creator: int, event_id: int, user_id: Any) -> Any:
    return await api.http.post(
        f"/v1/events/{event_id}/participants", json={"user_id": user_id}, headers=api.auth(creator)
    )


async def test_an_integral_float_is_an_integer_as_in_json_schema(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _add(api, creator["id"], event["id"], float(friend["id"]))
    assert response.status_code == 201, response.text
    assert friend["id"] in [p["user_id"] for p in response.json()["participants"]]
    raw = await api.http.post(
        f"/v1/events/{event['id']}/participants",
        content=f'{{"user_id": {friend["id"]}e0}}'.encode(),
        headers={**api.auth(creator["id"]), "Content-Type": "application/json"},
    )
    assert raw.status_code == 409  # the same user, written 62e0: already a participant


@pytest.mark.parametrize("user_id", [1.5, "1", True, 2.0**60])
async def test_fractions_strings_booleans_and_inexact_floats_are_not_integers(
    api: Api, user_id: Any
) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _add(api, creator["id"], event["id"], user_id)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body/user_id"


@pytest.mark.parametrize(("limit", "status"), [("2", 200), ("2.0", 200), ("2.5", 422), (" 2", 422)])
async def test_query_integers_follow_the_same_rule(api: Api, limit: str, status: int) -> None:
    user = await api.create_user()
    response = await api.http.get(
        "/v1/events", params={"limit": limit}, headers=api.auth(user["id"])
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize("amount", ["", "1e2", " 12", "+12", "1_000", "12.345", "0", "0.00", -1])
async def test_amounts_outside_the_documented_pattern_are_refused(api: Api, amount: Any) -> None:
    payer, receiver = await api.create_user(), await api.create_user()
    event = await create_event(api, payer["id"], receiver["id"])
    body = {
        "event_id": event["id"],
        "receiver_id": receiver["id"],
        "amount": amount,
        "payment_method": "CARD",
    }
    response = await api.http.post("/v1/payments", json=body, headers=api.auth(payer["id"]))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body/amount"


@pytest.mark.parametrize(
    ("amount", "stored"), [(0.07, "0.07"), (12000, "12000.00"), ("5.5", "5.50")]
)
async def test_amounts_as_numbers_are_read_as_their_decimal_text(
    api: Api, amount: Any, stored: str
) -> None:
    payer, receiver = await api.create_user(), await api.create_user()
    event = await create_event(api, payer["id"], receiver["id"])
    payment = await create_payment(api, payer["id"], event["id"], receiver["id"], amount=amount)
    assert payment["amount"] == stored


@pytest.mark.parametrize(
    "title",
    ["x" * 200 + " ", "\u3000\u2003", "\ufeff", "\x1c", "a\x00b"],
    ids=["too-long-as-sent", "ideographic-spaces", "bom", "file-separator", "nul"],
)
async def test_titles_are_refused_by_the_same_rules_the_schema_states(api: Api, title: str) -> None:
    user = await api.create_user()
    body = {"title": title, "start_time": in_hours(1), "end_time": in_hours(2)}
    response = await api.http.post("/v1/events", json=body, headers=api.auth(user["id"]))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body/title"


async def test_surrounding_whitespace_of_every_kind_is_stripped(api: Api) -> None:
    user = await api.create_user()
    event = await events_helpers.create_event(api, user["id"], title="\u3000 Tea \ufeff\n")
    assert event["title"] == "Tea"


@pytest.mark.parametrize(
    "start",
    [
        "2031-05-01 09:00:00Z",
        "2031-05-01T09:00:00",
        "2031-05-01T09:00:00+0900",
        "2031-02-30T09:00:00Z",
        "1969-12-31T23:00:00Z",
        "9001-01-01T00:00:00Z",
        "2031-05-01T09:00:60Z",
        1924300000,
    ],
)
async def test_times_outside_the_documented_rfc_3339_pattern_are_refused(
    api: Api, start: Any
) -> None:
    user = await api.create_user()
    body = {"title": "x", "start_time": start, "end_time": "2031-05-01T10:00:00Z"}
    response = await api.http.post("/v1/events", json=body, headers=api.auth(user["id"]))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body/start_time"


async def test_lower_case_t_and_z_are_rfc_3339(api: Api) -> None:
    user = await api.create_user()
    event = await events_helpers.create_event(
        api, user["id"], start="2031-05-01t09:00:00.5z", end="2031-05-01T10:00:00+00:00"
    )
    assert event["start_time"] == "2031-05-01T09:00:00.500000Z"


@pytest.mark.parametrize(
    "message_id",
    ["5f0c1a8e3b1d11ef9a7e0242ac120002", "{5f0c1a8e-3b1d-11ef-9a7e-0242ac120002}"],
)
async def test_only_hyphenated_uuids_are_uuids(api: Api, message_id: str) -> None:
    user = await api.create_user()
    event = await create_event(api, user["id"])
    response = await api.http.post(
        f"/v1/events/{event['id']}/read",
        json={"message_id": message_id},
        headers=api.auth(user["id"]),
    )
    assert response.status_code == 422, response.text


async def test_an_unsupported_method_is_405_with_allow(api: Api) -> None:
    response = await api.http.request("TRACE", "/v1/events")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_the_websocket_path_over_plain_http_is_426_or_405(api: Api) -> None:
    plain = await api.http.get("/v1/ws")
    assert plain.status_code == 426
    assert plain.headers["upgrade"] == "websocket"
    assert plain.json()["code"] == "upgrade_required"
    trace = await api.http.request("TRACE", "/v1/ws")
    assert trace.status_code == 405
    assert set(trace.headers["allow"].split(", ")) == {"GET", "HEAD"}
