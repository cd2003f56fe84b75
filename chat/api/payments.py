"""REST operations: payments between two participants of an event.

A payment is visible only to its payer and its receiver; to anyone else it does not exist
(404). The payer is always the caller. Status changes follow :mod:`chat.domain.payments`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.responses import Response

from chat.api.endpoint import Api, Call, Rule, json_response
from chat.api.fields import DecimalAmount, Id
from chat.api.record_out import RecordOut
from chat.api.slots import Currency
from chat.domain.payments import (
    AMOUNT_DECIMAL_PLACES,
    MAX_AMOUNT_EXCLUSIVE,
    PaymentMethod,
    PaymentStatus,
)
from chat.errors import Conflict, FieldError, NotFound, ValidationFailed
from chat.store.pg import events as event_store
from chat.store.pg import payments as store
from chat.store.pg.events import Actor
from chat.store.pg.pool import Connection

api = Api(prefix="")

MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 8


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"must nest at most {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _small_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's jsonb refuses NUL characters; the size bound keeps rows small."""
    _check_json(value, 1)
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


Amount = Annotated[
    Decimal,
    DecimalAmount(
        positive=True,
        below=MAX_AMOUNT_EXCLUSIVE,
        places=AMOUNT_DECIMAL_PLACES,
        description="Above 0, at most two decimals, below 10^8; a decimal string or a number.",
    ),
]
Metadata = Annotated[dict[str, Any], AfterValidator(_small_json_object)]
TransactionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:\-]{1,100}$")]


class CreatePayment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: Id
    receiver_id: Id
    amount: Amount
    currency: Currency = "KRW"
    payment_method: PaymentMethod
    transaction_id: TransactionId | None = Field(
        None, description="Idempotency key: the provider's transaction id, unique."
    )
    metadata: Metadata = Field(default_factory=dict)


class ChangePaymentStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PaymentStatus


class PaymentOut(RecordOut):
    id: int
    event_id: int | None
    payer_id: int
    receiver_id: int
    amount: Decimal = Field(description='Decimal string with two places, e.g. "12000.00".')
    currency: str
    status: PaymentStatus
    payment_method: PaymentMethod | None
    transaction_id: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PaymentList(BaseModel):
    items: list[PaymentOut]


def _not_found(payment_id: int) -> NotFound:
    return NotFound(f"payment {payment_id} does not exist or is not yours")


async def _require_event(conn: Connection, event_id: int, user_id: int) -> None:
    if not await event_store.is_participant(conn, event_id, user_id):
        raise NotFound(f"event {event_id} does not exist or you do not take part in it")


@api.operation(
    "POST",
    "/payments",
    summary="Create a pending payment",
    tag="payments",
    body=CreatePayment,
    response=PaymentOut,
    status=201,
    also=((200, "The payment this transaction_id created before, as it is now"),),
    errors=(404, 409),
    rules=(
        Rule(("receiver_id",), "Another participant of the event, not the caller."),
        Rule(
            ("metadata",),
            f"Nests at most {MAX_METADATA_DEPTH} levels, has no NUL characters, and is at "
            f"most {MAX_METADATA_BYTES} bytes as JSON.",
        ),
    ),
)
async def create_payment(call: Call) -> PaymentOut | Response:
    """The caller pays ``receiver_id``; both must take part in the event (404 for the event if
    the caller does not, 422 if the receiver does not). Creates a PENDING payment: 201.

    Idempotent with ``transaction_id``: repeating the same request returns the payment created
    the first time with **200** (not 201), whatever its status now; reusing the id for a
    different payment is 409. Concurrent identical requests create one payment."""
    body: CreatePayment = call.body
    if body.receiver_id == call.user_id:
        raise ValidationFailed(
            "you cannot pay yourself",
            errors=[FieldError("body/receiver_id", "must be another participant")],
        )
    new = store.NewPayment(
        event_id=body.event_id,
        payer_id=call.user_id,
        receiver_id=body.receiver_id,
        amount=body.amount,
        currency=body.currency,
        payment_method=body.payment_method,
        transaction_id=body.transaction_id,
        metadata=body.metadata,
    )
    async with call.state.pg.acquire() as conn:
        await _require_event(conn, body.event_id, call.user_id)
        if not await event_store.is_participant(conn, body.event_id, body.receiver_id):
            raise ValidationFailed(
                "the receiver does not take part in the event",
                errors=[FieldError("body/receiver_id", "must be a participant of the event")],
            )
        payment, created = await store.create_payment(
            conn, new, Actor(call.user_id, call.client_ip, call.user_agent)
        )
    if created:
        return PaymentOut.model_validate(payment)
    if not payment.same_request(new):
        raise Conflict(
            f"transaction_id {body.transaction_id!r} was already used for a different payment; "
            "use a new transaction_id for a new payment",
            field="transaction_id",
        )
    return json_response(PaymentOut.model_validate(payment).model_dump(mode="json"), 200)


@api.operation(
    "GET",
    "/payments/{payment_id:id}",
    summary="Get a payment",
    tag="payments",
    response=PaymentOut,
    errors=(404,),
)
async def get_payment(call: Call) -> PaymentOut:
    """Only the payer and the receiver see a payment; for anyone else it is 404."""
    payment_id = call.path_id("payment_id")
    async with call.state.pg.acquire() as conn:
        payment = await store.get_payment_for(conn, payment_id, call.user_id)
    if payment is None:
        raise _not_found(payment_id)
    return PaymentOut.model_validate(payment)


@api.operation(
    "POST",
    "/payments/{payment_id:id}/status",
    summary="Change a payment's status",
    tag="payments",
    body=ChangePaymentStatus,
    response=PaymentOut,
    errors=(403, 404, 409),
)
async def change_payment_status(call: Call) -> PaymentOut:
    """PENDING -> COMPLETED (receiver) | FAILED (payer or receiver); COMPLETED -> REFUNDED
    (receiver). Any other move is 409 naming the current and allowed statuses; a legal move by
    the wrong side is 403. Concurrent changes are serialised by a row lock."""
    payment_id = call.path_id("payment_id")
    body: ChangePaymentStatus = call.body
    actor = Actor(call.user_id, call.client_ip, call.user_agent)
    async with call.state.pg.acquire() as conn:
        payment = await store.change_payment_status(conn, payment_id, actor, body.status)
    if payment is None:
        raise _not_found(payment_id)
    return PaymentOut.model_validate(payment)


@api.operation(
    "GET",
    "/events/{event_id:id}/payments",
    summary="List my payments of an event",
    tag="payments",
    response=PaymentList,
    errors=(404,),
)
async def list_event_payments(call: Call) -> PaymentList:
    """Participants only (404 otherwise); lists only the payments the caller pays or receives,
    oldest first."""
    event_id = call.path_id("event_id")
    async with call.state.pg.acquire() as conn:
        await _require_event(conn, event_id, call.user_id)
        payments = await store.list_event_payments_for(conn, event_id, call.user_id)
    return PaymentList(items=[PaymentOut.model_validate(p) for p in payments])
