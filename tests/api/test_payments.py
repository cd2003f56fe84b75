"""Payments: creation between participants, idempotency, visibility, and the status machine."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg

from tests.api.builders import create_event, create_payment
from tests.api_client import Api


async def trio(api: Api) -> tuple[int, int, int, int]:
    """(payer, receiver, outsider, event id) — payer created the event with the receiver."""
    payer, receiver, outsider = [await api.create_user() for _ in range(3)]
    event = await create_event(api, payer["id"], receiver["id"])
    return payer["id"], receiver["id"], outsider["id"], event["id"]


def txn() -> str:
    return f"tx_{secrets.token_hex(8)}"


async def set_status(api: Api, user_id: int, payment_id: int, status: str) -> Any:
    return await api.http.post(
        f"/v1/payments/{payment_id}/status", json={"status": status}, headers=api.auth(user_id)
    )


async def test_participant_creates_a_pending_payment_to_another_participant(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    payment = await create_payment(
        api, payer, event_id, receiver, amount=12000.5, metadata={"order": "A-1", "items": [1, 2]}
    )
    assert payment["status"] == "PENDING"
    assert (payment["payer_id"], payment["receiver_id"]) == (payer, receiver)
    assert payment["amount"] == "12000.50"
    assert payment["metadata"] == {"order": "A-1", "items": [1, 2]}
    seen = await api.http.get(f"/v1/payments/{payment['id']}", headers=api.auth(receiver))
    assert seen.status_code == 200
    assert seen.json() == payment


async def test_payment_for_an_event_i_am_not_in_is_404(api: Api) -> None:
    _payer, receiver, outsider, event_id = await trio(api)
    response = await api.http.post(
        "/v1/payments",
        json={
            "event_id": event_id,
            "receiver_id": receiver,
            "amount": "1",
            "payment_method": "CASH",
        },
        headers=api.auth(outsider),
    )
    assert response.status_code == 404


async def test_receiver_outside_the_event_or_myself_is_422(api: Api) -> None:
    payer, _, outsider, event_id = await trio(api)
    body = {"event_id": event_id, "amount": "1", "payment_method": "CASH"}
    stranger = await api.http.post(
        "/v1/payments", json={**body, "receiver_id": outsider}, headers=api.auth(payer)
    )
    myself = await api.http.post(
        "/v1/payments", json={**body, "receiver_id": payer}, headers=api.auth(payer)
    )
    assert stranger.status_code == myself.status_code == 422
    assert stranger.json()["errors"][0]["field"] == "body/receiver_id"


async def test_amounts_and_currencies_are_validated(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    base = {"event_id": event_id, "receiver_id": receiver, "payment_method": "CARD"}
    bad: list[dict[str, Any]] = [
        {"amount": 0},
        {"amount": "-5"},
        {"amount": "1.001"},
        {"amount": 100_000_000},
        {"amount": "NaN"},
        {"amount": True},
        {"amount": "10", "currency": "ABC"},
        {"amount": "10", "currency": "krw"},
        {"amount": "10", "payment_method": "BITCOIN"},
        {"amount": "10", "metadata": {"deep": [[[[[[[[[[1]]]]]]]]]]}},
        {"amount": "10", "metadata": {"nul": "a\u0000b"}},
        {"amount": "10", "metadata": {"big": "x" * 5000}},
        {"amount": "10", "transaction_id": "has spaces"},
    ]
    for fields in bad:
        response = await api.http.post(
            "/v1/payments", json={**base, **fields}, headers=api.auth(payer)
        )
        assert response.status_code == 422, (fields, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_same_transaction_id_and_content_returns_the_same_payment_with_200(
    api: Api,
) -> None:
    payer, receiver, _, event_id = await trio(api)
    tx = txn()
    first = await create_payment(api, payer, event_id, receiver, transaction_id=tx, amount="10")
    again = await api.http.post(
        "/v1/payments",
        json={
            "event_id": event_id,
            "receiver_id": receiver,
            "amount": 10.00,
            "currency": "KRW",
            "payment_method": "CARD",
            "transaction_id": tx,
        },
        headers=api.auth(payer),
    )
    assert again.status_code == 200, again.text
    assert again.json() == first


async def test_reusing_a_transaction_id_for_a_different_payment_is_409(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    tx = txn()
    await create_payment(api, payer, event_id, receiver, transaction_id=tx, amount="10")
    response = await api.http.post(
        "/v1/payments",
        json={
            "event_id": event_id,
            "receiver_id": receiver,
            "amount": "11",
            "payment_method": "CARD",
            "transaction_id": tx,
        },
        headers=api.auth(payer),
    )
    assert response.status_code == 409
    assert response.json()["field"] == "transaction_id"


async def test_identical_concurrent_creations_make_one_payment(api: Api, pg_dsn: str) -> None:
    payer, receiver, _, event_id = await trio(api)
    tx = txn()
    body = {
        "event_id": event_id,
        "receiver_id": receiver,
        "amount": "5000",
        "payment_method": "TOSS",
        "transaction_id": tx,
    }
    responses = await asyncio.gather(
        *(api.http.post("/v1/payments", json=body, headers=api.auth(payer)) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    conn = await asyncpg.connect(pg_dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM payments WHERE transaction_id = $1", tx)
    finally:
        await conn.close()
    assert count == 1


async def test_only_payer_and_receiver_see_a_payment(api: Api) -> None:
    payer, receiver, outsider, event_id = await trio(api)
    # A third participant of the same event still does not see a payment between two others.
    third = await api.create_user()
    added = await api.http.post(
        f"/v1/events/{event_id}/participants",
        json={"user_id": third["id"]},
        headers=api.auth(payer),
    )
    assert added.status_code == 201, added.text
    payment = await create_payment(api, payer, event_id, receiver)
    url = f"/v1/payments/{payment['id']}"
    for user_id in (outsider, third["id"]):
        response = await api.http.get(url, headers=api.auth(user_id))
        assert response.status_code == 404
    listed = await api.http.get(f"/v1/events/{event_id}/payments", headers=api.auth(third["id"]))
    assert listed.status_code == 200
    assert listed.json()["items"] == []


async def test_event_payment_list_shows_my_payments_and_hides_the_event_from_outsiders(
    api: Api,
) -> None:
    payer, receiver, outsider, event_id = await trio(api)
    first = await create_payment(api, payer, event_id, receiver, amount="1")
    second = await create_payment(api, receiver, event_id, payer, amount="2")
    mine = await api.http.get(f"/v1/events/{event_id}/payments", headers=api.auth(payer))
    assert [p["id"] for p in mine.json()["items"]] == [first["id"], second["id"]]
    hidden = await api.http.get(f"/v1/events/{event_id}/payments", headers=api.auth(outsider))
    assert hidden.status_code == 404


async def test_receiver_completes_then_refunds(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    payment = await create_payment(api, payer, event_id, receiver)
    completed = await set_status(api, receiver, payment["id"], "COMPLETED")
    assert completed.status_code == 200
    assert completed.json()["status"] == "COMPLETED"
    refunded = await set_status(api, receiver, payment["id"], "REFUNDED")
    assert refunded.json()["status"] == "REFUNDED"


async def test_payer_cannot_mark_own_payment_completed_but_can_mark_it_failed(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    payment = await create_payment(api, payer, event_id, receiver)
    refused = await set_status(api, payer, payment["id"], "COMPLETED")
    assert refused.status_code == 403
    failed = await set_status(api, payer, payment["id"], "FAILED")
    assert failed.json()["status"] == "FAILED"


async def test_illegal_transition_is_409_naming_current_and_allowed(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    payment = await create_payment(api, payer, event_id, receiver)
    response = await set_status(api, receiver, payment["id"], "REFUNDED")
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "invalid_transition"
    assert problem["current_status"] == "PENDING"
    assert problem["allowed"] == ["COMPLETED", "FAILED"]
    back = await set_status(api, receiver, payment["id"], "PENDING")
    assert back.status_code == 409


async def test_outsider_cannot_change_a_payment_status(api: Api) -> None:
    payer, receiver, outsider, event_id = await trio(api)
    payment = await create_payment(api, payer, event_id, receiver)
    assert (await set_status(api, outsider, payment["id"], "FAILED")).status_code == 404


async def test_concurrent_complete_and_fail_serialise_to_one_outcome(api: Api) -> None:
    payer, receiver, _, event_id = await trio(api)
    payment = await create_payment(api, payer, event_id, receiver)
    completing, failing = await asyncio.gather(
        set_status(api, receiver, payment["id"], "COMPLETED"),
        set_status(api, payer, payment["id"], "FAILED"),
    )
    assert sorted([completing.status_code, failing.status_code]) == [200, 409]
    winner = completing if completing.status_code == 200 else failing
    final = await api.http.get(f"/v1/payments/{payment['id']}", headers=api.auth(payer))
    assert final.json()["status"] == winner.json()["status"]
