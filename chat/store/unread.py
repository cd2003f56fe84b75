"""Unread counts from read positions: exact under concurrent senders, retries and races.

There is no counter to drift (see docs/data-model.md, "No counters for unread"). Each user
keeps one *read position* per event — the id of the last message they have read — and the
unread count is computed when asked: the messages after that position, not sent by the user
and not deleted, counted across the event's buckets and capped at :data:`UNREAD_CAP`.

Why this is exact:

- a retried send rewrites the same rows under the same key, so it adds nothing to count;
- a message racing a "mark read" is unread exactly when its key sorts after the position —
  there is no moment at which a count was taken and a message "missed" it;
- the position is written ``USING TIMESTAMP`` equal to the read message's own time in
  microseconds, so whatever order concurrent "mark read" requests reach the replicas in, the
  latest message wins and the position never moves backwards.

Two messages in the same microsecond carry the same write timestamp; replicas then keep the
cell with the greater value (Cassandra's and ScyllaDB's tie-break). A timeuuid's bytes start
with the low bits of its time, so of two ids from one process (same node, same clock
sequence) the later one is the greater — the tie resolves forward too. Only ids from two
processes in the same microsecond (or straddling the ~7-minute wrap of those low bits) may
resolve to the earlier one; the position then rests one message early until the next
"mark read", and the count is still exactly "messages after the position".

The cost is a read proportional to the unread count (at most ``UNREAD_CAP`` of other users'
rows plus the reader's own), which is what a client shows anyway ("999+").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cassandra.query import PreparedStatement

from chat.domain.messages import bucket_of, created_at_ms_of, created_at_us_of, datetime_from_ms
from chat.errors import NotFound
from chat.store.cql import execute_async
from chat.store.message_history import BucketedTable, Position
from chat.store.prepared import PreparedOnce

UNREAD_CAP = 1000
"""Counts stop here; clients show "999+"-style badges, and the read stays bounded."""

_COUNT_CHUNK = 500
_COUNTS_CONCURRENCY = 16


def write_timestamp_of(message_id: uuid.UUID) -> int:
    """The message's own time in Unix microseconds: the write timestamp of a read position."""
    return created_at_us_of(message_id)


@dataclass(frozen=True, slots=True)
class _Statements:
    messages: BucketedTable
    message_exists: PreparedStatement
    write_position: PreparedStatement
    read_position: PreparedStatement
    read_positions: PreparedStatement


class UnreadStore(PreparedOnce[_Statements]):
    """Read positions and the unread counts derived from them."""

    async def _prepare_statements(self) -> _Statements:
        ks = self._keyspace
        messages = await BucketedTable.prepare(
            self._cql,
            f"{ks}.chat_messages_by_event",
            f"{ks}.chat_event_buckets",
            "event_id",
            "sender_id, is_deleted, created_at, message_id",
        )
        message_exists = await self._cql.prepare(
            f"SELECT message_id FROM {ks}.chat_messages_by_event"
            " WHERE event_id = ? AND bucket = ? AND created_at = ? AND message_id = ?",
            idempotent=True,
        )
        # Idempotent: the same message always carries the same write timestamp.
        write_position = await self._cql.prepare(
            f"INSERT INTO {ks}.chat_read_positions"
            " (user_id, event_id, read_created_at, read_message_id) VALUES (?, ?, ?, ?)"
            " USING TIMESTAMP ?",
            idempotent=True,
        )
        read_position = await self._cql.prepare(
            f"SELECT read_message_id FROM {ks}.chat_read_positions"
            " WHERE user_id = ? AND event_id = ?",
            idempotent=True,
        )
        read_positions = await self._cql.prepare(
            f"SELECT event_id, read_message_id FROM {ks}.chat_read_positions"
            " WHERE user_id = ? AND event_id IN ?",
            idempotent=True,
        )
        return _Statements(messages, message_exists, write_position, read_position, read_positions)

    async def mark_read(self, user_id: int, event_id: int, message_id: uuid.UUID) -> int:
        """Move the user's read position up to ``message_id``; returns the new unread count.

        Marking an older message than the current position changes nothing (the position only
        moves forward). NotFound when the message is not in this event.
        """
        statements = await self._prepared()
        if message_id.version != 1:
            raise NotFound(f"message {message_id} not found in event {event_id}")
        created_ms = created_at_ms_of(message_id)
        created_at = datetime_from_ms(created_ms)
        found = await execute_async(
            self._cql.session,
            statements.message_exists,
            (event_id, bucket_of(created_ms), created_at, message_id),
        )
        if not found:
            raise NotFound(f"message {message_id} not found in event {event_id}")
        await execute_async(
            self._cql.session,
            statements.write_position,
            (user_id, event_id, created_at, message_id, write_timestamp_of(message_id)),
        )
        return await self.count(user_id, event_id)

    async def read_position(self, user_id: int, event_id: int) -> uuid.UUID | None:
        """The id of the last message the user has read in the event, if any."""
        statements = await self._prepared()
        rows = await execute_async(self._cql.session, statements.read_position, (user_id, event_id))
        return rows[0].read_message_id if rows else None

    async def count(self, user_id: int, event_id: int) -> int:
        """Messages after the user's read position, not their own, not deleted (capped)."""
        return await self._count_after(
            user_id, event_id, await self.read_position(user_id, event_id)
        )

    async def counts(self, user_id: int, event_ids: Sequence[int]) -> dict[int, int]:
        """Unread counts of several events (one positions read, bounded concurrent counts)."""
        statements = await self._prepared()
        unique = list(dict.fromkeys(event_ids))
        if not unique:
            return {}
        rows = await execute_async(self._cql.session, statements.read_positions, (user_id, unique))
        positions = {row.event_id: row.read_message_id for row in rows}
        limiter = asyncio.Semaphore(_COUNTS_CONCURRENCY)

        async def one(event_id: int) -> int:
            async with limiter:
                return await self._count_after(user_id, event_id, positions.get(event_id))

        results = await asyncio.gather(*(one(event_id) for event_id in unique))
        return dict(zip(unique, results, strict=True))

    async def _count_after(self, user_id: int, event_id: int, position: uuid.UUID | None) -> int:
        """Count newest first, bucket by bucket, in chunks, stopping at the cap."""
        table = (await self._prepared()).messages
        lo = Position.of(position) if position is not None else None
        total = 0
        for bucket in await table.buckets(self._cql, event_id, lo, None, newest=True):
            hi: Position | None = None
            while True:
                rows = await table.slice(
                    self._cql, event_id, bucket, lo, hi, _COUNT_CHUNK, newest=True
                )
                total += sum(1 for r in rows if r.sender_id != user_id and not r.is_deleted)
                if total >= UNREAD_CAP:
                    return UNREAD_CAP
                if len(rows) < _COUNT_CHUNK:
                    break
                hi = Position.of(rows[-1].message_id)
        return total
