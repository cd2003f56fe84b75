"""REST over an event's messages: paging, time ranges, moderation and "mark read".

Messages are sent with a real :class:`MessageStore` (sending is the gateway's, not REST's)
into the keyspace the app under test reads; everything else goes over real HTTP.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from chat.store.cql.messages import MessageStore
from tests.api.builders import create_event, send
from tests.api_client import Api


async def messages(api: Api, event_id: int, user_id: int, **params: Any) -> dict[str, Any]:
    response = await api.http.get(
        f"/v1/events/{event_id}/messages", params=params, headers=api.auth(user_id)
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def chat(api: Api, store: MessageStore, texts: list[str]) -> tuple[int, int, int, list[str]]:
    """An event of a creator and a guest, with ``texts`` sent alternately by guest and creator.

    Returns (event id, creator id, guest id, message ids oldest first).
    """
    creator, guest = await api.create_user(), await api.create_user()
    event = await create_event(api, creator["id"], guest["id"])
    ids = [
        str(await send(store, event["id"], guest if n % 2 == 0 else creator, text))
        for n, text in enumerate(texts)
    ]
    return event["id"], creator["id"], guest["id"], ids


async def test_the_latest_page_is_newest_first_and_before_pages_back_without_gaps(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, _, ids = await chat(api, message_store, [f"m{n}" for n in range(7)])
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = await messages(api, event_id, creator, **params)
        seen.extend(m["message_id"] for m in page["items"])
        if page["next_cursor"] is None:
            break
        params = {"limit": 3, "before": page["next_cursor"]}
    assert seen == list(reversed(ids))


async def test_after_a_cursor_returns_what_was_missed_oldest_first(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, _, _ = await chat(api, message_store, ["a", "b", "c", "d", "e"])
    cursor_at_c = (await messages(api, event_id, creator, limit=3))["next_cursor"]  # e, d, c

    newer = await messages(api, event_id, creator, after=cursor_at_c, limit=1)
    assert [m["text"] for m in newer["items"]] == ["d"]
    rest = await messages(api, event_id, creator, after=newer["next_cursor"])
    assert [m["text"] for m in rest["items"]] == ["e"]
    assert rest["next_cursor"] is None
    older = await messages(api, event_id, creator, before=cursor_at_c)
    assert [m["text"] for m in older["items"]] == ["b", "a"]


async def test_a_time_range_returns_only_messages_inside_it_with_to_exclusive(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, _, _ = await chat(api, message_store, ["early", "middle", "late"])
    by_text = {m["text"]: m for m in (await messages(api, event_id, creator))["items"]}
    start = by_text["middle"]["created_at"]
    end = by_text["late"]["created_at"]
    page = await messages(api, event_id, creator, **{"from": start, "to": end})
    if datetime.fromisoformat(start) == datetime.fromisoformat(end):
        assert page["items"] == []  # same millisecond: the range is empty; nothing leaks in
    else:
        assert [m["text"] for m in page["items"]] == ["middle"]
    whole = await messages(api, event_id, creator, **{"from": by_text["early"]["created_at"]})
    assert [m["text"] for m in whole["items"]] == ["late", "middle", "early"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"before": "x", "after": "y"}, "query/after"),
        ({"after": "x", "from": "2030-01-01T00:00:00Z"}, "query/after"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "query/to"),
        ({"from": "2030-01-01T00:00:00"}, "query/from"),
        ({"limit": "0"}, "query/limit"),
        ({"around": "x"}, "query/around"),
    ],
)
async def test_contradictory_or_malformed_paging_parameters_are_422(
    api: Api, params: dict[str, str], field: str
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.get(
        f"/v1/events/{event['id']}/messages", params=params, headers=api.auth(creator)
    )
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_cursor_that_was_not_issued_is_422_not_500(api: Api) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.get(
        f"/v1/events/{event['id']}/messages",
        params={"before": "bm90LWEtY3Vyc29y"},
        headers=api.auth(creator),
    )
    assert response.status_code == 422, response.text


async def test_the_sender_deletes_their_message_softly(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, guest, ids = await chat(api, message_store, ["oops"])
    response = await api.http.delete(
        f"/v1/events/{event_id}/messages/{ids[0]}", headers=api.auth(guest)
    )
    assert response.status_code == 204, response.text
    [message] = (await messages(api, event_id, creator))["items"]
    assert (message["is_deleted"], message["text"]) == (True, "")
    again = await api.http.delete(
        f"/v1/events/{event_id}/messages/{ids[0]}", headers=api.auth(guest)
    )
    assert again.status_code == 204


async def test_the_event_creator_may_delete_anyones_message_but_other_participants_may_not(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, guest, ids = await chat(api, message_store, ["spam"])
    third = (await api.create_user())["id"]
    added = await api.http.post(
        f"/v1/events/{event_id}/participants", json={"user_id": third}, headers=api.auth(creator)
    )
    assert added.status_code == 201
    path = f"/v1/events/{event_id}/messages/{ids[0]}"

    refused = await api.http.delete(path, headers=api.auth(third))
    assert refused.status_code == 403, refused.text
    assert (await messages(api, event_id, guest))["items"][0]["is_deleted"] is False

    moderated = await api.http.delete(path, headers=api.auth(creator))
    assert moderated.status_code == 204, moderated.text
    assert (await messages(api, event_id, guest))["items"][0]["is_deleted"] is True


@pytest.mark.parametrize(
    "message_id", ["not-a-uuid", "1234", str(uuid.uuid4()), "00000000-0000-1000-8000-000000000000"]
)
async def test_deleting_a_malformed_or_unknown_message_id_is_404(api: Api, message_id: str) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.delete(
        f"/v1/events/{event['id']}/messages/{message_id}", headers=api.auth(creator)
    )
    assert response.status_code == 404, response.text


async def test_a_message_of_another_event_cannot_be_deleted_through_mine(
    api: Api, message_store: MessageStore
) -> None:
    _, _, _, ids = await chat(api, message_store, ["elsewhere"])
    mine = await create_event(api, (await api.create_user())["id"])
    response = await api.http.delete(
        f"/v1/events/{mine['id']}/messages/{ids[0]}", headers=api.auth(mine["creator_id"])
    )
    assert response.status_code == 404, response.text


async def test_mark_read_returns_the_new_unread_count_and_never_moves_back(
    api: Api, message_store: MessageStore
) -> None:
    event_id, creator, _, ids = await chat(api, message_store, ["g1", "c1", "g2", "c2", "g3"])
    path = f"/v1/events/{event_id}/read"
    # The creator has three unread messages from the guest: g1, g2, g3.
    response = await api.http.post(path, json={"message_id": ids[1]}, headers=api.auth(creator))
    assert response.status_code == 200, response.text
    assert response.json() == {"event_id": event_id, "unread": 2}
    latest = await api.http.post(path, json={"message_id": ids[4]}, headers=api.auth(creator))
    assert latest.json()["unread"] == 0
    older = await api.http.post(path, json={"message_id": ids[0]}, headers=api.auth(creator))
    assert older.json()["unread"] == 0


async def test_mark_read_of_an_unknown_message_is_404_and_a_malformed_id_is_422(
    api: Api,
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    path = f"/v1/events/{event['id']}/read"
    unknown = await api.http.post(
        path, json={"message_id": str(uuid.uuid1())}, headers=api.auth(creator)
    )
    assert unknown.status_code == 404, unknown.text
    malformed = await api.http.post(path, json={"message_id": "nope"}, headers=api.auth(creator))
    assert malformed.status_code == 422, malformed.text


async def test_outsiders_get_404_on_every_message_operation(
    api: Api, message_store: MessageStore
) -> None:
    event_id, _, _, ids = await chat(api, message_store, ["private"])
    outsider = api.auth((await api.create_user())["id"])
    base = f"/v1/events/{event_id}"
    responses = [
        await api.http.get(f"{base}/messages", headers=outsider),
        await api.http.delete(f"{base}/messages/{ids[0]}", headers=outsider),
        await api.http.post(f"{base}/read", json={"message_id": ids[0]}, headers=outsider),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404]
