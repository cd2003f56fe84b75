"""Builders for the slot, booking and payment tests: each makes one resource over real HTTP."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chat.api.endpoint import Operation
from chat.domain.messages import NewMessage
from chat.store.cql.messages import MessageStore
from tests.api_client import Api


def in_hours(hours: float) -> str:
    """An RFC 3339 time ``hours`` from now, with an explicit offset."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def create_slot(api: Api, business_id: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service_type": "haircut",
        "title": "Haircut with Kim",
        "start_time": in_hours(24),
        "duration_minutes": 45,
        "price": "25000.00",
        "currency": "KRW",
        "region": "seoul",
    }
    body.update(fields)
    response = await api.http.post("/v1/slots", json=body, headers=api.auth(business_id))
    assert response.status_code == 201, response.text
    slot: dict[str, Any] = response.json()
    return slot


async def create_event(api: Api, creator_id: int, *participant_ids: int) -> dict[str, Any]:
    body = {
        "title": "Lunch",
        "start_time": in_hours(48),
        "end_time": in_hours(49),
        "participant_ids": list(participant_ids),
    }
    response = await api.http.post("/v1/events", json=body, headers=api.auth(creator_id))
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


async def create_payment(
    api: Api, payer_id: int, event_id: int, receiver_id: int, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "receiver_id": receiver_id,
        "amount": "12000.50",
        "currency": "KRW",
        "payment_method": "CARD",
    }
    body.update(fields)
    response = await api.http.post("/v1/payments", json=body, headers=api.auth(payer_id))
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def send(store: MessageStore, event_id: int, sender: dict[str, Any], text: str) -> uuid.UUID:
    """Send one message as ``sender`` (a user dict from ``api.create_user``); returns its id."""
    ack = await store.send(
        NewMessage(
            event_id=event_id,
            sender_id=sender["id"],
            client_msg_id=secrets.token_hex(8),
            text=text,
            sender_name=sender["name"],
        )
    )
    return ack.message_id


@dataclass(frozen=True)
class World:
    """Resources owned by others, and an outsider who takes part in none of them."""

    creator: int  # created the event, pays the payment
    guest: int  # participant of the event, receives the payment
    business: int  # offers the slot
    outsider: int
    event_id: int
    slot_id: int
    payment_id: int
    message_id: uuid.UUID  # sent by the guest in the event

    def path_value(self, name: str) -> int | uuid.UUID:
        values: dict[str, int | uuid.UUID] = {
            "event_id": self.event_id,
            "slot_id": self.slot_id,
            "payment_id": self.payment_id,
            "user_id": self.guest,
            "message_id": self.message_id,
        }
        assert name in values, f"the matrix has no resource for path parameter {name!r}"
        return values[name]


def body_for(op: Operation, world: World) -> dict[str, Any] | None:
    """A valid body, so that what the outsider meets is the authorization check, not a 422."""
    bodies: dict[str, dict[str, Any]] = {
        "create_user": {"phone": "+821000000000", "name": "x"},
        "update_me": {"display_name": "Outsider"},
        "create_event": {"title": "Mine", "start_time": in_hours(5), "end_time": in_hours(6)},
        "update_event": {"title": "Hijacked"},
        "add_participant": {"user_id": world.outsider},
        "change_status": {"status": "CANCELED"},
        "create_slot": {"service_type": "x", "title": "x", "start_time": in_hours(5)},
        "update_slot": {"title": "Hijacked"},
        "create_payment": {
            "event_id": world.event_id,
            "receiver_id": world.creator,
            "amount": "1.00",
            "payment_method": "CASH",
        },
        "change_payment_status": {"status": "FAILED"},
        "mark_read": {"message_id": str(world.message_id)},
    }
    if op.body is None:
        return None
    assert op.operation_id in bodies, f"add a valid body for {op.operation_id} to the matrix"
    return bodies[op.operation_id]


async def build_world(api: Api, messages: MessageStore | None = None) -> World:
    """The matrix's world; without a message store its message id names no message (enough
    where only routing and validation matter, as in the fuzz tests)."""
    creator, guest, outsider = [await api.create_user() for _ in range(3)]
    business = (await api.create_user(role="BUSINESS"))["id"]
    event = await create_event(api, creator["id"], guest["id"])
    slot = await create_slot(api, business)
    payment = await create_payment(api, creator["id"], event["id"], guest["id"])
    message_id = (
        await send(messages, event["id"], guest, "hello") if messages else uuid.uuid1(node=1)
    )
    return World(
        creator["id"],
        guest["id"],
        business,
        outsider["id"],
        event["id"],
        slot["id"],
        payment["id"],
        message_id,
    )
