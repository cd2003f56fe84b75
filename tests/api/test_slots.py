"""Open slots: offering, changing, withdrawing and searching for available ones."""

from __future__ import annotations

import secrets

import asyncpg

from chat.store.pg import slots as store
from tests.api.builders import create_slot, in_hours
from tests.api_client import Api


def unique_region() -> str:
    """A region no other test uses, so searches see only this test's slots."""
    return f"r-{secrets.token_hex(6)}"


async def test_business_user_offers_a_slot_and_anyone_can_read_it(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    user = await api.create_user()
    slot = await create_slot(api, business["id"], price=25000, description="Short cut")

    assert slot["business_user_id"] == business["id"]
    assert slot["is_available"] is True
    assert slot["price"] == "25000.00"
    assert slot["duration_minutes"] == 45
    response = await api.http.get(f"/v1/slots/{slot['id']}", headers=api.auth(user["id"]))
    assert response.status_code == 200
    assert response.json()["title"] == "Haircut with Kim"


async def test_plain_user_cannot_offer_a_slot(api: Api) -> None:
    user = await api.create_user(role="USER")
    response = await api.http.post(
        "/v1/slots",
        json={"service_type": "x", "title": "t", "start_time": in_hours(5)},
        headers=api.auth(user["id"]),
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_slot_in_the_past_or_with_naive_time_is_rejected(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    headers = api.auth(business["id"])
    body = {"service_type": "x", "title": "t"}
    past = await api.http.post(
        "/v1/slots", json={**body, "start_time": in_hours(-1)}, headers=headers
    )
    naive = await api.http.post(
        "/v1/slots", json={**body, "start_time": "2030-01-01T10:00:00"}, headers=headers
    )
    far = await api.http.post(
        "/v1/slots", json={**body, "start_time": "2999-01-01T10:00:00Z"}, headers=headers
    )
    assert [past.status_code, naive.status_code, far.status_code] == [422, 422, 422]
    assert past.json()["errors"][0]["field"] == "body/start_time"


async def test_slot_with_unknown_currency_or_three_decimal_price_is_rejected(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    headers = api.auth(business["id"])
    body = {"service_type": "x", "title": "t", "start_time": in_hours(5)}
    bad_currency = await api.http.post(
        "/v1/slots", json={**body, "currency": "XYZ"}, headers=headers
    )
    bad_price = await api.http.post("/v1/slots", json={**body, "price": "1.005"}, headers=headers)
    assert bad_currency.status_code == 422
    assert bad_currency.json()["errors"][0]["field"] == "body/currency"
    assert bad_price.status_code == 422


async def test_owner_updates_an_available_slot_and_clears_its_price(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    response = await api.http.patch(
        f"/v1/slots/{slot['id']}",
        json={"title": "Long haircut", "duration_minutes": 90, "price": None},
        headers=api.auth(business["id"]),
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["title"], updated["duration_minutes"], updated["price"]) == (
        "Long haircut",
        90,
        None,
    )
    assert updated["region"] == slot["region"]


async def test_update_refuses_null_title_and_empty_patch(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    url, headers = f"/v1/slots/{slot['id']}", api.auth(business["id"])
    assert (await api.http.patch(url, json={"title": None}, headers=headers)).status_code == 422
    assert (await api.http.patch(url, json={}, headers=headers)).status_code == 422


async def test_another_business_cannot_change_or_withdraw_my_slot(api: Api) -> None:
    owner = await api.create_user(role="BUSINESS")
    rival = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, owner["id"])
    url, headers = f"/v1/slots/{slot['id']}", api.auth(rival["id"])
    assert (await api.http.patch(url, json={"title": "mine"}, headers=headers)).status_code == 403
    assert (await api.http.delete(url, headers=headers)).status_code == 403


async def test_withdrawn_slot_is_gone_for_everyone(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    url, headers = f"/v1/slots/{slot['id']}", api.auth(business["id"])
    assert (await api.http.delete(url, headers=headers)).status_code == 204
    assert (await api.http.get(url, headers=headers)).status_code == 404
    assert (await api.http.delete(url, headers=headers)).status_code == 404
    assert (await api.http.post(url + "/book", headers=headers)).status_code == 404


async def test_search_lists_available_future_slots_of_a_region_soonest_first(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    user = await api.create_user()
    region = unique_region()
    later = await create_slot(api, business["id"], region=region, start_time=in_hours(30))
    sooner = await create_slot(api, business["id"], region=region, start_time=in_hours(10))
    await create_slot(api, business["id"], region=unique_region(), start_time=in_hours(10))
    withdrawn = await create_slot(api, business["id"], region=region, start_time=in_hours(20))
    await api.http.delete(f"/v1/slots/{withdrawn['id']}", headers=api.auth(business["id"]))

    response = await api.http.get(
        "/v1/slots", params={"region": region}, headers=api.auth(user["id"])
    )
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["items"]] == [sooner["id"], later["id"]]
    assert response.json()["next_cursor"] is None


async def test_search_hides_booked_slots(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    user = await api.create_user()
    region = unique_region()
    slot = await create_slot(api, business["id"], region=region)
    booked = await api.http.post(f"/v1/slots/{slot['id']}/book", headers=api.auth(user["id"]))
    assert booked.status_code == 201
    response = await api.http.get(
        "/v1/slots", params={"region": region}, headers=api.auth(user["id"])
    )
    assert response.json()["items"] == []


async def test_search_filters_by_time_window(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    region = unique_region()
    early = await create_slot(api, business["id"], region=region, start_time=in_hours(2))
    middle = await create_slot(api, business["id"], region=region, start_time=in_hours(12))
    await create_slot(api, business["id"], region=region, start_time=in_hours(40))
    response = await api.http.get(
        "/v1/slots",
        params={"region": region, "from": in_hours(1), "to": in_hours(24)},
        headers=api.auth(business["id"]),
    )
    assert [s["id"] for s in response.json()["items"]] == [early["id"], middle["id"]]
    response = await api.http.get(
        "/v1/slots",
        params={"region": region, "from": in_hours(3)},
        headers=api.auth(business["id"]),
    )
    assert [s["id"] for s in response.json()["items"]][:1] == [middle["id"]]


async def test_search_pages_with_a_cursor_without_gaps_or_repeats(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    region = unique_region()
    same_time = in_hours(6)
    created = [
        await create_slot(api, business["id"], region=region, start_time=same_time)
        for _ in range(3)
    ] + [await create_slot(api, business["id"], region=region, start_time=in_hours(7))]
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"region": region, "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (
            await api.http.get("/v1/slots", params=params, headers=api.auth(business["id"]))
        ).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [s["id"] for s in created]


async def test_search_rejects_a_forged_cursor_and_unknown_parameters(api: Api) -> None:
    user = await api.create_user()
    headers = api.auth(user["id"])
    forged = await api.http.get("/v1/slots", params={"cursor": "bm90IGEgY3Vyc29y"}, headers=headers)
    unknown = await api.http.get("/v1/slots", params={"colour": "red"}, headers=headers)
    too_many = await api.http.get("/v1/slots", params={"limit": "101"}, headers=headers)
    assert forged.status_code == 422
    assert forged.json()["errors"][0]["field"] == "query/cursor"
    assert unknown.status_code == 422
    assert too_many.status_code == 422


async def test_search_query_can_use_the_partial_index_for_available_slots(pg_dsn: str) -> None:
    """EXPLAIN of the available-slots search names the partial index. Sequential scans are
    discouraged for the check, since on a small test table the planner would rightly prefer one."""
    sql, args = store.search_query(
        region="seoul", start_from=None, start_before=None, after=None, limit=50
    )
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
    finally:
        await conn.close()
    assert "open_slots_available_region_idx" in plan, plan


async def test_moving_a_slot_into_the_past_is_rejected(api: Api) -> None:
    business = await api.create_user(role="BUSINESS")
    slot = await create_slot(api, business["id"])
    response = await api.http.patch(
        f"/v1/slots/{slot['id']}",
        json={"start_time": in_hours(-2)},
        headers=api.auth(business["id"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body/start_time"
