"""The event-history audit log: every change kind, over real HTTP, read back from ScyllaDB.

The app under test runs against the embedded CQL server; these tests also look behind the API
(the PostgreSQL outbox) to prove that the relay runs right after each commit, that leftovers
are relayed in the background and by the read, and that replaying a row never duplicates it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from chat.config import Settings
from chat.store.cql import event_history
from chat.store.cql.event_history import Change, ChangeType, EventHistory
from chat.store.driver.session import CqlStore
from chat.store.pg.events import Actor
from tests.api.builders import create_event, create_payment, create_slot, in_hours
from tests.api_client import Api
from tests.polling import until

pytestmark = pytest.mark.usefixtures("cql_store")

USER_AGENT = "history-test/1.0"


def headers(api: Api, user_id: int) -> dict[str, str]:
    return {**api.auth(user_id), "User-Agent": USER_AGENT}


async def history(api: Api, event_id: int, user_id: int, **params: Any) -> dict[str, Any]:
    response = await api.http.get(
        f"/v1/events/{event_id}/history", params=params, headers=api.auth(user_id)
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def items(api: Api, event_id: int, user_id: int) -> list[dict[str, Any]]:
    """The event's whole history, newest first."""
    found: list[dict[str, Any]] = (await history(api, event_id, user_id, limit=200))["items"]
    return found


def of_type(entries: list[dict[str, Any]], change_type: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["change_type"] == change_type]


async def outbox_rows(pool: asyncpg.Pool, event_id: int) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM event_history_outbox WHERE event_id = $1", event_id
    )
    return count


async def test_creating_an_event_records_created_with_actor_ip_and_user_agent(api: Api) -> None:
    creator = await api.create_user()
    guest = await api.create_user()
    body = {
        "title": "Dinner",
        "start_time": in_hours(30),
        "end_time": in_hours(31),
        "participant_ids": [guest["id"]],
    }
    response = await api.http.post("/v1/events", json=body, headers=headers(api, creator["id"]))
    assert response.status_code == 201, response.text

    [created] = await items(api, response.json()["id"], creator["id"])
    assert created["change_type"] == "CREATED"
    assert created["actor"] == {"id": creator["id"], "name": creator["name"]}
    assert created["ip_address"] == "127.0.0.1"
    assert created["user_agent"] == USER_AGENT
    assert created["old_value"] is None
    assert created["new_value"]["title"] == "Dinner"
    assert created["new_value"]["participant_ids"] == [creator["id"], guest["id"]]


async def test_the_relay_runs_before_the_response_so_the_outbox_is_already_empty(
    api: Api, pg_pool: asyncpg.Pool
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.patch(
        f"/v1/events/{event['id']}", json={"title": "Brunch"}, headers=api.auth(creator)
    )
    assert response.status_code == 200
    assert await outbox_rows(pg_pool, event["id"]) == 0


async def test_an_update_records_one_row_per_changed_field_with_old_and_new_values(
    api: Api,
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    new_start = (datetime.fromisoformat(event["start_time"]) - timedelta(hours=1)).isoformat()
    response = await api.http.patch(
        f"/v1/events/{event['id']}",
        # title sent unchanged: not a change, so no row for it
        json={"title": event["title"], "location": "Han river", "start_time": new_start},
        headers=headers(api, creator),
    )
    assert response.status_code == 200, response.text

    updates = of_type(await items(api, event["id"], creator), "UPDATED")
    by_field = {u["field_name"]: u for u in updates}
    assert set(by_field) == {"location", "start_time"}
    assert (by_field["location"]["old_value"], by_field["location"]["new_value"]) == (
        None,
        "Han river",
    )
    old_start = datetime.fromisoformat(by_field["start_time"]["old_value"])
    assert old_start == datetime.fromisoformat(event["start_time"])
    assert datetime.fromisoformat(by_field["start_time"]["new_value"]) == datetime.fromisoformat(
        new_start
    )
    assert all(u["actor"]["id"] == creator and u["user_agent"] == USER_AGENT for u in updates)


async def test_participant_added_confirmed_and_removed_are_recorded(api: Api) -> None:
    creator, guest, late = [(await api.create_user())["id"] for _ in range(3)]
    event = await create_event(api, creator, guest)
    path = f"/v1/events/{event['id']}"
    added = await api.http.post(
        f"{path}/participants", json={"user_id": late}, headers=headers(api, creator)
    )
    assert added.status_code == 201, added.text
    for _ in range(2):  # confirming twice records one confirmation
        confirmed = await api.http.post(f"{path}/confirm", headers=headers(api, guest))
        assert confirmed.status_code == 200, confirmed.text
    removed = await api.http.delete(f"{path}/participants/{late}", headers=headers(api, creator))
    assert removed.status_code == 204, removed.text

    entries = await items(api, event["id"], guest)
    assert [e["change_type"] for e in entries] == [
        "PARTICIPANT_REMOVED",
        "PARTICIPANT_CONFIRMED",
        "PARTICIPANT_ADDED",
        "CREATED",
    ]
    removal, confirmation, addition, _ = entries
    assert (addition["actor"]["id"], addition["new_value"]) == (creator, late)
    assert (confirmation["actor"]["id"], confirmation["new_value"]) == (guest, True)
    assert (removal["actor"]["id"], removal["old_value"], removal["new_value"]) == (
        creator,
        late,
        None,
    )


async def test_other_peoples_addresses_and_user_agents_are_shown_to_nobody(api: Api) -> None:
    creator, guest = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, creator, guest)
    path = f"/v1/events/{event['id']}"
    confirmed = await api.http.post(f"{path}/confirm", headers=headers(api, guest))
    assert confirmed.status_code == 200

    as_creator = await items(api, event["id"], creator)
    as_guest = await items(api, event["id"], guest)
    assert [e["change_type"] for e in as_creator] == ["PARTICIPANT_CONFIRMED", "CREATED"]
    # Each sees the address and user agent of their own change only, the creator included.
    guests_change, creators_change = as_creator
    assert (guests_change["ip_address"], guests_change["user_agent"]) == (None, None)
    assert creators_change["ip_address"] == "127.0.0.1"
    guests_change, creators_change = as_guest
    assert (guests_change["ip_address"], guests_change["user_agent"]) == (
        "127.0.0.1",
        USER_AGENT,
    )
    assert (creators_change["ip_address"], creators_change["user_agent"]) == (None, None)
    # Everything else about the change is the same for both.
    hidden = {"ip_address", "user_agent"}
    assert [{k: v for k, v in e.items() if k not in hidden} for e in as_creator] == [
        {k: v for k, v in e.items() if k not in hidden} for e in as_guest
    ]


async def test_leaving_is_recorded_with_the_leaver_as_actor(api: Api) -> None:
    creator, guest = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, creator, guest)
    left = await api.http.post(f"/v1/events/{event['id']}/leave", headers=headers(api, guest))
    assert left.status_code == 204, left.text
    [leaving, _] = await items(api, event["id"], creator)
    assert leaving["change_type"] == "PARTICIPANT_REMOVED"
    assert leaving["actor"]["id"] == guest
    assert leaving["metadata"] == {"reason": "left"}
    assert (leaving["field_name"], leaving["old_value"], leaving["new_value"]) == (
        "participant",
        guest,
        None,
    )


async def test_status_changes_record_old_and_new_status(api: Api) -> None:
    creator, guest = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, creator, guest)
    path = f"/v1/events/{event['id']}"
    assert (await api.http.post(f"{path}/confirm", headers=api.auth(guest))).status_code == 200
    for status in ("CONFIRMED", "DONE"):
        response = await api.http.post(
            f"{path}/status", json={"status": status}, headers=headers(api, creator)
        )
        assert response.status_code == 200, response.text

    changes = of_type(await items(api, event["id"], creator), "STATUS_CHANGED")
    assert [(c["old_value"], c["new_value"]) for c in changes] == [
        ("CONFIRMED", "DONE"),
        ("PROPOSED", "CONFIRMED"),
    ]
    assert {c["field_name"] for c in changes} == {"status"}


async def test_a_canceled_event_records_the_cancellation(api: Api) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.post(
        f"/v1/events/{event['id']}/status", json={"status": "CANCELED"}, headers=api.auth(creator)
    )
    assert response.status_code == 200
    [change] = of_type(await items(api, event["id"], creator), "STATUS_CHANGED")
    assert (change["old_value"], change["new_value"]) == ("PROPOSED", "CANCELED")


async def test_the_automatic_done_is_recorded_with_the_system_as_actor(api: Api) -> None:
    creator = (await api.create_user())["id"]
    now = datetime.now(UTC)
    body = {
        "title": "Yesterday's meeting",
        "start_time": (now - timedelta(hours=2)).isoformat(),
        "end_time": (now - timedelta(hours=1)).isoformat(),
    }
    event = (await api.http.post("/v1/events", json=body, headers=api.auth(creator))).json()
    path = f"/v1/events/{event['id']}"
    confirmed = await api.http.post(
        f"{path}/status", json={"status": "CONFIRMED"}, headers=api.auth(creator)
    )
    assert confirmed.status_code == 200, confirmed.text

    async def event_done() -> bool:
        response = await api.http.get(path, headers=api.auth(creator))
        return bool(response.json()["status"] == "DONE")

    # The sweeper runs every 0.2 s in tests.
    await until(event_done, within=10, interval=0.05, what="the sweeper to complete the event")

    [done] = [
        c
        for c in of_type(await items(api, event["id"], creator), "STATUS_CHANGED")
        if c["new_value"] == "DONE"
    ]
    assert done["actor"] == {"id": None, "name": "system"}
    assert (done["old_value"], done["ip_address"], done["user_agent"]) == ("CONFIRMED", None, None)


async def test_booking_a_slot_records_the_event_creation_and_the_booking(api: Api) -> None:
    business = (await api.create_user(role="BUSINESS"))["id"]
    booker = await api.create_user()
    slot = await create_slot(api, business)
    response = await api.http.post(
        f"/v1/slots/{slot['id']}/book", headers=headers(api, booker["id"])
    )
    assert response.status_code == 201, response.text

    entries = await items(api, response.json()["event_id"], business)
    assert [e["change_type"] for e in entries] == ["SLOT_BOOKED", "CREATED"]
    booked = entries[0]
    assert booked["actor"] == {"id": booker["id"], "name": booker["name"]}
    assert booked["new_value"] == slot["id"]
    assert booked["metadata"] == {
        "slot_id": str(slot["id"]),
        "business_user_id": str(business),
    }
    # The booker sees where their own booking came from; the business does not.
    [booked_as_seen_by_booker, _] = await items(api, response.json()["event_id"], booker["id"])
    assert booked_as_seen_by_booker["user_agent"] == USER_AGENT
    assert (booked["ip_address"], booked["user_agent"]) == (None, None)


async def test_payments_record_their_creation_and_status_changes(api: Api) -> None:
    payer, receiver = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, payer, receiver)
    payment = await create_payment(api, payer, event["id"], receiver)
    response = await api.http.post(
        f"/v1/payments/{payment['id']}/status",
        json={"status": "COMPLETED"},
        headers=headers(api, receiver),
    )
    assert response.status_code == 200, response.text

    entries = await items(api, event["id"], receiver)
    status_change, created = entries[0], entries[1]
    assert status_change["change_type"] == "PAYMENT_STATUS_CHANGED"
    assert (status_change["old_value"], status_change["new_value"]) == ("PENDING", "COMPLETED")
    assert status_change["actor"]["id"] == receiver
    assert status_change["metadata"] == {"payment_id": str(payment["id"])}
    assert created["change_type"] == "PAYMENT_CREATED"
    assert created["actor"]["id"] == payer
    assert created["new_value"]["amount"] == payment["amount"]


async def test_a_replayed_payment_creation_records_nothing_new(api: Api) -> None:
    payer, receiver = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, payer, receiver)
    await create_payment(api, payer, event["id"], receiver, transaction_id="tx-history-replay")
    replay = await api.http.post(
        "/v1/payments",
        json={
            "event_id": event["id"],
            "receiver_id": receiver,
            "amount": "12000.50",
            "currency": "KRW",
            "payment_method": "CARD",
            "transaction_id": "tx-history-replay",
        },
        headers=api.auth(payer),
    )
    assert replay.status_code == 200, replay.text
    assert len(of_type(await items(api, event["id"], payer), "PAYMENT_CREATED")) == 1


async def test_history_pages_newest_first_with_an_opaque_cursor(api: Api) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    titles = [f"Title {n}" for n in range(5)]
    for title in titles:
        response = await api.http.patch(
            f"/v1/events/{event['id']}", json={"title": title}, headers=api.auth(creator)
        )
        assert response.status_code == 200

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await history(api, event["id"], creator, **params)
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["new_value"] for e in seen[:-1]] == list(reversed(titles))
    assert seen[-1]["change_type"] == "CREATED"
    assert len({e["change_id"] for e in seen}) == 6
    times = [e["changed_at"] for e in seen]
    assert times == sorted(times, reverse=True)


async def test_a_cursor_that_was_not_issued_is_a_422(api: Api) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    response = await api.http.get(
        f"/v1/events/{event['id']}/history",
        params={"cursor": "not-a-cursor"},
        headers=api.auth(creator),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query/cursor"


async def test_a_relay_that_crashed_before_deleting_the_outbox_replays_without_duplicates(
    api: Api, pg_pool: asyncpg.Pool, cql_store: CqlStore, settings: Settings
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    [original] = await items(api, event["id"], creator)
    # The state such a crash leaves: the row is in ScyllaDB AND still in the outbox.
    await pg_pool.execute(
        """INSERT INTO event_history_outbox (change_id, event_id, changed_at, actor_id,
               actor_name, change_type, new_value, ip_address, user_agent)
           VALUES ($1, $2, $3, $4, $5, 'CREATED', $6, $7, $8)""",
        original["change_id"],
        event["id"],
        datetime.fromisoformat(original["changed_at"]),
        creator,
        original["actor"]["name"],
        '{"replayed": true}',
        original["ip_address"],
        original["user_agent"],
    )

    relay = EventHistory(pg_pool, cql_store, settings.cql_keyspace)
    assert await relay.relay_event(event["id"]) == 1

    [replayed] = await items(api, event["id"], creator)
    assert replayed["change_id"] == original["change_id"]
    assert replayed["changed_at"] == original["changed_at"]
    assert replayed["new_value"] == {"replayed": True}  # the same row, overwritten
    assert await outbox_rows(pg_pool, event["id"]) == 0


async def test_the_background_relay_moves_rows_staged_outside_any_request(
    api: Api, pg_pool: asyncpg.Pool, cql_store: CqlStore, settings: Settings
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)
    async with pg_pool.acquire() as conn, conn.transaction():
        await event_history.stage(
            conn,
            Actor(None),
            Change(event["id"], ChangeType.STATUS_CHANGED, "status", "CONFIRMED", "DONE"),
        )
    assert await outbox_rows(pg_pool, event["id"]) == 1

    relay = EventHistory(pg_pool, cql_store, settings.cql_keyspace)
    async with relay.background_relay(interval=0.02):

        async def outbox_empty() -> bool:
            return not await outbox_rows(pg_pool, event["id"])

        await until(outbox_empty, within=5, what="the background relay to empty the outbox")
    page = await relay.page(event["id"], limit=10)
    assert [e.change_type for e in page.entries] == ["STATUS_CHANGED", "CREATED"]


async def test_a_rolled_back_change_leaves_no_history(
    api: Api, pg_pool: asyncpg.Pool, cql_store: CqlStore, settings: Settings
) -> None:
    creator = (await api.create_user())["id"]
    event = await create_event(api, creator)

    async def change_that_fails_after_staging() -> None:
        async with pg_pool.acquire() as conn, conn.transaction():
            await event_history.stage(
                conn, Actor(creator), Change(event["id"], ChangeType.UPDATED, "title", "a", "b")
            )
            raise RuntimeError("the change failed after staging")

    with pytest.raises(RuntimeError):
        await change_that_fails_after_staging()
    assert await outbox_rows(pg_pool, event["id"]) == 0
    assert [e["change_type"] for e in await items(api, event["id"], creator)] == ["CREATED"]


async def test_non_participants_cannot_read_the_history(api: Api) -> None:
    creator, outsider = [(await api.create_user())["id"] for _ in range(2)]
    event = await create_event(api, creator)
    response = await api.http.get(f"/v1/events/{event['id']}/history", headers=api.auth(outsider))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
