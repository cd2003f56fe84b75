"""Events: create, read, list my upcoming events (keyset pagination), edit; visibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chat.store.pg import users
from tests.api.events_helpers import at, create_event, get_event, set_status
from tests.api_client import Api


async def test_create_event_makes_the_creator_a_confirmed_participant(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(
        api, creator["id"], title="  Lunch  ", description="noodles", location="Gangnam"
    )
    assert event["title"] == "Lunch"
    assert event["status"] == "PROPOSED"
    assert event["creator_id"] == creator["id"]
    assert event["description"] == "noodles"
    assert event["location"] == "Gangnam"
    assert event["allowed_transitions"] == ["CONFIRMED", "CANCELED"]
    assert [(p["user_id"], p["confirmed"]) for p in event["participants"]] == [
        (creator["id"], True)
    ]


async def test_create_event_with_participants_lists_them_unconfirmed(api: Api) -> None:
    creator, a, b = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[b["id"], a["id"], b["id"]])
    confirmed = {p["user_id"]: p["confirmed"] for p in event["participants"]}
    assert confirmed == {creator["id"]: True, a["id"]: False, b["id"]: False}
    names = {p["user_id"]: p["name"] for p in event["participants"]}
    assert names[a["id"]] == a["name"]


async def test_create_event_listing_myself_as_participant_is_harmless(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"], participants=[creator["id"]])
    assert len(event["participants"]) == 1


async def test_create_event_with_unknown_participants_is_422_without_saying_which(
    api: Api,
) -> None:
    creator, friend, deactivated = [await api.create_user() for _ in range(3)]
    await api.operator(users.set_active, deactivated["id"], False)
    unknown = 2**62 + 7
    answers = []
    for stranger in (unknown, deactivated["id"]):
        response = await api.http.post(
            "/v1/events",
            json={
                "title": "x",
                "start_time": at(1),
                "end_time": at(2),
                "participant_ids": [friend["id"], stranger],
            },
            headers=api.auth(creator["id"]),
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["errors"][0]["field"] == "body/participant_ids"
        assert str(stranger) not in response.text
        assert str(friend["id"]) not in problem["detail"] + str(problem["errors"])
        answers.append({k: v for k, v in problem.items() if k != "instance"})
    # An unknown id and a deactivated account get the very same answer.
    assert answers[0] == answers[1]
    assert "unknown_user_ids" not in answers[0]


async def test_create_event_in_the_past_is_allowed(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"], start=at(-3), end=at(-2))
    assert event["status"] == "PROPOSED"


async def test_create_event_keeps_the_instant_of_offset_timestamps(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(
        api, creator["id"], start="2031-05-01T09:00:00+09:00", end="2031-05-01T10:00:00+09:00"
    )
    assert datetime.fromisoformat(event["start_time"]) == datetime.fromisoformat(
        "2031-05-01T00:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "body/title"),
        ({"title": "   "}, "body/title"),
        ({"title": "t" * 201}, "body/title"),
        ({"location": "l" * 201}, "body/location"),
        ({"description": "bad\x00byte"}, "body/description"),
        ({"start_time": "2031-05-01T09:00:00"}, "body/start_time"),
        ({"start_time": "tomorrow"}, "body/start_time"),
        ({"start_time": 1900000000}, "body/start_time"),
        ({"start_time": "0001-01-01T00:00:00+05:00"}, "body/start_time"),
        (
            {"end_time": "2031-05-01T09:00:00+00:00", "start_time": "2031-05-01T09:00:00+00:00"},
            "body/end_time",
        ),
        (
            {"end_time": "2031-05-01T08:00:00+00:00", "start_time": "2031-05-01T09:00:00+00:00"},
            "body/end_time",
        ),
        ({"participant_ids": [0]}, "body/participant_ids/0"),
        ({"participant_ids": [2**63]}, "body/participant_ids/0"),
        ({"participant_ids": ["5"]}, "body/participant_ids/0"),
        ({"participant_ids": list(range(1, 102))}, "body/participant_ids"),
        ({"status": "CONFIRMED"}, "body/status"),
    ],
)
async def test_create_event_with_invalid_field_is_422_naming_it(
    api: Api, change: dict[str, Any], field: str
) -> None:
    creator = await api.create_user()
    body = {"title": "ok", "start_time": at(1), "end_time": at(2)}
    body.update(change)
    response = await api.http.post("/v1/events", json=body, headers=api.auth(creator["id"]))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_create_event_by_a_token_of_an_unknown_user_is_401(api: Api) -> None:
    response = await api.http.post(
        "/v1/events",
        json={"title": "x", "start_time": at(1), "end_time": at(2)},
        headers=api.auth(2**62 + 3),
    )
    assert response.status_code == 401


async def test_create_event_without_token_is_401(api: Api) -> None:
    response = await api.http.post(
        "/v1/events", json={"title": "x", "start_time": at(1), "end_time": at(2)}
    )
    assert response.status_code == 401


async def test_participant_can_read_the_event(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    seen = await get_event(api, friend["id"], event["id"])
    assert seen["id"] == event["id"]
    assert {p["user_id"] for p in seen["participants"]} == {creator["id"], friend["id"]}


async def test_unknown_event_is_404(api: Api) -> None:
    user = await api.create_user()
    response = await api.http.get(f"/v1/events/{2**62}", headers=api.auth(user["id"]))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", str(2**63), "1.5"])
async def test_malformed_event_id_is_404(api: Api, bad_id: str) -> None:
    user = await api.create_user()
    response = await api.http.get(f"/v1/events/{bad_id}", headers=api.auth(user["id"]))
    assert response.status_code == 404


async def test_non_participant_gets_404_on_every_event_operation(api: Api) -> None:
    creator, friend, outsider = [await api.create_user() for _ in range(3)]
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    path = f"/v1/events/{event['id']}"
    headers = api.auth(outsider["id"])
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", path, None),
        ("PATCH", path, {"title": "mine now"}),
        ("POST", f"{path}/participants", {"user_id": outsider["id"]}),
        ("DELETE", f"{path}/participants/{friend['id']}", None),
        ("POST", f"{path}/confirm", None),
        ("POST", f"{path}/status", {"status": "CANCELED"}),
    ]
    for method, url, body in calls:
        response = await api.http.request(method, url, json=body, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["detail"] == f"no event {event['id']}"
    # Nothing changed.
    seen = await get_event(api, creator["id"], event["id"])
    assert seen["title"] == event["title"]
    assert seen["status"] == "PROPOSED"
    assert len(seen["participants"]) == 2


# --- my upcoming events ------------------------------------------------------------------------


async def _list(api: Api, user_id: int, **params: Any) -> Any:
    return await api.http.get("/v1/events", params=params, headers=api.auth(user_id))


async def test_upcoming_events_walk_every_page_in_start_order_without_duplicates(
    api: Api,
) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    created = []
    # Two events share each start time, so the id tie-break is exercised across page edges.
    base = datetime.now(UTC) + timedelta(hours=10)
    for i in range(23):
        start = (base + timedelta(hours=i // 2)).isoformat()
        end = (base + timedelta(hours=i // 2 + 1)).isoformat()
        owner, other = (creator, friend) if i % 3 else (friend, creator)
        event = await create_event(
            api, owner["id"], participants=[other["id"]], start=start, end=end
        )
        created.append(event)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        response = await _list(api, friend["id"], **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 5
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    keys = [(datetime.fromisoformat(e["start_time"]), e["id"]) for e in seen]
    assert keys == sorted(keys)
    assert sorted(e["id"] for e in seen) == sorted(e["id"] for e in created)


async def test_upcoming_events_leave_out_past_canceled_and_other_peoples_events(
    api: Api,
) -> None:
    me, stranger = await api.create_user(), await api.create_user()
    keep = await create_event(api, me["id"], start=at(5), end=at(6))
    confirmed = await create_event(api, me["id"], start=at(7), end=at(8))
    assert (await set_status(api, me["id"], confirmed["id"], "CONFIRMED")).status_code == 200
    past = await create_event(api, me["id"], start=at(-2), end=at(-1))
    canceled = await create_event(api, me["id"], start=at(5), end=at(6))
    assert (await set_status(api, me["id"], canceled["id"], "CANCELED")).status_code == 200
    await create_event(api, stranger["id"], start=at(5), end=at(6))
    response = await _list(api, me["id"])
    assert response.status_code == 200
    ids = [e["id"] for e in response.json()["items"]]
    assert ids == [keep["id"], confirmed["id"]]
    assert past["id"] not in ids
    assert response.json()["next_cursor"] is None


async def test_upcoming_events_default_limit_is_20(api: Api) -> None:
    me = await api.create_user()
    for i in range(21):
        await create_event(api, me["id"], start=at(1 + i), end=at(2 + i))
    page = (await _list(api, me["id"])).json()
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None
    rest = (await _list(api, me["id"], cursor=page["next_cursor"])).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_upcoming_events_for_a_user_without_events_is_an_empty_page(api: Api) -> None:
    me = await api.create_user()
    response = await _list(api, me["id"])
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query/limit"),
        ({"limit": 101}, "query/limit"),
        ({"limit": "ten"}, "query/limit"),
        ({"cursor": "not-a-cursor"}, "query/cursor"),
        ({"cursor": "WzEsMl0"}, "query/cursor"),  # base64 of [1,2]
        ({"cursor": "x" * 201}, "query/cursor"),
        ({"sort": "title"}, "query/sort"),
    ],
)
async def test_upcoming_events_with_bad_query_is_422(
    api: Api, params: dict[str, Any], field: str
) -> None:
    me = await api.create_user()
    response = await _list(api, me["id"], **params)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


# --- editing -----------------------------------------------------------------------------------


async def _patch(api: Api, user_id: int, event_id: int, body: dict[str, Any]) -> Any:
    return await api.http.patch(f"/v1/events/{event_id}", json=body, headers=api.auth(user_id))


async def test_creator_edits_only_the_fields_sent(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"], description="d", location="here")
    response = await _patch(api, creator["id"], event["id"], {"title": "New", "location": None})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["title"] == "New"
    assert edited["location"] is None
    assert edited["description"] == "d"
    assert edited["start_time"] == event["start_time"]
    assert edited["updated_at"] >= event["updated_at"]


async def test_creator_moves_the_event_in_time(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    start, end = at(48), at(50)
    response = await _patch(api, creator["id"], event["id"], {"start_time": start, "end_time": end})
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["end_time"]) == datetime.fromisoformat(end)


async def test_edit_with_only_an_end_before_the_stored_start_is_422(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"], start=at(24), end=at(25))
    response = await _patch(api, creator["id"], event["id"], {"end_time": at(23)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body/end_time"


async def test_edit_with_only_a_start_after_the_stored_end_is_422(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"], start=at(24), end=at(25))
    response = await _patch(api, creator["id"], event["id"], {"start_time": at(26)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body/start_time"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "body/title"),
        ({"start_time": None}, "body/start_time"),
        ({"title": "   "}, "body/title"),
        ({"status": "DONE"}, "body/status"),
        ({"creator_id": 1}, "body/creator_id"),
    ],
)
async def test_edit_with_invalid_field_is_422(api: Api, body: dict[str, Any], field: str) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _patch(api, creator["id"], event["id"], body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_empty_edit_changes_nothing(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    response = await _patch(api, creator["id"], event["id"], {})
    assert response.status_code == 200
    assert response.json()["updated_at"] == event["updated_at"]


async def test_participant_who_is_not_the_creator_cannot_edit(api: Api) -> None:
    creator, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], participants=[friend["id"]])
    response = await _patch(api, friend["id"], event["id"], {"title": "hijack"})
    assert response.status_code == 403
    assert (await get_event(api, creator["id"], event["id"]))["title"] == event["title"]


async def test_editing_a_confirmed_event_keeps_it_confirmed(api: Api) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    assert (await set_status(api, creator["id"], event["id"], "CONFIRMED")).status_code == 200
    response = await _patch(api, creator["id"], event["id"], {"location": "moved"})
    assert response.status_code == 200
    assert response.json()["status"] == "CONFIRMED"


@pytest.mark.parametrize("path", [["CANCELED"], ["CONFIRMED", "DONE"]])
async def test_editing_a_finished_event_is_409_naming_the_status(api: Api, path: list[str]) -> None:
    creator = await api.create_user()
    event = await create_event(api, creator["id"])
    for status in path:
        assert (await set_status(api, creator["id"], event["id"], status)).status_code == 200
    response = await _patch(api, creator["id"], event["id"], {"title": "too late"})
    assert response.status_code == 409
    assert response.json()["current_status"] == path[-1]
    assert path[-1] in response.json()["detail"]
