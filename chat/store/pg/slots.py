"""Open slots in PostgreSQL: offer, change, withdraw, search, and book.

Every state-dependent write is a conditional UPDATE (``WHERE is_available AND deleted_at IS
NULL ...``) so two requests racing on one slot cannot both win: PostgreSQL's row lock makes the
second one re-check the condition after the first commits, and it then matches no row. When a
conditional write matches nothing, :func:`diagnose` reads the slot once more to tell the caller
*why* (gone, not theirs, already booked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from chat.domain.slots import slot_end
from chat.store.cql import event_history as history
from chat.store.pg import events as event_store
from chat.store.pg.pool import Connection, Record, from_record

_COLUMNS = """id, business_user_id, service_type, title, description, start_time,
    duration_minutes, price, currency, region, is_available, booked_event_id, booked_by,
    created_at, updated_at"""

# The columns PATCH may set; anything else never reaches SQL text.
UPDATABLE = frozenset(
    {
        "service_type",
        "title",
        "description",
        "start_time",
        "duration_minutes",
        "price",
        "currency",
        "region",
    }
)


@dataclass(frozen=True, slots=True)
class Slot:
    id: int
    business_user_id: int
    service_type: str
    title: str
    description: str | None
    start_time: datetime
    duration_minutes: int
    price: Decimal | None
    currency: str
    region: str | None
    is_available: bool
    booked_event_id: int | None
    booked_by: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def end_time(self) -> datetime:
        return slot_end(self.start_time, self.duration_minutes)


def _slot(row: Record) -> Slot:
    return from_record(Slot, row)


class SlotProblem(StrEnum):
    """Why a conditional write on a slot matched no row."""

    MISSING = "missing"  # no such slot, or withdrawn
    NOT_OWNER = "not_owner"
    BOOKED = "booked"
    OWN_SLOT = "own_slot"
    STARTED = "started"


async def insert_slot(
    conn: Connection,
    *,
    business_user_id: int,
    service_type: str,
    title: str,
    description: str | None,
    start_time: datetime,
    duration_minutes: int,
    price: Decimal | None,
    currency: str,
    region: str | None,
) -> Slot:
    row = await conn.fetchrow(
        f"""INSERT INTO open_slots (business_user_id, service_type, title, description,
                start_time, duration_minutes, price, currency, region)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            RETURNING {_COLUMNS}""",
        business_user_id,
        service_type,
        title,
        description,
        start_time,
        duration_minutes,
        price,
        currency,
        region,
    )
    assert row is not None
    return _slot(row)


async def get_slot(conn: Connection, slot_id: int) -> Slot | None:
    """A slot that has not been withdrawn (booked or not)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM open_slots WHERE id = $1 AND deleted_at IS NULL", slot_id
    )
    return _slot(row) if row else None


async def update_available_slot(
    conn: Connection, slot_id: int, owner_id: int, changes: Mapping[str, object]
) -> Slot | None:
    """Apply ``changes`` to the owner's slot while it is still available; None if it is not.

    Column names come from :data:`UPDATABLE` only; values are always bind parameters.
    """
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = sorted(changes)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
    row = await conn.fetchrow(
        f"""UPDATE open_slots SET {assignments}
            WHERE id = $1 AND business_user_id = $2 AND is_available AND deleted_at IS NULL
            RETURNING {_COLUMNS}""",
        slot_id,
        owner_id,
        *(changes[name] for name in names),
    )
    return _slot(row) if row else None


async def withdraw_slot(conn: Connection, slot_id: int, owner_id: int) -> bool:
    """Soft-delete the owner's slot while it is available; False if it is not."""
    row = await conn.fetchrow(
        """UPDATE open_slots SET deleted_at = now()
           WHERE id = $1 AND business_user_id = $2 AND is_available AND deleted_at IS NULL
           RETURNING id""",
        slot_id,
        owner_id,
    )
    return row is not None


async def diagnose(conn: Connection, slot_id: int, user_id: int, *, booking: bool) -> SlotProblem:
    """Why a conditional write on ``slot_id`` by ``user_id`` matched no row."""
    row = await conn.fetchrow(
        """SELECT business_user_id, is_available, start_time <= now() AS started
           FROM open_slots WHERE id = $1 AND deleted_at IS NULL""",
        slot_id,
    )
    if row is None:
        return SlotProblem.MISSING
    if booking:
        if row["business_user_id"] == user_id:
            return SlotProblem.OWN_SLOT
        if not row["is_available"]:
            return SlotProblem.BOOKED
        return SlotProblem.STARTED
    if row["business_user_id"] != user_id:
        return SlotProblem.NOT_OWNER
    return SlotProblem.BOOKED


def search_query(
    *,
    region: str | None,
    start_from: datetime | None,
    start_before: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> tuple[str, list[object]]:
    """The SQL text and arguments of the available-slots search (separate so a test can EXPLAIN it).

    The text differs per filter combination (rather than ``$1 IS NULL OR ...``) so the planner
    sees plain range conditions on the partial index ``(region, start_time, id) WHERE
    is_available AND deleted_at IS NULL``.
    """
    conditions = ["is_available", "deleted_at IS NULL", "start_time >= greatest(now(), $1)"]
    args: list[object] = [start_from]
    if region is not None:
        args.append(region)
        conditions.append(f"region = ${len(args)}")
    if start_before is not None:
        args.append(start_before)
        conditions.append(f"start_time < ${len(args)}")
    if after is not None:
        args.extend(after)
        conditions.append(f"(start_time, id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = f"""SELECT {_COLUMNS} FROM open_slots WHERE {" AND ".join(conditions)}
        ORDER BY start_time, id LIMIT ${len(args)}"""
    return sql, args


async def search_available(
    conn: Connection,
    *,
    region: str | None,
    start_from: datetime | None,
    start_before: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Slot]:
    """Available slots, soonest first, keyset-paginated on (start_time, id).

    Never returns a slot that has already started (``start_time >= greatest(now(), from)``).
    """
    sql, args = search_query(
        region=region, start_from=start_from, start_before=start_before, after=after, limit=limit
    )
    return [_slot(row) for row in await conn.fetch(sql, *args)]


@dataclass(frozen=True, slots=True)
class Booking:
    slot: Slot
    event: event_store.Event


async def book_slot(
    conn: Connection,
    slot_id: int,
    actor: event_store.Actor,
) -> Booking | SlotProblem:
    """Book a slot: mark it taken and create its event, in one transaction.

    The conditional UPDATE is the arbiter between concurrent bookers: the first one to lock the
    row flips ``is_available``; the others block on the row lock, re-check the condition after
    the first commits, match nothing and get the diagnosis. The event is created only by the
    winner, inside the same transaction, so a failed booking leaves no orphan event.

    The business user is the event's creator and the booker its other participant: the slot's
    owner keeps control of the appointment's details (time, place), as they had over the slot,
    and the booker cannot move a business's appointment by editing "their" event.

    This is the one function through which bookings happen: the audit write
    (``event_history``, with the actor's IP and user agent) happens here. ``actor.user_id`` is
    the booker.
    """
    assert actor.user_id is not None, "bookings are made by a user"
    booker_id = actor.user_id
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE open_slots SET is_available = false, booked_by = $2
                WHERE id = $1 AND is_available AND deleted_at IS NULL
                  AND business_user_id <> $2 AND start_time > now()
                RETURNING {_COLUMNS}""",
            slot_id,
            booker_id,
        )
        if row is None:
            return await diagnose(conn, slot_id, booker_id, booking=True)
        slot = _slot(row)
        event = await event_store.insert_event(
            conn,
            creator_id=slot.business_user_id,
            title=slot.title,
            description=slot.description,
            start_time=slot.start_time,
            end_time=slot.end_time,
            location=slot.region,
            participant_ids=(booker_id,),
            actor=actor,
        )
        row = await conn.fetchrow(
            f"UPDATE open_slots SET booked_event_id = $2 WHERE id = $1 RETURNING {_COLUMNS}",
            slot_id,
            event.id,
        )
        assert row is not None
        await history.stage(
            conn,
            actor,
            history.Change(
                event.id,
                history.ChangeType.SLOT_BOOKED,
                "slot_id",
                None,
                slot_id,
                {"slot_id": slot_id, "business_user_id": slot.business_user_id},
            ),
        )
        return Booking(_slot(row), event)
