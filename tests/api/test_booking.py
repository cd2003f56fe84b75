"""Booking a slot: one transaction takes the slot and creates the event; one booker wins."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from tests.api.builders import create_slot, in_hours
from tests.api_client import Api


async def test_booking_takes_the_slot_and_creates_an_event_for_both_parties(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    booker = await api.create_user()
    slot = await create_slot(api, business["id"], description="Wash and cut")

    response = await api.http.post(f"/v1/slots/{slot['id']}/book", headers=api.auth(booker["id"]))
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["slot"]["is_available"] is False
    assert booking["slot"]["booked_by"] == booker["id"]
    assert booking["slot"]["booked_event_id"] == booking["event_id"]

    event = (
        await api.http.get(f"/v1/events/{booking['event_id']}", headers=api.auth(booker["id"]))
    ).json()
    assert event["title"] == slot["title"]
    assert event["description"] == "Wash and cut"
    assert event["start_time"] == slot["start_time"]
    assert event["end_time"] == slot["end_time"]
    assert event["creator_id"] == business["id"]
    assert event["status"] == "PROPOSED"
    assert {p["user_id"]: p["confirmed"] for p in event["participants"]} == {
        business["id"]: True,
        booker["id"]: False,
    }


async def test_booked_slot_cannot_be_booked_changed_or_withdrawn(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    first, second = await api.create_user(), await api.create_user()
    slot = await create_slot(api, business["id"])
    url = f"/v1/slots/{slot['id']}"
    assert (await api.http.post(url + "/book", headers=api.auth(first["id"]))).status_code == 201

    again = await api.http.post(url + "/book", headers=api.auth(second["id"]))
    patch = await api.http.patch(url, json={"title": "x"}, headers=api.auth(business["id"]))
    delete = await api.http.delete(url, headers=api.auth(business["id"]))
    assert [again.status_code, patch.status_code, delete.status_code] == [409, 409, 409]
    assert "already booked" in again.json()["detail"]


async def test_business_cannot_book_its_own_slot(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    response = await api.http.post(f"/v1/slots/{slot['id']}/book", headers=api.auth(business["id"]))
    assert response.status_code == 409
    assert "own" in response.json()["detail"]


async def test_strangers_see_a_booked_slot_without_who_booked_it(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    booker, stranger = await api.create_user(), await api.create_user()
    slot = await create_slot(api, business["id"])
    await api.http.post(f"/v1/slots/{slot['id']}/book", headers=api.auth(booker["id"]))

    seen = (await api.http.get(f"/v1/slots/{slot['id']}", headers=api.auth(stranger["id"]))).json()
    owner_view = (
        await api.http.get(f"/v1/slots/{slot['id']}", headers=api.auth(business["id"]))
    ).json()
    assert (seen["is_available"], seen["booked_by"], seen["booked_event_id"]) == (
        False,
        None,
        None,
    )
    assert owner_view["booked_by"] == booker["id"]


async def test_booking_an_unknown_slot_is_404(api: Api) -> None:
    user = await api.create_user()
    response = await api.http.post(f"/v1/slots/{2**62}/book", headers=api.auth(user["id"]))
    assert response.status_code == 404


async def test_two_concurrent_bookings_of_one_slot_one_wins_one_event(
    api: Api, pg_dsn: str
) -> None:
    business = await api.create_user(role="BUSINESS")
    first, second = await api.create_user(), await api.create_user()
    title = f"Contested {secrets.token_hex(4)}"
    slot = await create_slot(api, business["id"], title=title, start_time=in_hours(3))
    url = f"/v1/slots/{slot['id']}/book"

    responses = await asyncio.gather(
        api.http.post(url, headers=api.auth(first["id"])),
        api.http.post(url, headers=api.auth(second["id"])),
    )

    assert sorted(r.status_code for r in responses) == [201, 409]
    winner = next(r for r in responses if r.status_code == 201).json()
    conn = await asyncpg.connect(pg_dsn)
    try:
        events = await conn.fetch("SELECT id FROM events WHERE title = $1", title)
        booked_event = await conn.fetchval(
            "SELECT booked_event_id FROM open_slots WHERE id = $1", slot["id"]
        )
    finally:
        await conn.close()
    assert [e["id"] for e in events] == [winner["event_id"]] == [booked_event]


async def test_many_concurrent_bookers_exactly_one_wins(api: Api, pg_dsn: str) -> None:
    business = await api.create_user(role="BUSINESS")
    bookers = [await api.create_user() for _ in range(6)]
    title = f"Popular {secrets.token_hex(4)}"
    slot = await create_slot(api, business["id"], title=title)
    url = f"/v1/slots/{slot['id']}/book"

    responses = await asyncio.gather(
        *(api.http.post(url, headers=api.auth(b["id"])) for b in bookers)
    )

    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    conn = await asyncpg.connect(pg_dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE title = $1", title)
    finally:
        await conn.close()
    assert count == 1


async def test_a_slot_that_has_started_can_no_longer_be_booked(api: Api, pg_dsn: str) -> None:
    business = await api.create_user(role="BUSINESS")
    booker = await api.create_user()
    slot = await create_slot(api, business["id"])
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "UPDATE open_slots SET start_time = now() - interval '1 minute' WHERE id = $1",
            slot["id"],
        )
    finally:
        await conn.close()
    response = await api.http.post(f"/v1/slots/{slot['id']}/book", headers=api.auth(booker["id"]))
    assert response.status_code == 409
    assert "started" in response.json()["detail"]


async def test_a_valid_token_of_a_user_that_does_not_exist_cannot_book_or_offer(
    api: Api,
) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    ghost = api.auth(2**62)
    booked = await api.http.post(f"/v1/slots/{slot['id']}/book", headers=ghost)
    offered = await api.http.post(
        "/v1/slots",
        json={"service_type": "x", "title": "t", "start_time": in_hours(5)},
        headers=ghost,
    )
    assert [booked.status_code, offered.status_code] == [401, 401]
