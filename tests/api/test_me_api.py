"""``/v1/me/activity`` and ``/v1/me/unread``: the caller's own view across their events."""

from __future__ import annotations

from typing import Any

from chat.store.cql.messages import MessageStore
from tests.api.builders import create_event, send
from tests.api_client import Api


async def get(api: Api, path: str, user_id: int, **params: Any) -> dict[str, Any]:
    response = await api.http.get(path, params=params, headers=api.auth(user_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_activity_lists_my_own_messages_across_events_newest_first(
    api: Api, message_store: MessageStore
) -> None:
    me, friend = await api.create_user(), await api.create_user()
    first = await create_event(api, me["id"], friend["id"])
    second = await create_event(api, friend["id"], me["id"])
    await send(message_store, first["id"], me, "one")
    await send(message_store, first["id"], friend, "not mine")
    await send(message_store, second["id"], me, "two")
    await send(message_store, first["id"], me, "three")

    page = await get(api, "/v1/me/activity", me["id"], limit=2)
    assert [(i["text"], i["event_id"]) for i in page["items"]] == [
        ("three", first["id"]),
        ("two", second["id"]),
    ]
    rest = await get(api, "/v1/me/activity", me["id"], cursor=page["next_cursor"])
    assert [i["text"] for i in rest["items"]] == ["one"]
    assert rest["next_cursor"] is None


async def test_activity_of_a_user_who_sent_nothing_is_empty(api: Api) -> None:
    me = (await api.create_user())["id"]
    assert await get(api, "/v1/me/activity", me) == {"items": [], "next_cursor": None}


async def test_unread_counts_every_event_i_take_part_in_and_only_those(
    api: Api, message_store: MessageStore
) -> None:
    me, friend, stranger = [await api.create_user() for _ in range(3)]
    busy = await create_event(api, friend["id"], me["id"])
    quiet = await create_event(api, me["id"])
    elsewhere = await create_event(api, stranger["id"], friend["id"])
    for text in ("hi", "are you there?"):
        await send(message_store, busy["id"], friend, text)
    await send(message_store, busy["id"], me, "mine do not count")
    await send(message_store, elsewhere["id"], stranger, "not my event")

    summary = await get(api, "/v1/me/unread", me["id"])
    counts = {i["event_id"]: i["unread"] for i in summary["items"]}
    assert counts == {busy["id"]: 2, quiet["id"]: 0}
    assert summary["total"] == 2
    assert summary["cap"] == 1000


async def test_marking_read_clears_the_event_from_my_unread_total(
    api: Api, message_store: MessageStore
) -> None:
    me, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, friend["id"], me["id"])
    await send(message_store, event["id"], friend, "first")
    last = await send(message_store, event["id"], friend, "second")
    response = await api.http.post(
        f"/v1/events/{event['id']}/read", json={"message_id": str(last)}, headers=api.auth(me["id"])
    )
    assert response.json()["unread"] == 0
    summary = await get(api, "/v1/me/unread", me["id"])
    assert summary["items"] == [{"event_id": event["id"], "unread": 0}]
    assert summary["total"] == 0


async def test_an_event_i_was_removed_from_drops_out_of_my_unread(
    api: Api, message_store: MessageStore
) -> None:
    me, friend = await api.create_user(), await api.create_user()
    event = await create_event(api, friend["id"], me["id"])
    await send(message_store, event["id"], friend, "bye")
    removed = await api.http.delete(
        f"/v1/events/{event['id']}/participants/{me['id']}", headers=api.auth(friend["id"])
    )
    assert removed.status_code == 204
    assert (await get(api, "/v1/me/unread", me["id"]))["items"] == []
