"""PostgreSQL storage of events and their participants.

Read queries are plain functions. Every *change* to an event goes through exactly one function
per change kind (create, update fields, add participant, remove participant, confirm, change
status, automatic completion), and each of those receives the :class:`Actor` who made it. That is
the seam for the event-history audit log: the audit write lands inside these functions,
in the same transaction, without touching the handlers.

Concurrency: each change locks the event row (``SELECT ... FOR UPDATE``) in a transaction, checks
the rules in :mod:`chat.domain.events` against the locked state and only then writes, so two
conflicting changes serialise and the loser sees the winner's result. The automatic completion is
a conditional ``UPDATE ... WHERE status = 'CONFIRMED'``, which PostgreSQL re-checks after waiting
for any lock holder.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chat.domain import events as rules
from chat.domain.events import EventStatus
from chat.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from chat.store.cql import event_history as history
from chat.store.cql.event_history import Change, ChangeType
from chat.store.pg.pool import Connection, Record, from_record

_EVENT_COLUMNS = (
    "e.id, e.title, e.description, e.start_time, e.end_time, e.location, e.creator_id, "
    "e.status, e.created_at, e.updated_at"
)

# The fields PATCH may change, in column order (also the whitelist for the dynamic UPDATE).
EDITABLE_FIELDS = ("title", "description", "start_time", "end_time", "location")


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    title: str
    description: str | None
    start_time: datetime
    end_time: datetime
    location: str | None
    creator_id: int
    status: EventStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: int
    name: str
    display_name: str | None
    confirmed: bool
    confirmed_at: datetime | None
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change and from where; recorded by the audit log (``event_history``).

    ``user_id`` is None for the service itself (the automatic DONE sweep).
    """

    user_id: int | None
    ip_address: str | None = None
    user_agent: str | None = None


SYSTEM = Actor(None)

# How many ended events one sweep transaction completes at most.
SWEEP_BATCH = 1000


def _event(row: Record) -> Event:
    return from_record(Event, row, status=EventStatus(row["status"]))


def _participant(row: Record) -> Participant:
    return from_record(Participant, row, joined_at=row["created_at"])


@contextlib.asynccontextmanager
async def _transaction(conn: Connection) -> AsyncIterator[None]:
    """Join the caller's transaction when one is open, else run in a new one.

    Slot booking (chat/store/pg/slots.py) creates its event inside its own transaction; a savepoint
    would add nothing there, so the open transaction is simply reused.
    """
    if conn.is_in_transaction():
        yield
        return
    async with conn.transaction():
        yield


# --- reads -------------------------------------------------------------------------------------


async def is_participant(conn: Connection, event_id: int, user_id: int) -> bool:
    """Whether ``user_id`` takes part in the (not deleted) event ``event_id``."""
    found: bool | None = await conn.fetchval(
        """
        SELECT TRUE FROM event_participants p JOIN events e ON e.id = p.event_id
        WHERE p.event_id = $1 AND p.user_id = $2 AND e.deleted_at IS NULL
        """,
        event_id,
        user_id,
    )
    return bool(found)


async def event_status(conn: Connection, event_id: int) -> EventStatus | None:
    """The status of the (not deleted) event, or None when there is no such event."""
    found: str | None = await conn.fetchval(
        "SELECT status FROM events WHERE id = $1 AND deleted_at IS NULL", event_id
    )
    return EventStatus(found) if found is not None else None


async def get_event_for(conn: Connection, event_id: int, user_id: int) -> Event | None:
    """The event as ``user_id`` may see it: None unless they take part (or it does not exist)."""
    row = await conn.fetchrow(
        f"""
        SELECT {_EVENT_COLUMNS} FROM events e
        JOIN event_participants p ON p.event_id = e.id AND p.user_id = $2
        WHERE e.id = $1 AND e.deleted_at IS NULL
        """,
        event_id,
        user_id,
    )
    return _event(row) if row else None


async def event_ids_for(conn: Connection, user_id: int) -> list[int]:
    """Every (not deleted) event ``user_id`` takes part in, whatever its status (unread counts)."""
    rows = await conn.fetch(
        """
        SELECT p.event_id FROM event_participants p JOIN events e ON e.id = p.event_id
        WHERE p.user_id = $1 AND e.deleted_at IS NULL
        ORDER BY p.event_id
        """,
        user_id,
    )
    return [r["event_id"] for r in rows]


async def list_participants(conn: Connection, event_id: int) -> list[Participant]:
    """Participants in the order they joined (the creator first)."""
    rows = await conn.fetch(
        """
        SELECT p.user_id, u.name, u.display_name, p.confirmed, p.confirmed_at, p.created_at
        FROM event_participants p JOIN users u ON u.id = p.user_id
        WHERE p.event_id = $1
        ORDER BY p.created_at, p.user_id
        """,
        event_id,
    )
    return [_participant(r) for r in rows]


async def list_upcoming_for(
    conn: Connection,
    user_id: int,
    *,
    now: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Event]:
    """The user's PROPOSED/CONFIRMED events starting at or after ``now``.

    Ordered by (start_time, id) — id breaks ties between events starting at the same instant,
    which makes the keyset ``after`` exact: no event is skipped or repeated across pages.
    """
    after_time, after_id = after if after else (None, None)
    rows = await conn.fetch(
        f"""
        SELECT {_EVENT_COLUMNS} FROM event_participants p JOIN events e ON e.id = p.event_id
        WHERE p.user_id = $1
          AND e.status IN ('PROPOSED', 'CONFIRMED')
          AND e.deleted_at IS NULL
          AND e.start_time >= $2
          AND ($3::timestamptz IS NULL OR (e.start_time, e.id) > ($3::timestamptz, $4::bigint))
        ORDER BY e.start_time, e.id
        LIMIT $5
        """,
        user_id,
        now,
        after_time,
        after_id,
        limit,
    )
    return [_event(r) for r in rows]


async def _lock_for(conn: Connection, event_id: int, user_id: int) -> Event:
    """Lock the event row for a change by ``user_id``; 404 unless they take part in it.

    Membership is checked by a second statement after the lock is held: in READ COMMITTED each
    statement takes a fresh snapshot, so a participant removed by the transaction we waited for
    is seen as removed (a subquery in the locking SELECT would still see the old snapshot).
    """
    row = await conn.fetchrow(
        f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.id = $1 AND e.deleted_at IS NULL "
        "FOR UPDATE",
        event_id,
    )
    if row is None or not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM event_participants WHERE event_id = $1 AND user_id = $2)",
        event_id,
        user_id,
    ):
        raise NotFound(f"no event {event_id}")
    return _event(row)


def _require_creator(event: Event, actor: Actor, what: str) -> None:
    if event.creator_id != actor.user_id:
        raise Forbidden(f"only the event's creator can {what}")


# --- changes (one function per change kind: the audit seam) ------------------------------------


async def insert_event(
    conn: Connection,
    *,
    creator_id: int,
    title: str,
    description: str | None,
    start_time: datetime,
    end_time: datetime,
    location: str | None,
    participant_ids: Sequence[int] = (),
    actor: Actor | None = None,
) -> Event:
    """Create a PROPOSED event; the creator is always a participant, and already confirmed.

    Proposing an event is the creator's agreement to it, so only the other participants still
    have to confirm. ``participant_ids`` must name existing users (callers check; an unknown id
    fails on the foreign key); duplicates and the creator's own id are ignored.
    """
    async with _transaction(conn):
        row = await conn.fetchrow(
            f"""
            INSERT INTO events AS e (title, description, start_time, end_time, location, creator_id)
            VALUES ($1, $2, $3, $4, $5, $6)
            RETURNING {_EVENT_COLUMNS}
            """,
            title,
            description,
            start_time,
            end_time,
            location,
            creator_id,
        )
        assert row is not None
        event = _event(row)
        await conn.execute(
            """
            INSERT INTO event_participants (event_id, user_id, confirmed, confirmed_at)
            VALUES ($1, $2, TRUE, now())
            """,
            event.id,
            creator_id,
        )
        others = sorted(set(participant_ids) - {creator_id})
        if others:
            await conn.execute(
                """
                INSERT INTO event_participants (event_id, user_id)
                SELECT $1, unnest($2::bigint[])
                """,
                event.id,
                others,
            )
        snapshot = {f: getattr(event, f) for f in EDITABLE_FIELDS}
        await history.stage(
            conn,
            actor or Actor(creator_id),
            Change(
                event.id,
                ChangeType.CREATED,
                new_value={**snapshot, "participant_ids": [creator_id, *others]},
            ),
        )
        return event


async def update_event(
    conn: Connection, actor: Actor, event_id: int, changes: Mapping[str, Any]
) -> Event:
    """Change title/description/times/location (creator only, not after DONE/CANCELED).

    ``changes`` holds only the fields the client sent; None clears an optional field. The merged
    times must still have end after start (422 naming the field otherwise).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        _require_creator(event, actor, "edit it")
        rules.check_editable(event.status)
        start = changes.get("start_time", event.start_time)
        end = changes.get("end_time", event.end_time)
        if end <= start:
            name = "end_time" if "end_time" in changes else "start_time"
            raise ValidationFailed(
                "the event must end after it starts",
                errors=[FieldError(f"body/{name}", "end_time must be after start_time")],
            )
        if not changes:
            return event
        fields = [f for f in EDITABLE_FIELDS if f in changes]
        assignments = ", ".join(f"{f} = ${i}" for i, f in enumerate(fields, start=2))
        row = await conn.fetchrow(
            f"UPDATE events AS e SET {assignments} WHERE e.id = $1 RETURNING {_EVENT_COLUMNS}",
            event_id,
            *(changes[f] for f in fields),
        )
        assert row is not None
        updated = _event(row)
        await history.stage(
            conn,
            actor,
            *(
                Change(event_id, ChangeType.UPDATED, f, getattr(event, f), getattr(updated, f))
                for f in fields
                if getattr(event, f) != getattr(updated, f)
            ),
        )
        return updated


async def add_participant(conn: Connection, actor: Actor, event_id: int, user_id: int) -> Event:
    """Add an active user to a PROPOSED event (creator only).

    A user who cannot be added (unknown, deleted or deactivated: the answer does not say which)
    is a 422 naming ``user_id``; already taking part is a 409.
    """
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        _require_creator(event, actor, "add participants")
        rules.check_participants_changeable(event.status)
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL "
            "AND is_active)",
            user_id,
        ):
            raise ValidationFailed(
                "this user cannot be added to events",
                errors=[FieldError("body/user_id", "not a user who can be added")],
            )
        status = await conn.execute(
            """
            INSERT INTO event_participants (event_id, user_id) VALUES ($1, $2)
            ON CONFLICT (event_id, user_id) DO NOTHING
            """,
            event_id,
            user_id,
        )
        if status == "INSERT 0 0":
            raise Conflict(f"user {user_id} already takes part in event {event_id}")
        await history.stage(
            conn,
            actor,
            Change(event_id, ChangeType.PARTICIPANT_ADDED, "participant", None, user_id),
        )
        return event


async def remove_participant(conn: Connection, actor: Actor, event_id: int, user_id: int) -> Event:
    """Remove a participant from a PROPOSED event (creator only; never the creator)."""
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        if user_id == actor.user_id != event.creator_id:
            raise Forbidden(
                f"only the event's creator removes participants; to leave, "
                f"POST /v1/events/{event_id}/leave"
            )
        _require_creator(event, actor, "remove participants")
        if user_id == event.creator_id:
            raise Conflict("the creator cannot be removed from their own event; cancel it instead")
        rules.check_participants_changeable(event.status)
        status = await conn.execute(
            "DELETE FROM event_participants WHERE event_id = $1 AND user_id = $2",
            event_id,
            user_id,
        )
        if status == "DELETE 0":
            raise NotFound(f"user {user_id} does not take part in event {event_id}")
        await history.stage(
            conn,
            actor,
            Change(event_id, ChangeType.PARTICIPANT_REMOVED, "participant", user_id, None),
        )
        return event


async def leave_event(conn: Connection, actor: Actor, event_id: int) -> Event:
    """The actor stops taking part in the event (any status; never the creator).

    Recorded as a removal whose actor is the participant themselves, with reason ``left``.
    """
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        rules.check_can_leave(actor.user_id, event.creator_id)
        await conn.execute(
            "DELETE FROM event_participants WHERE event_id = $1 AND user_id = $2",
            event_id,
            actor.user_id,
        )
        await history.stage(
            conn,
            actor,
            Change(
                event_id,
                ChangeType.PARTICIPANT_REMOVED,
                "participant",
                actor.user_id,
                None,
                metadata={"reason": "left"},
            ),
        )
        return event


async def confirm_participation(conn: Connection, actor: Actor, event_id: int) -> Event:
    """Record the actor's confirmation; confirming twice keeps the first confirmation time."""
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        rules.check_confirmable(event.status)
        status = await conn.execute(
            """
            UPDATE event_participants SET confirmed = TRUE, confirmed_at = now()
            WHERE event_id = $1 AND user_id = $2 AND NOT confirmed
            """,
            event_id,
            actor.user_id,
        )
        if status == "UPDATE 1":  # confirming again changes nothing, so records nothing
            await history.stage(
                conn,
                actor,
                Change(event_id, ChangeType.PARTICIPANT_CONFIRMED, "confirmed", False, True),
            )
        return event


async def change_status(
    conn: Connection, actor: Actor, event_id: int, target: EventStatus
) -> Event:
    """Move the event along the status machine (creator only); illegal moves are 409."""
    assert actor.user_id is not None
    async with _transaction(conn):
        event = await _lock_for(conn, event_id, actor.user_id)
        _require_creator(event, actor, "change its status")
        unconfirmed: list[int] = []
        if target is EventStatus.CONFIRMED:
            rows = await conn.fetch(
                """
                SELECT user_id FROM event_participants
                WHERE event_id = $1 AND NOT confirmed ORDER BY user_id
                """,
                event_id,
            )
            unconfirmed = [r["user_id"] for r in rows]
        rules.check_transition(event.status, target, unconfirmed=unconfirmed)
        row = await conn.fetchrow(
            f"UPDATE events AS e SET status = $2 WHERE e.id = $1 RETURNING {_EVENT_COLUMNS}",
            event_id,
            target.value,
        )
        assert row is not None
        await history.stage(
            conn,
            actor,
            Change(event_id, ChangeType.STATUS_CHANGED, "status", event.status.value, target.value),
        )
        return _event(row)


async def complete_past_events(
    conn: Connection, now: datetime, *, limit: int = SWEEP_BATCH
) -> list[int]:
    """Mark CONFIRMED events whose end_time is at or before ``now`` as DONE; returns their ids.

    A conditional UPDATE: an event canceled (or completed by hand) a moment earlier no longer
    matches and is left alone. ``limit`` bounds one sweep's transaction; the next sweep takes the
    rest.
    """
    async with _transaction(conn):
        rows = await conn.fetch(
            """
            UPDATE events SET status = 'DONE'
            WHERE id IN (
                SELECT id FROM events
                WHERE status = 'CONFIRMED' AND end_time <= $1 AND deleted_at IS NULL
                ORDER BY end_time
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ) AND status = 'CONFIRMED'
            RETURNING id
            """,
            now,
            limit,
        )
        done = [r["id"] for r in rows]
        # The automatic completion is recorded like any other status change, actor "system".
        await history.stage(
            conn,
            SYSTEM,
            *(Change(i, ChangeType.STATUS_CHANGED, "status", "CONFIRMED", "DONE") for i in done),
        )
    return done
