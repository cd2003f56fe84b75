"""The event-history audit log: a PostgreSQL outbox relayed to ScyllaDB's ``event_history``.

Why an outbox: the event lives in PostgreSQL and its history in ScyllaDB, so a change and its
history row cannot share a transaction. Each change therefore *stages* its history record in
``event_history_outbox`` inside the change's own transaction (:func:`stage`, called by the one
store function per change kind in ``chat.store.pg.events`` / ``slots`` / ``payments``): the change
and its record commit or roll back together. :class:`EventHistory` then relays staged rows to
ScyllaDB and deletes them from the outbox only after the CQL write succeeded:

- right after the request's commit, the rows that request staged (best effort, so a change is
  visible in the history at once — see ``chat.api.history.relay_after_commit``);
- before a history read, the leftovers of the event being read (so a read never misses a
  committed change whose relay failed);
- every few seconds in the background, whatever is left (a crash between commit and relay).

Idempotent by construction: the change id (a timeuuid chosen here, in Python) is the CQL row's
clustering key and ``changed_at`` is derived from it, so relaying a row twice — a relay that
crashed after the CQL write but before the outbox delete — rewrites the same row.

The actor's name is resolved inside the staging INSERT (a subquery on ``users``, no extra round
trip) and stored with the record: an audit log says who acted *as they were then*, and a read
needs no join across the two databases.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import asyncpg
import orjson
from cassandra.query import PreparedStatement

from chat.domain.messages import MessageIdGenerator, created_at_of
from chat.errors import FieldError, ValidationFailed
from chat.store.driver.session import CqlStore, execute_async
from chat.store.pg.pool import Connection, Record

log = logging.getLogger(__name__)

SYSTEM_ACTOR_NAME = "system"
RELAY_BATCH = 200


class ChangeType(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    PARTICIPANT_ADDED = "PARTICIPANT_ADDED"
    PARTICIPANT_REMOVED = "PARTICIPANT_REMOVED"
    PARTICIPANT_CONFIRMED = "PARTICIPANT_CONFIRMED"
    STATUS_CHANGED = "STATUS_CHANGED"
    SLOT_BOOKED = "SLOT_BOOKED"
    PAYMENT_CREATED = "PAYMENT_CREATED"
    PAYMENT_STATUS_CHANGED = "PAYMENT_STATUS_CHANGED"


@dataclass(frozen=True, slots=True)
class Change:
    """One history record as a store function describes it (values are any JSON-able data)."""

    event_id: int
    change_type: ChangeType
    field_name: str | None = None
    old_value: Any = None
    new_value: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class ActorLike(Protocol):
    """Who made a change and from where (``chat.store.pg.events.Actor``; None id = the service)."""

    @property
    def user_id(self) -> int | None: ...
    @property
    def ip_address(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One relayed history row as the read API returns it (values still JSON text)."""

    event_id: int
    change_id: uuid.UUID
    changed_at: datetime
    actor_id: int | None
    actor_name: str
    change_type: str
    field_name: str | None
    old_value: str | None
    new_value: str | None
    ip_address: str | None
    user_agent: str | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str | None


# --- change ids ---------------------------------------------------------------------------------

# Change ids are timeuuids from the same generator type as message ids: strictly increasing
# within the process, random node (not the MAC). ``changed_at`` is derived from the id, so a
# relayed row keeps its key and (changed_at, change_id) sorts exactly as the id does.
_change_ids = MessageIdGenerator()


def new_change_id() -> uuid.UUID:
    return _change_ids.next()


# --- staging (inside the caller's transaction) ------------------------------------------------

# The change ids staged during the current request, so the request can relay exactly those
# once it has committed. None outside a request (the sweeper, scripts): nothing is tracked and
# the background relay picks the rows up.
_staged_in_request: ContextVar[list[uuid.UUID] | None] = ContextVar(
    "staged_history_change_ids", default=None
)


@contextlib.contextmanager
def tracking_staged() -> Iterator[list[uuid.UUID]]:
    """Collect the change ids staged inside the block (one request's worth)."""
    staged: list[uuid.UUID] = []
    token = _staged_in_request.set(staged)
    try:
        yield staged
    finally:
        _staged_in_request.reset(token)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str).decode()


def _inet(address: str | None) -> str | None:
    """The client address if it is an IP address (a Unix-socket peer is not), else None."""
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


_STAGE_SQL = """
INSERT INTO event_history_outbox (change_id, event_id, changed_at, actor_id, actor_name,
    change_type, field_name, old_value, new_value, ip_address, user_agent, metadata)
SELECT r.change_id, r.event_id, r.changed_at, $1::bigint,
    COALESCE(
        (SELECT coalesce(u.display_name, u.name) FROM users u WHERE u.id = $1::bigint),
        CASE WHEN $1::bigint IS NULL THEN 'system' ELSE 'user ' || $1::bigint END),
    r.change_type, r.field_name, r.old_value, r.new_value, $2::inet, $3::text, r.metadata::jsonb
FROM unnest($4::uuid[], $5::bigint[], $6::timestamptz[], $7::text[], $8::text[], $9::text[],
            $10::text[], $11::text[])
    AS r(change_id, event_id, changed_at, change_type, field_name, old_value, new_value, metadata)
"""


async def stage(conn: Connection, actor: ActorLike, *changes: Change) -> list[uuid.UUID]:
    """Write history records to the outbox in the caller's transaction; returns their ids.

    One statement for any number of records (an update of three fields, a sweep completing a
    thousand events). ``actor.user_id`` None is the service itself ("system").
    """
    if not changes:
        return []
    ids = [new_change_id() for _ in changes]
    await conn.execute(
        _STAGE_SQL,
        actor.user_id,
        _inet(actor.ip_address),
        actor.user_agent,
        ids,
        [c.event_id for c in changes],
        [created_at_of(i) for i in ids],
        [c.change_type.value for c in changes],
        [c.field_name for c in changes],
        [_json(c.old_value) for c in changes],
        [_json(c.new_value) for c in changes],
        [orjson.dumps({k: str(v) for k, v in c.metadata.items()}).decode() for c in changes],
    )
    tracked = _staged_in_request.get()
    if tracked is not None:
        tracked.extend(ids)
    return ids


# --- cursors ------------------------------------------------------------------------------------


def encode_cursor(entry: HistoryEntry) -> str:
    """Opaque: base64url of the last entry's clustering key ``(changed_at ms, change_id)``."""
    millis = int(entry.changed_at.timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}:{entry.change_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, change_id = raw.split(":", 1)
        parsed = uuid.UUID(change_id)
        return datetime.fromtimestamp(int(millis) / 1000, UTC), parsed
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise ValidationFailed(
            "the cursor is not one this API returned",
            errors=[FieldError("query/cursor", "invalid cursor")],
        ) from None


# --- relay and reads ----------------------------------------------------------------------------

_OUTBOX_COLUMNS = """change_id, event_id, changed_at, actor_id, actor_name, change_type,
    field_name, old_value, new_value, host(ip_address) AS ip_address, user_agent,
    metadata::text AS metadata"""

_CQL_COLUMNS = """event_id, changed_at, change_id, actor_id, actor_name, change_type,
    field_name, old_value, new_value, ip_address, user_agent, metadata"""


def _entry(row: Any) -> HistoryEntry:
    changed_at: datetime = row.changed_at
    return HistoryEntry(
        event_id=row.event_id,
        change_id=row.change_id,
        changed_at=changed_at.replace(tzinfo=UTC) if changed_at.tzinfo is None else changed_at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        change_type=row.change_type,
        field_name=row.field_name,
        old_value=row.old_value,
        new_value=row.new_value,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        metadata=dict(row.metadata or {}),
    )


class EventHistory:
    """Relays the outbox to ScyllaDB and reads the history back, newest first.

    Statements are prepared on first use (through the session's one cache), so constructing it
    needs no round trip and the table may be created after it exists.
    """

    def __init__(self, pg: asyncpg.Pool, cql: CqlStore, keyspace: str) -> None:
        self._pg = pg
        self._cql = cql
        table = f"{keyspace}.event_history"
        self._insert = (
            f"INSERT INTO {table} ({_CQL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._latest = f"SELECT {_CQL_COLUMNS} FROM {table} WHERE event_id = ? LIMIT ?"
        self._older = (
            f"SELECT {_CQL_COLUMNS} FROM {table} WHERE event_id = ? "
            "AND (changed_at, change_id) < (?, ?) LIMIT ?"
        )

    async def _statement(self, query: str) -> PreparedStatement:
        # Upserts under a fixed key and reads: safe for the driver to retry.
        return await self._cql.prepare(query, idempotent=True)

    async def _move(self, conn: Connection, rows: list[Record]) -> int:
        """Write locked outbox rows to ScyllaDB, then delete them (same PG transaction).

        If any CQL write fails the exception propagates, the transaction rolls back and the
        rows stay for the next relay; rows already written are rewritten then (same key).
        """
        if not rows:
            return 0
        insert = await self._statement(self._insert)
        await asyncio.gather(
            *(
                execute_async(
                    self._cql.session,
                    insert,
                    [
                        r["event_id"],
                        r["changed_at"],
                        r["change_id"],
                        r["actor_id"],
                        r["actor_name"],
                        r["change_type"],
                        r["field_name"],
                        r["old_value"],
                        r["new_value"],
                        r["ip_address"],
                        r["user_agent"],
                        orjson.loads(r["metadata"]),
                    ],
                )
                for r in rows
            )
        )
        await conn.execute(
            "DELETE FROM event_history_outbox WHERE change_id = ANY($1::uuid[])",
            [r["change_id"] for r in rows],
        )
        return len(rows)

    async def relay(self, change_ids: Sequence[uuid.UUID]) -> int:
        """Relay exactly these staged rows (a request's own, right after its commit).

        ``SKIP LOCKED``: a row another relay is moving at this moment is that relay's job.
        """
        if not change_ids:
            return 0
        async with self._pg.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT {_OUTBOX_COLUMNS} FROM event_history_outbox
                    WHERE change_id = ANY($1::uuid[]) FOR UPDATE SKIP LOCKED""",
                list(change_ids),
            )
            return await self._move(conn, rows)

    async def relay_event(self, event_id: int) -> int:
        """Relay one event's leftovers before reading its history.

        Plain ``FOR UPDATE`` (no SKIP LOCKED): if another relay is moving some of them, wait
        for it, so the read that follows sees them in ScyllaDB.
        """
        async with self._pg.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT {_OUTBOX_COLUMNS} FROM event_history_outbox
                    WHERE event_id = $1 ORDER BY staged_at LIMIT {RELAY_BATCH} FOR UPDATE""",
                event_id,
            )
            return await self._move(conn, rows)

    async def relay_leftovers(self) -> int:
        """Relay everything in the outbox, oldest first, in batches; returns how many rows."""
        moved = 0
        while True:
            async with self._pg.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    f"""SELECT {_OUTBOX_COLUMNS} FROM event_history_outbox
                        ORDER BY staged_at LIMIT {RELAY_BATCH} FOR UPDATE SKIP LOCKED"""
                )
                moved += await self._move(conn, rows)
            if len(rows) < RELAY_BATCH:
                return moved

    @contextlib.asynccontextmanager
    async def background_relay(self, interval: float) -> AsyncIterator[None]:
        """Relay leftovers every ``interval`` seconds while the context is open.

        A failed round (ScyllaDB or PostgreSQL unavailable) is logged and retried on the next
        tick; the rows wait safely in the outbox meanwhile.
        """

        async def run() -> None:
            while True:
                try:
                    moved = await self.relay_leftovers()
                    if moved:
                        log.info("relayed %d leftover event-history row(s)", moved)
                except Exception:  # any failure: keep the rows, try again next tick
                    log.warning("event-history relay failed; retrying", exc_info=True)
                await asyncio.sleep(interval)

        task = asyncio.create_task(run(), name="event-history-relay")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def page(self, event_id: int, limit: int, cursor: str | None = None) -> HistoryPage:
        """The event's history newest first; ``cursor`` continues after a previous page."""
        if cursor is None:
            args: list[Any] = [event_id, limit + 1]
            statement = await self._statement(self._latest)
        else:
            changed_at, change_id = decode_cursor(cursor)
            statement = await self._statement(self._older)
            args = [event_id, changed_at, change_id, limit + 1]
        rows = await execute_async(self._cql.session, statement, args)
        entries = [_entry(r) for r in rows[:limit]]
        more = len(rows) > limit
        return HistoryPage(entries, encode_cursor(entries[-1]) if more and entries else None)
