"""Unread counts from read positions: exact under concurrent senders, retries and races.

There is no counter to drift (see docs/data-model.md, "No counters for unread"). Each user
keeps one *read position* per event — the id of the last message they have read — and the
unread count is computed when asked: the messages after that position, not sent by the user
and not deleted, counted newest first across the event's buckets, at most
:data:`~chat.store.cql.unread_tally.UNREAD_CAP` and looking at no more than
:data:`~chat.store.cql.unread_tally.UNREAD_SCAN_LIMIT` messages
(:mod:`chat.store.cql.unread_tally`).

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

**How a count is read** — in few requests, because this process spends far more CPU per
driver request than the server spends on a small partition:

1. the read positions, one request per 100 events of a user (``GET /v1/me/unread``) or per
   100 users of an event (many subscribers at once), and at the same time the newest
   :data:`BUCKET_LISTING` buckets of every event from the bucket index, one request per 100
   events — an event whose newest bucket is older than every position has nothing unread and
   costs nothing more;
2. the newest :data:`GROUP_WINDOW` messages of up to 100 events with the same newest bucket
   in one request (``event_id IN ? AND bucket = ? ... PER PARTITION LIMIT``), above the lowest
   position among them: most counts are decided here;
3. what is still open goes on in rounds, only through the buckets the index lists: events
   whose counts reach into an older bucket read its newest rows grouped again (one request per
   100 events with the same next bucket); an event with more than ``GROUP_WINDOW`` messages
   to look at in one bucket continues alone with single-partition slices of :data:`CHUNK`
   rows (at most :data:`CONCURRENT_EVENTS` events at a time).

Counts of one event asked for by many users at about the same time (a resume storm) are one
such read for all of them: :meth:`UnreadStore.count` is coalesced per event
(:class:`~chat.store.cql.read_coalescing.ReadCoalescer`), and every user's count is decided from
the same newest-first rows. Grouped reads go to a replica of their partitions
(:mod:`chat.store.cql.read_routing`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.query import PreparedStatement, tuple_factory

from chat.config import Settings
from chat.domain.messages import (
    BUCKET_MS,
    bucket_of,
    created_at_ms_of,
    created_at_us_of,
    datetime_from_ms,
)
from chat.domain.position import Position, order_key
from chat.errors import NotFound
from chat.store.cql.message_history import INT_MIN, BucketedTable
from chat.store.cql.read_coalescing import ReadCoalescer
from chat.store.cql.read_routing import (
    MAX_IN_KEYS,
    bigint_key,
    chunks_by_replica,
    event_bucket_key,
    replica_grouping,
    routed,
)
from chat.store.cql.unread_tally import UNREAD_CAP, UNREAD_SCAN_LIMIT, EventRows
from chat.store.driver.prepared import PreparedOnce
from chat.store.driver.session import READS, CqlStore, execute_async

__all__ = ["UNREAD_CAP", "UNREAD_SCAN_LIMIT", "UnreadStore", "write_timestamp_of"]

GROUP_WINDOW = 32
"""Newest messages per event in a grouped read: enough to decide most counts at once, few
enough that the rows read above a position already read stay cheap."""
CHUNK = 500
"""Rows per single-partition slice when a count continues event by event."""
BUCKET_LISTING = 16
"""Newest buckets per event listed at once (more are listed only if a count gets there)."""
CONCURRENT_EVENTS = 16
"""Events whose counts continue one by one at the same time."""


def write_timestamp_of(message_id: uuid.UUID) -> int:
    """The message's own time in Unix microseconds: the write timestamp of a read position."""
    return created_at_us_of(message_id)


@dataclass(frozen=True, slots=True)
class _Statements:
    messages: BucketedTable
    grouped_newest: PreparedStatement
    grouped_buckets: PreparedStatement
    older_buckets: PreparedStatement
    message_exists: PreparedStatement
    write_position: PreparedStatement
    read_position: PreparedStatement
    positions_of_user: PreparedStatement
    positions_in_event: PreparedStatement
    tuples: Any
    """The READS execution profile with plain-tuple rows, for the grouped reads."""


@dataclass(slots=True)
class _EventCount:
    """The counts of one event under way: its readers, the rows read, what is left to read."""

    event_id: int
    readers: dict[int, Position | None]
    buckets: list[int]
    """Non-empty buckets still to read, newest first; the first one is being read."""
    listed_all: bool
    """Whether ``buckets`` holds every bucket the counts may need."""
    rows: EventRows = field(default_factory=EventRows)
    counts: dict[int, int] = field(default_factory=dict)
    hi: Position | None = None
    """Reading continues below this key in ``buckets[0]`` (None: from the bucket's top)."""
    floor: Position | None = None
    floor_bucket: int = INT_MIN
    keys: dict[int, int | None] = field(default_factory=dict)
    """Each reader's position as an order key."""
    read_down_to: int | None = None
    """The oldest bucket read to its end."""

    def __post_init__(self) -> None:
        self.keys = {u: p.order_key if p is not None else None for u, p in self.readers.items()}
        if self.readers and None not in self.readers.values():
            self.floor = min(p for p in self.readers.values() if p is not None)
            self.floor_bucket = bucket_of(self.floor.created_at_ms)
        listed = self.buckets
        self.buckets = [b for b in listed if b >= self.floor_bucket]
        if len(self.buckets) < len(listed):
            self.listed_all = True  # the listing reached below every position
        if not self.buckets and self.listed_all:
            self.rows.finish()

    def settled(self) -> bool:
        """Decide every count the rows read so far decide; True when all are decided."""
        for user_id, position in self.keys.items():
            if user_id not in self.counts:
                count = self.rows.count(user_id, position)
                if count is not None:
                    self.counts[user_id] = count
        return len(self.counts) == len(self.readers)

    def lower(self, bucket: int) -> Position | None:
        """The bound to read ``bucket`` above: the lowest position if it lies in that bucket,
        else None (the whole bucket)."""
        return self.floor if self.floor_bucket == bucket else None

    def took(self, rows: list[Any], limit: int, lo: Position | None) -> None:
        """``(message_id, sender_id, is_deleted)`` rows read newest first from ``buckets[0]``
        between ``lo`` and ``hi``, up to ``limit``; fewer than ``limit`` means nothing else
        lies between the bounds."""
        self.rows.add((order_key(m), sender, bool(deleted)) for m, sender, deleted in rows)
        if len(rows) >= limit:
            self.hi = Position.of(rows[-1][0])
            self.rows.cover(self.hi.order_key)
        elif lo is not None:
            self.rows.cover(lo.order_key)  # lo is at or below every reader's position
        else:
            bucket = self.buckets.pop(0)
            self.read_down_to = bucket
            self.rows.cover(Position.before_ms(bucket * BUCKET_MS).order_key)
            self.hi = None
            if not self.buckets and self.listed_all:
                self.rows.finish()


class UnreadStore(PreparedOnce[_Statements]):
    """Read positions and the unread counts derived from them."""

    def __init__(self, cql: CqlStore, settings: Settings) -> None:
        super().__init__(cql, settings)
        self.by_event: ReadCoalescer[int, int, int] = ReadCoalescer(self._count_readers)

    async def _prepare_statements(self) -> _Statements:
        ks, cql = self._keyspace, self._cql
        messages = await BucketedTable.prepare(
            cql,
            f"{ks}.chat_messages_by_event",
            f"{ks}.chat_event_buckets",
            "event_id",
            "message_id, sender_id, is_deleted",
        )
        grouped_newest = await cql.prepare_read(
            f"SELECT event_id, message_id, sender_id, is_deleted FROM {ks}.chat_messages_by_event"
            " WHERE event_id IN ? AND bucket = ?"
            " AND (created_at, message_id) > (?, ?) AND (created_at, message_id) < (?, ?)"
            " PER PARTITION LIMIT ?"
        )
        grouped_buckets = await cql.prepare_read(
            f"SELECT event_id, bucket FROM {ks}.chat_event_buckets WHERE event_id IN ?"
            " PER PARTITION LIMIT ?"
        )
        older_buckets = await cql.prepare_read(
            f"SELECT bucket FROM {ks}.chat_event_buckets"
            " WHERE event_id = ? AND bucket >= ? AND bucket < ? LIMIT ?"
        )
        message_exists = await cql.prepare_read(
            f"SELECT message_id FROM {ks}.chat_messages_by_event"
            " WHERE event_id = ? AND bucket = ? AND created_at = ? AND message_id = ?"
        )
        # Idempotent: the same message always carries the same write timestamp.
        write_position = await cql.prepare(
            f"INSERT INTO {ks}.chat_read_positions"
            " (user_id, event_id, read_created_at, read_message_id) VALUES (?, ?, ?, ?)"
            " USING TIMESTAMP ?",
            idempotent=True,
        )
        read_position = await cql.prepare_read(
            f"SELECT read_message_id FROM {ks}.chat_read_positions"
            " WHERE user_id = ? AND event_id = ?"
        )
        positions_of_user = await cql.prepare_read(
            f"SELECT event_id, read_message_id FROM {ks}.chat_read_positions"
            " WHERE user_id = ? AND event_id IN ?"
        )
        positions_in_event = await cql.prepare_read(
            f"SELECT user_id, read_message_id FROM {ks}.chat_read_positions"
            " WHERE user_id IN ? AND event_id = ?"
        )
        tuples = cql.session.execution_profile_clone_update(READS, row_factory=tuple_factory)
        return _Statements(
            messages,
            grouped_newest,
            grouped_buckets,
            older_buckets,
            message_exists,
            write_position,
            read_position,
            positions_of_user,
            positions_in_event,
            tuples,
        )

    # ------------------------------------------------------------------ positions

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
            execution_profile=READS,
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
        rows = await execute_async(
            self._cql.session,
            statements.read_position,
            (user_id, event_id),
            execution_profile=READS,
        )
        return rows[0].read_message_id if rows else None

    # ------------------------------------------------------------------ counts

    async def count(self, user_id: int, event_id: int) -> int:
        """Messages after the user's read position, not their own, not deleted (bounded).

        Callers asking for counts of the same event at about the same time share one read.
        """
        return await self.by_event.get(event_id, user_id)

    async def counts(self, user_id: int, event_ids: Sequence[int]) -> dict[int, int]:
        """Unread counts of several events of one user, in a few grouped reads."""
        unique = list(dict.fromkeys(event_ids))
        if not unique:
            return {}
        statements = await self._prepared()
        positions, listings = await asyncio.gather(
            self._positions_of_user(statements, user_id, unique),
            self._list_buckets(statements, unique),
        )
        readers = {e: {user_id: positions.get(e)} for e in unique}
        counted = await self._count(statements, readers, listings)
        return {e: counted[e][user_id] for e in unique}

    async def _count_readers(self, event_id: int, user_ids: list[int]) -> dict[int, int]:
        """The coalesced read behind :meth:`count`: every waiting user of one event."""
        statements = await self._prepared()
        positions, listings = await asyncio.gather(
            self._positions_in_event(statements, event_id, user_ids),
            self._list_buckets(statements, [event_id]),
        )
        readers = {event_id: {u: positions.get(u) for u in user_ids}}
        return (await self._count(statements, readers, listings))[event_id]

    async def _grouped(
        self,
        statement: PreparedStatement,
        chunks: list[tuple[list[int], bytes | None]],
        values: Callable[[list[int]], tuple[Any, ...]],
        profile: Any,
    ) -> list[list[Any]]:
        """One read per chunk of keys, all at once, each routed by its chunk's key."""
        return await asyncio.gather(
            *(
                execute_async(
                    self._cql.session,
                    routed(statement, values(chunk), key),
                    execution_profile=profile,
                )
                for chunk, key in chunks
            )
        )

    async def _positions_of_user(
        self, statements: _Statements, user_id: int, event_ids: list[int]
    ) -> dict[int, Position]:
        """One user's positions: one read per 100 events (a clustering-key ``IN``)."""
        chunks = chunks_by_replica(event_ids, bigint_key, None)  # one partition: no routing
        found = await self._grouped(
            statements.positions_of_user, chunks, lambda c: (user_id, c), statements.tuples
        )
        return {e: Position.of(m) for rows in found for e, m in rows}

    async def _positions_in_event(
        self, statements: _Statements, event_id: int, user_ids: list[int]
    ) -> dict[int, Position]:
        """Many users' positions in one event: one read per 100 users that share a replica."""
        chunks = chunks_by_replica(user_ids, bigint_key, self._replicas())
        found = await self._grouped(
            statements.positions_in_event, chunks, lambda c: (c, event_id), statements.tuples
        )
        return {u: Position.of(m) for rows in found for u, m in rows}

    async def _list_buckets(
        self, statements: _Statements, event_ids: list[int]
    ) -> dict[int, list[int]]:
        """The newest ``BUCKET_LISTING`` non-empty buckets of each event, newest first."""
        chunks = chunks_by_replica(event_ids, bigint_key, self._replicas())
        found = await self._grouped(
            statements.grouped_buckets, chunks, lambda c: (c, BUCKET_LISTING), statements.tuples
        )
        listed: dict[int, list[int]] = {e: [] for e in event_ids}
        for rows in found:
            for event_id, bucket in rows:
                listed[event_id].append(bucket)
        return listed

    def _replicas(self) -> Any:
        return replica_grouping(self._cql, self._keyspace)

    async def _count(
        self,
        statements: _Statements,
        readers: dict[int, dict[int, Position | None]],
        listings: dict[int, list[int]],
    ) -> dict[int, dict[int, int]]:
        """Every reader's count of every event, in rounds until all are decided."""
        walks = [
            _EventCount(
                event_id,
                event_readers,
                listings[event_id],
                listed_all=len(listings[event_id]) < BUCKET_LISTING,
            )
            for event_id, event_readers in readers.items()
        ]
        open_walks = [w for w in walks if not w.settled()]
        limiter = asyncio.Semaphore(CONCURRENT_EVENTS)
        while open_walks:
            # At the top of a bucket: grouped with every other event at the top of the same
            # bucket. Inside a bucket (more than a group's window to count): one by one.
            at_top = [w for w in open_walks if w.buckets and w.hi is None]
            inside = [w for w in open_walks if w.buckets and w.hi is not None]
            unlisted = [w for w in open_walks if not w.buckets]
            await asyncio.gather(
                self._read_tops(statements, at_top),
                *(self._read_on(statements, w, limiter) for w in inside),
                *(self._list_older(statements, w) for w in unlisted),
            )
            open_walks = [w for w in open_walks if not w.settled()]
        return {w.event_id: w.counts for w in walks}

    async def _read_tops(self, statements: _Statements, walks: list[_EventCount]) -> None:
        """The newest ``GROUP_WINDOW`` rows of the next bucket of many events, one request per
        group of events with the same next bucket (and, on a cluster, the same replica)."""
        by_bucket: dict[int, list[_EventCount]] = {}
        for walk in walks:
            by_bucket.setdefault(walk.buckets[0], []).append(walk)
        per_read = max(1, min(MAX_IN_KEYS, self._cql.read_page_size // GROUP_WINDOW))
        replicas = self._replicas()
        reads = []
        for bucket, members in by_bucket.items():
            chunks = chunks_by_replica(
                members, lambda w: event_bucket_key(w.event_id, w.buckets[0]), replicas, per_read
            )
            for chunk, key in chunks:
                reads.append(self._read_group(statements, bucket, chunk, key))
        await asyncio.gather(*reads)

    async def _read_group(
        self, statements: _Statements, bucket: int, walks: list[_EventCount], key: bytes | None
    ) -> None:
        lowers = [w.lower(bucket) for w in walks]
        lo = None if any(b is None for b in lowers) else min(b for b in lowers if b is not None)
        low = lo if lo is not None else Position.before_ms(bucket * BUCKET_MS)
        high = Position.before_ms((bucket + 1) * BUCKET_MS)
        values = ([w.event_id for w in walks], bucket, *low.bind(), *high.bind(), GROUP_WINDOW)
        rows = await execute_async(
            self._cql.session,
            routed(statements.grouped_newest, values, key),
            execution_profile=statements.tuples,
        )
        by_event: dict[int, list[Any]] = {w.event_id: [] for w in walks}
        for event_id, *row in rows:
            by_event[event_id].append(row)
        for walk in walks:
            walk.took(by_event[walk.event_id], GROUP_WINDOW, lo)

    async def _read_on(
        self, statements: _Statements, walk: _EventCount, limiter: asyncio.Semaphore
    ) -> None:
        """The next ``CHUNK`` rows of one event inside the bucket it is reading."""
        async with limiter:
            bucket = walk.buckets[0]
            lo = walk.lower(bucket)
            rows = await statements.messages.slice(
                self._cql,
                walk.event_id,
                bucket,
                lo,
                walk.hi,
                CHUNK,
                newest=True,
                profile=statements.tuples,
            )
            walk.took(rows, CHUNK, lo)

    async def _list_older(self, statements: _Statements, walk: _EventCount) -> None:
        """The next buckets below those listed so far, down to the lowest position's."""
        assert walk.read_down_to is not None, "buckets are listed further only below read ones"
        rows = await execute_async(
            self._cql.session,
            statements.older_buckets,
            (walk.event_id, walk.floor_bucket, walk.read_down_to, BUCKET_LISTING),
            execution_profile=READS,
        )
        walk.buckets = [row.bucket for row in rows]
        walk.listed_all = len(rows) < BUCKET_LISTING
        if not walk.buckets:
            walk.rows.finish()
