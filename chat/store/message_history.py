"""Reading chat history: latest N, before/after a cursor, a time range, and per-user activity.

Messages live in 10-day partitions ``(event_id, bucket)`` (see docs/data-model.md), so every
read here walks partitions: the small index table ``chat_event_buckets`` (``chat_user_buckets``
for activity) lists the buckets that hold messages, in either direction, and each bucket is
read with one clustering slice until the page is full. Buckets that are not in the index are
never touched, which is how empty stretches of time (an event quiet for a year) cost nothing.

Every slice is the same shape, ``(created_at, message_id) > lo AND (created_at, message_id) <
hi``, with open ends filled in by the bucket's own time bounds. A bound "just before every
message of millisecond t" is ``(t, MIN_TIMEUUID)``: CQL orders ``timeuuid`` by its timestamp
first and no real message id has a 1582 timestamp. One statement shape per direction keeps the
prepared statements few and the boundary logic in one place — which is what makes paging
correct at bucket boundaries: a page that ends in one bucket continues from its last key,
whichever bucket the next row is in, so no row is read twice or skipped.

Pages fetch ``limit + 1`` rows so that ``next_cursor`` is only set when another page exists.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cassandra.query import PreparedStatement

from chat.config import Settings
from chat.domain.messages import (
    BUCKET_MS,
    Message,
    bucket_of,
    created_at_ms_of,
    created_at_of,
    datetime_from_ms,
    decode_cursor,
    encode_cursor,
    ms_of,
    ms_of_ticks,
)
from chat.errors import FieldError, ValidationFailed
from chat.store.cql import CqlStore, execute_async
from chat.store.messages import MESSAGE_COLUMNS, message_from_row

MAX_PAGE_SIZE = 500
"""Largest page a caller may ask for; bounds the rows one request reads."""

MIN_TIMEUUID = uuid.UUID(fields=(0, 0, 0x1000, 0x80, 0x80, 0x808080808080))
"""A version-1 UUID with the smallest timestamp: sorts before every real id of a millisecond."""

BEGINNING_CURSOR = encode_cursor(MIN_TIMEUUID)
"""A cursor before every message: what ``subscribed`` answers for an event with none yet, so
a client always has a cursor to resume from."""

_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1

_ACTIVITY_COLUMNS = "user_id, created_at, message_id, event_id, message, is_deleted"


_FLIP_SIGN = bytes(b ^ 0x80 for b in range(256))


def _tie_break(message_id: uuid.UUID) -> bytes:
    """The last 8 bytes of a timeuuid as CQL compares them: signed, byte by byte (flipping
    each byte's sign bit makes Python's unsigned byte comparison agree)."""
    return message_id.bytes[8:].translate(_FLIP_SIGN)


MAX_TIE_BREAK_UUID_FIELDS = (0xBF, 0x7F, 0x7F7F7F7F7F7F)
"""clock_seq_hi_variant, clock_seq_low and node of the greatest RFC 4122 timeuuid of a tick in
CQL's order (what the driver's ``max_uuid_from_time`` uses)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A point in the ``(created_at, message_id)`` order of one partition's clustering key.

    Compared exactly as CQL compares the key: milliseconds, then the id's timestamp, then the
    rest of the id as signed bytes (ids of two nodes can share a 100-ns tick, and the gateway's
    cross-node order must then agree with the store's).
    """

    created_at_ms: int
    id_time: int
    tie_break: bytes
    id_bytes: bytes = field(compare=False)

    @classmethod
    def of(cls, message_id: uuid.UUID) -> Position:
        """The key of an existing message."""
        return cls(
            created_at_ms_of(message_id), message_id.time, _tie_break(message_id), message_id.bytes
        )

    @classmethod
    def before_ms(cls, created_at_ms: int) -> Position:
        """A bound just before every message of millisecond ``created_at_ms``."""
        return cls(created_at_ms, MIN_TIMEUUID.time, _tie_break(MIN_TIMEUUID), MIN_TIMEUUID.bytes)

    @classmethod
    def after_ticks(cls, ticks: int) -> Position:
        """A bound at the greatest possible id whose timestamp is ``ticks`` (100-ns units of
        ``uuid.time``): every id of a later tick is above it, every id of that tick or an
        earlier one at or below it."""
        hi_variant, low, node = MAX_TIE_BREAK_UUID_FIELDS
        bound = uuid.UUID(
            fields=(
                ticks & 0xFFFFFFFF,
                (ticks >> 32) & 0xFFFF,
                ((ticks >> 48) & 0x0FFF) | 0x1000,
                hi_variant,
                low,
                node,
            )
        )
        return cls(ms_of_ticks(ticks), ticks, _tie_break(bound), bound.bytes)

    @property
    def message_id(self) -> uuid.UUID:
        """The id at this position (a real message's, or the bound's own timeuuid)."""
        return uuid.UUID(bytes=self.id_bytes)

    def bind(self) -> tuple[datetime, uuid.UUID]:
        """The two bind values of a tuple relation ``(created_at, message_id) < (?, ?)``."""
        return datetime_from_ms(self.created_at_ms), uuid.UUID(bytes=self.id_bytes)


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of an event's messages; ``next_cursor`` is None when no further page exists.

    For :meth:`MessageHistory.after` a None cursor means "caught up for now": to poll for
    newer messages later, pass ``encode_cursor(messages[-1].message_id)`` (or
    :attr:`resume_cursor`).
    """

    messages: list[Message]
    next_cursor: str | None

    @property
    def resume_cursor(self) -> str | None:
        """The cursor of the last message on this page, whether or not more pages exist."""
        return encode_cursor(self.messages[-1].message_id) if self.messages else None


@dataclass(frozen=True, slots=True)
class ActivityItem:
    """One of a user's own messages, as the per-user index holds it."""

    user_id: int
    event_id: int
    message_id: uuid.UUID
    created_at: datetime
    text: str
    is_deleted: bool


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """One page of a user's messages across events, newest first."""

    items: list[ActivityItem]
    next_cursor: str | None


def _activity_from_row(row: Any) -> ActivityItem:
    return ActivityItem(
        user_id=row.user_id,
        event_id=row.event_id,
        message_id=row.message_id,
        created_at=created_at_of(row.message_id),
        text=row.message or "",
        is_deleted=bool(row.is_deleted),
    )


def check_limit(limit: int) -> None:
    """Raise ValidationFailed unless ``1 <= limit <= MAX_PAGE_SIZE``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_PAGE_SIZE}",
            errors=[FieldError("limit", f"between 1 and {MAX_PAGE_SIZE}")],
        )


@dataclass(frozen=True, slots=True)
class BucketedTable:
    """The four statements that walk one bucketed table (messages by event, or by user).

    ``*_buckets`` list the non-empty buckets of a partition owner between two buckets
    (inclusive); ``*_slice`` read one bucket between two exclusive key bounds, up to a limit.
    """

    newest_buckets: PreparedStatement
    oldest_buckets: PreparedStatement
    newest_slice: PreparedStatement
    oldest_slice: PreparedStatement

    @classmethod
    async def prepare(
        cls, cql: CqlStore, table: str, index: str, owner: str, columns: str
    ) -> BucketedTable:
        """Prepare the statements (once per store) for ``table`` and its bucket ``index``."""
        buckets = f"SELECT bucket FROM {index} WHERE {owner} = ? AND bucket >= ? AND bucket <= ?"
        sliced = (
            f"SELECT {columns} FROM {table} WHERE {owner} = ? AND bucket = ?"
            " AND (created_at, message_id) > (?, ?) AND (created_at, message_id) < (?, ?)"
        )
        statements = await asyncio.gather(
            cql.prepare(buckets, idempotent=True),
            cql.prepare(buckets + " ORDER BY bucket ASC", idempotent=True),
            cql.prepare(sliced + " LIMIT ?", idempotent=True),
            cql.prepare(
                sliced + " ORDER BY created_at ASC, message_id ASC LIMIT ?", idempotent=True
            ),
        )
        return cls(*statements)

    async def buckets(
        self, cql: CqlStore, owner: int, lo: Position | None, hi: Position | None, *, newest: bool
    ) -> list[int]:
        """The non-empty buckets that may hold keys between ``lo`` and ``hi``, in walk order."""
        first = bucket_of(lo.created_at_ms) if lo is not None else _INT_MIN
        last = bucket_of(hi.created_at_ms) if hi is not None else _INT_MAX
        statement = self.newest_buckets if newest else self.oldest_buckets
        rows = await execute_async(cql.session, statement, (owner, first, last))
        return [row.bucket for row in rows]

    async def walk(
        self,
        cql: CqlStore,
        owner: int,
        lo: Position | None,
        hi: Position | None,
        want: int,
        *,
        newest: bool,
    ) -> list[Any]:
        """Up to ``want`` rows strictly between ``lo`` and ``hi`` across buckets, in order."""
        rows: list[Any] = []
        if lo is not None and hi is not None and lo >= hi:
            return rows
        for bucket in await self.buckets(cql, owner, lo, hi, newest=newest):
            rows.extend(await self.slice(cql, owner, bucket, lo, hi, want - len(rows), newest))
            if len(rows) >= want:
                break
        return rows

    async def slice(
        self,
        cql: CqlStore,
        owner: int,
        bucket: int,
        lo: Position | None,
        hi: Position | None,
        limit: int,
        newest: bool,
    ) -> list[Any]:
        """Up to ``limit`` rows of one bucket strictly between ``lo`` and ``hi``."""
        low = lo if lo is not None else Position.before_ms(bucket * BUCKET_MS)
        high = hi if hi is not None else Position.before_ms((bucket + 1) * BUCKET_MS)
        statement = self.newest_slice if newest else self.oldest_slice
        return await execute_async(
            cql.session, statement, (owner, bucket, *low.bind(), *high.bind(), limit)
        )


class MessageHistory:
    """History reads of events' messages and users' activity.

    Statements are prepared on first use (or by :meth:`prepare` at start-up, which surfaces a
    schema mismatch before the first request does).
    """

    def __init__(self, cql: CqlStore, settings: Settings) -> None:
        self._cql = cql
        self._keyspace = settings.cql_keyspace
        self._tables: tuple[BucketedTable, BucketedTable] | None = None
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Prepare every statement this store runs."""
        await self._statements()

    async def _statements(self) -> tuple[BucketedTable, BucketedTable]:
        if self._tables is None:
            async with self._lock:
                if self._tables is None:
                    ks = self._keyspace
                    self._tables = (
                        await BucketedTable.prepare(
                            self._cql,
                            f"{ks}.chat_messages_by_event",
                            f"{ks}.chat_event_buckets",
                            "event_id",
                            MESSAGE_COLUMNS,
                        ),
                        await BucketedTable.prepare(
                            self._cql,
                            f"{ks}.chat_messages_by_user",
                            f"{ks}.chat_user_buckets",
                            "user_id",
                            _ACTIVITY_COLUMNS,
                        ),
                    )
        return self._tables

    async def latest(self, event_id: int, limit: int) -> MessagePage:
        """The newest ``limit`` messages, newest first; the cursor continues with older ones."""
        return await self._messages(event_id, None, None, limit, newest=True)

    async def before(self, event_id: int, cursor: str, limit: int) -> MessagePage:
        """Messages older than the cursor's message, newest first."""
        hi = Position.of(decode_cursor(cursor))
        return await self._messages(event_id, None, hi, limit, newest=True)

    async def after(self, event_id: int, cursor: str | None, limit: int) -> MessagePage:
        """Messages newer than the cursor's (all of them when None), OLDEST first.

        This is the replay/resume read: a client that reconnects passes the last message it
        saw and receives what it missed in the order it was sent.
        """
        lo = Position.of(decode_cursor(cursor)) if cursor is not None else None
        return await self._messages(event_id, lo, None, limit, newest=False)

    async def after_position(self, event_id: int, after: Position, limit: int) -> MessagePage:
        """Messages above a position that need not be a message's own (a node's floor),
        oldest first: what the cross-node order reads when a node died."""
        return await self._messages(event_id, after, None, limit, newest=False)

    async def between(
        self, event_id: int, start: datetime, end: datetime, limit: int, cursor: str | None = None
    ) -> MessagePage:
        """Messages created in ``[start, end)``, newest first; the cursor continues older."""
        start_ms, end_ms = ms_of(start), ms_of(end)
        if start_ms >= end_ms:
            raise ValidationFailed(
                "the time range is empty: start must be before end",
                errors=[FieldError("start", "must be before end")],
            )
        hi = Position.before_ms(end_ms)
        if cursor is not None:
            hi = min(hi, Position.of(decode_cursor(cursor)))
        return await self._messages(event_id, Position.before_ms(start_ms), hi, limit, newest=True)

    async def activity(self, user_id: int, limit: int, cursor: str | None = None) -> ActivityPage:
        """The user's own messages across all events, newest first."""
        check_limit(limit)
        hi = Position.of(decode_cursor(cursor)) if cursor is not None else None
        _, by_user = await self._statements()
        rows = await by_user.walk(self._cql, user_id, None, hi, limit + 1, newest=True)
        items = [_activity_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ActivityPage(items, encode_cursor(items[-1].message_id) if more else None)

    async def _messages(
        self, event_id: int, lo: Position | None, hi: Position | None, limit: int, *, newest: bool
    ) -> MessagePage:
        check_limit(limit)
        by_event, _ = await self._statements()
        rows = await by_event.walk(self._cql, event_id, lo, hi, limit + 1, newest=newest)
        messages = [message_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return MessagePage(messages, encode_cursor(messages[-1].message_id) if more else None)
