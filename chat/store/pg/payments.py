"""Payments in PostgreSQL: idempotent creation, visibility, and status changes.

``transaction_id`` (unique) is the client's idempotency key. Creation is one
``INSERT ... ON CONFLICT (transaction_id) DO NOTHING``: of two identical requests racing, the
second one's insert waits for the first to commit and then inserts nothing, and the
follow-up read returns the row the first one wrote — one row, never a unique-violation error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from chat.domain.payments import PartyRole, PaymentMethod, PaymentStatus, check_status_change
from chat.store.cql import event_history as history
from chat.store.pg.events import Actor
from chat.store.pg.pool import Connection, Record, from_record

_COLUMNS = """id, event_id, payer_id, receiver_id, amount, currency, status, payment_method,
    transaction_id, metadata::text AS metadata, created_at, updated_at"""


@dataclass(frozen=True, slots=True)
class NewPayment:
    """What a client asks to create; also what an idempotent replay is compared against."""

    event_id: int
    payer_id: int
    receiver_id: int
    amount: Decimal
    currency: str
    payment_method: PaymentMethod
    transaction_id: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    event_id: int | None
    payer_id: int
    receiver_id: int
    amount: Decimal
    currency: str
    status: PaymentStatus
    payment_method: PaymentMethod | None
    transaction_id: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def same_request(self, new: NewPayment) -> bool:
        """Whether ``new`` asks for exactly this payment (amounts compared as numbers)."""
        return (
            self.event_id == new.event_id
            and self.payer_id == new.payer_id
            and self.receiver_id == new.receiver_id
            and self.amount == new.amount
            and self.currency == new.currency
            and self.payment_method == new.payment_method
            and self.metadata == new.metadata
        )

    def role_of(self, user_id: int) -> PartyRole | None:
        if user_id == self.payer_id:
            return PartyRole.PAYER
        if user_id == self.receiver_id:
            return PartyRole.RECEIVER
        return None


def _payment(row: Record) -> Payment:
    method = row["payment_method"]
    return from_record(
        Payment,
        row,
        status=PaymentStatus(row["status"]),
        payment_method=PaymentMethod(method) if method is not None else None,
        metadata=orjson.loads(row["metadata"]),
    )


async def create_payment(conn: Connection, new: NewPayment, actor: Actor) -> tuple[Payment, bool]:
    """Insert a PENDING payment; returns ``(payment, created)``.

    With a ``transaction_id`` already in use, nothing is inserted and the existing payment is
    returned with ``created=False``; the caller decides whether it is a replay (same request)
    or a conflicting reuse. The one function through which payments are created: ``actor``
    (the payer, with IP and user agent) goes into the audit write (``event_history``).
    """
    assert actor.user_id == new.payer_id, "the payer creates the payment"
    async with conn.transaction():  # the payment and its history record commit together
        return await _insert_payment(conn, new, actor)


async def _insert_payment(conn: Connection, new: NewPayment, actor: Actor) -> tuple[Payment, bool]:
    row = await conn.fetchrow(
        f"""INSERT INTO payments (event_id, payer_id, receiver_id, amount, currency,
                payment_method, transaction_id, metadata)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
            ON CONFLICT (transaction_id) DO NOTHING
            RETURNING {_COLUMNS}""",
        new.event_id,
        new.payer_id,
        new.receiver_id,
        new.amount,
        new.currency,
        new.payment_method.value,
        new.transaction_id,
        orjson.dumps(new.metadata).decode(),
    )
    if row is not None:
        payment = _payment(row)
        if payment.event_id is not None:
            await history.stage(
                conn,
                actor,
                history.Change(
                    payment.event_id,
                    history.ChangeType.PAYMENT_CREATED,
                    "payment",
                    None,
                    {
                        "amount": str(payment.amount),
                        "currency": payment.currency,
                        "payer_id": payment.payer_id,
                        "receiver_id": payment.receiver_id,
                        "status": payment.status.value,
                    },
                    {"payment_id": payment.id},
                ),
            )
        return payment, True
    existing = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM payments WHERE transaction_id = $1", new.transaction_id
    )
    assert existing is not None, "ON CONFLICT matched a row that must still exist"
    return _payment(existing), False


async def get_payment_for(conn: Connection, payment_id: int, user_id: int) -> Payment | None:
    """The payment if ``user_id`` is its payer or receiver; None otherwise (or if missing)."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM payments
            WHERE id = $1 AND (payer_id = $2 OR receiver_id = $2)""",
        payment_id,
        user_id,
    )
    return _payment(row) if row else None


async def list_event_payments_for(conn: Connection, event_id: int, user_id: int) -> list[Payment]:
    """The event's payments that ``user_id`` pays or receives, oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM payments
            WHERE event_id = $1 AND (payer_id = $2 OR receiver_id = $2)
            ORDER BY created_at, id""",
        event_id,
        user_id,
    )
    return [_payment(row) for row in rows]


async def change_payment_status(
    conn: Connection,
    payment_id: int,
    actor: Actor,
    target: PaymentStatus,
) -> Payment | None:
    """Move a payment to ``target`` if the caller may; None if they cannot see it.

    The row is locked (``FOR UPDATE``) for the check and the write, so two concurrent changes
    are serialised: the second sees the first one's result and is judged against it. Raises the
    domain's InvalidTransition (409) or Forbidden (403).

    This is the one function through which payment statuses change: the audit write
    (``event_history``, with the actor's IP and user agent) happens here.
    """
    assert actor.user_id is not None, "payment statuses are changed by a user"
    user_id = actor.user_id
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""SELECT {_COLUMNS} FROM payments
                WHERE id = $1 AND (payer_id = $2 OR receiver_id = $2) FOR UPDATE""",
            payment_id,
            user_id,
        )
        if row is None:
            return None
        payment = _payment(row)
        role = payment.role_of(user_id)
        assert role is not None
        check_status_change(payment.status, target, role)
        updated = await conn.fetchrow(
            f"UPDATE payments SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            payment_id,
            target.value,
        )
        assert updated is not None
        if payment.event_id is not None:
            await history.stage(
                conn,
                actor,
                history.Change(
                    payment.event_id,
                    history.ChangeType.PAYMENT_STATUS_CHANGED,
                    "status",
                    payment.status.value,
                    target.value,
                    {"payment_id": payment_id},
                ),
            )
        return _payment(updated)
