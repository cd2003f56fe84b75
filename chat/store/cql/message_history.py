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
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cassandra.query import PreparedStatement

from chat.config import Settings
from chat.domain.messages import (
    BUCKET_MS,
    Message,
    bucket_of,
    created_at_ms_of,
    created_at_of,
    decode_cursor,
    encode_cursor,
    ms_of,
)
from chat.domain.position import MIN_TIMEUUID, Position
from chat.errors import FieldError, ValidationFailed
from chat.store.cql.messages import MESSAGE_COLUMNS, message_from_row
from chat.store.cql.read_coalescing import ReadCoalescer
from chat.store.driver.session import READS, CqlStore, execute_async

MAX_PAGE_SIZE = 500
"""Largest page a caller may ask for; bounds the rows one request reads."""

BEGINNING_CURSOR = encode_cursor(MIN_TIMEUUID)
"""A cursor before every message: what ``subscribed`` answers for an event with none yet, so
a client always has a cursor to resume from."""

SPREAD_BUCKETS = 16
"""Most buckets one newest-first read takes at once (``bucket IN ?``)."""

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
"""The range of a bucket number (a CQL ``int``)."""

_ACTIVITY_COLUMNS = "user_id, created_at, message_id, event_id, message, is_deleted"


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

    ``*_buckets`` list up to a limit of the non-empty buckets of a partition owner between two
    buckets (inclusive); ``*_slice`` read one bucket between two exclusive key bounds, up to a
    limit. Every statement is a single-partition read, so the driver routes it to a replica
    of its partition (token-aware), and runs with the ``READS`` execution profile.
    """

    newest_buckets: PreparedStatement
    oldest_buckets: PreparedStatement
    newest_slice: PreparedStatement
    oldest_slice: PreparedStatement
    newest_spread: PreparedStatement
    """Several buckets of one owner at once (``bucket IN ?``), newest rows of each first."""

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
        spread = (
            f"SELECT {columns} FROM {table} WHERE {owner} = ? AND bucket IN ?"
            " AND (created_at, message_id) > (?, ?) AND (created_at, message_id) < (?, ?)"
            " PER PARTITION LIMIT ?"
        )
        statements = await asyncio.gather(
            cql.prepare_read(buckets + " LIMIT ?"),
            cql.prepare_read(buckets + " ORDER BY bucket ASC LIMIT ?"),
            cql.prepare_read(sliced + " LIMIT ?"),
            cql.prepare_read(sliced + " ORDER BY created_at ASC, message_id ASC LIMIT ?"),
            cql.prepare_read(spread),
        )
        return cls(*statements)

    async def buckets(
        self,
        cql: CqlStore,
        owner: int,
        first: int,
        last: int,
        *,
        newest: bool,
        limit: int,
    ) -> list[int]:
        """Up to ``limit`` non-empty buckets in ``[first, last]``, in walk order."""
        statement = self.newest_buckets if newest else self.oldest_buckets
        rows = await execute_async(
            cql.session, statement, (owner, first, last, limit), execution_profile=READS
        )
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
        from_message: bool = False,
    ) -> list[Any]:
        """Up to ``want`` rows strictly between ``lo`` and ``hi`` across buckets, in order.

        Only buckets the index lists are read: a bucket without messages costs nothing. Every
        listed bucket strictly between the two bounds' buckets holds a row in range, so the
        listing asks for at most ``want + 2`` of them. ``from_message`` says that the bound
        the walk starts from (``hi`` newest first, ``lo`` oldest first) is a message's own key,
        so its bucket holds messages: that bucket is read first, and the index only if the
        page is not full yet — a page within one bucket is one request.
        """
        rows: list[Any] = []
        if lo is not None and hi is not None and lo >= hi:
            return rows
        first = bucket_of(lo.created_at_ms) if lo is not None else INT_MIN
        last = bucket_of(hi.created_at_ms) if hi is not None else INT_MAX
        start = hi if newest else lo
        if from_message and start is not None:
            known = bucket_of(start.created_at_ms)
            rows.extend(await self.slice(cql, owner, known, lo, hi, want, newest))
            if len(rows) >= want or first == last:
                return rows
            if newest:
                last = known - 1
            else:
                first = known + 1
        listed = await self.buckets(
            cql, owner, first, last, newest=newest, limit=want - len(rows) + 2
        )
        # Newest first, buckets that turn out sparse are read several at a time: one request
        # for 2, then 4, ... of them, never more than the rows still wanted (each holds at
        # least one). Oldest first reads one at a time: with ``IN`` over partitions ScyllaDB
        # cannot order rows ascending while paging, nor keep the oldest of each partition.
        group = 1
        while listed and len(rows) < want:
            size = min(group, want - len(rows)) if newest else 1
            chunk, listed = listed[:size], listed[size:]
            if len(chunk) == 1:
                rows.extend(
                    await self.slice(cql, owner, chunk[0], lo, hi, want - len(rows), newest)
                )
            else:
                rows.extend(await self.spread(cql, owner, chunk, lo, hi, want - len(rows)))
            group = min(2 * group, SPREAD_BUCKETS)
        return rows[:want]

    async def spread(
        self,
        cql: CqlStore,
        owner: int,
        buckets: list[int],
        lo: Position | None,
        hi: Position | None,
        limit: int,
    ) -> list[Any]:
        """Up to ``limit`` rows of each of ``buckets`` (newest first) between the bounds, in
        walk order: the buckets' order, then each bucket's newest first."""
        low = lo if lo is not None else Position.before_ms(min(buckets) * BUCKET_MS)
        high = hi if hi is not None else Position.before_ms((max(buckets) + 1) * BUCKET_MS)
        rows = await execute_async(
            cql.session,
            self.newest_spread,
            (owner, buckets, *low.bind(), *high.bind(), limit),
            execution_profile=READS,
        )
        by_bucket: dict[int, list[Any]] = {b: [] for b in buckets}
        for row in rows:  # partitions in any order, each one's rows newest first
            by_bucket[bucket_of(created_at_ms_of(row.message_id))].append(row)
        return [row for bucket in buckets for row in by_bucket[bucket]]

    async def slice(
        self,
        cql: CqlStore,
        owner: int,
        bucket: int,
        lo: Position | None,
        hi: Position | None,
        limit: int,
        newest: bool,
        profile: Any = READS,
    ) -> list[Any]:
        """Up to ``limit`` rows of one bucket strictly between ``lo`` and ``hi`` (rows as the
        execution ``profile`` makes them: named tuples by default)."""
        low = lo if lo is not None else Position.before_ms(bucket * BUCKET_MS)
        high = hi if hi is not None else Position.before_ms((bucket + 1) * BUCKET_MS)
        statement = self.newest_slice if newest else self.oldest_slice
        return await execute_async(
            cql.session,
            statement,
            (owner, bucket, *low.bind(), *high.bind(), limit),
            execution_profile=profile,
        )


PageKind = Literal["latest", "before", "after"]
PageRead = tuple[PageKind, int, str | None, int]
"""What one page read is: its kind, the event, the cursor and the limit."""


KEEP_PAGES_SECONDS = 10.0
"""How long a page read is kept for callers who know the event has not changed since it."""

KEEP_PAGES_BYTES = 16 * 1024 * 1024
"""Memory the kept pages may take in all (as :func:`page_weight` counts it)."""

MESSAGE_OVERHEAD_BYTES = 1024
"""A read message's memory besides its text, attachments and metadata (objects, ids, dates)."""


def page_weight(page: MessagePage) -> int:
    """About the memory a page of messages holds, for the kept pages' budget."""
    return sum(
        MESSAGE_OVERHEAD_BYTES
        + sys.getsizeof(m.text)
        + sum(map(len, m.attachments))
        + sum(len(k) + len(v) for k, v in m.metadata.items())
        for m in page.messages
    )


class MessageHistory:
    """History reads of events' messages and users' activity.

    The page reads that clients repeat in storms — latest, before and after a cursor — are
    coalesced (:class:`~chat.store.cql.read_coalescing.ReadCoalescer`): callers asking for the
    same page while it is being gathered share one read, which starts after each of them
    asked, so nobody gets a page read before their question. A caller that passes
    ``unchanged_since`` (a ``time.monotonic()`` instant after which it knows the event's
    messages did not change) may also take a read that started after that instant, under way
    or finished within ``KEEP_PAGES_SECONDS``. Each caller gets its own list.

    Statements are prepared on first use (or by :meth:`prepare` at start-up, which surfaces a
    schema mismatch before the first request does).
    """

    def __init__(self, cql: CqlStore, settings: Settings) -> None:
        self._cql = cql
        self._keyspace = settings.cql_keyspace
        self._tables: tuple[BucketedTable, BucketedTable] | None = None
        self._lock = asyncio.Lock()
        self.pages: ReadCoalescer[PageRead, None, MessagePage] = ReadCoalescer(
            self._read_page,
            keep_seconds=KEEP_PAGES_SECONDS,
            keep_weight=KEEP_PAGES_BYTES,
            weigh=page_weight,
        )

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

    async def latest(
        self, event_id: int, limit: int, *, unchanged_since: float | None = None
    ) -> MessagePage:
        """The newest ``limit`` messages, newest first; the cursor continues with older ones."""
        check_limit(limit)
        return await self._page(("latest", event_id, None, limit), unchanged_since)

    async def before(
        self, event_id: int, cursor: str, limit: int, *, unchanged_since: float | None = None
    ) -> MessagePage:
        """Messages older than the cursor's message, newest first."""
        check_limit(limit)
        decode_cursor(cursor)  # a bad cursor fails its own caller, not a shared read
        return await self._page(("before", event_id, cursor, limit), unchanged_since)

    async def after(
        self,
        event_id: int,
        cursor: str | None,
        limit: int,
        *,
        unchanged_since: float | None = None,
    ) -> MessagePage:
        """Messages newer than the cursor's (all of them when None), OLDEST first.

        This is the replay/resume read: a client that reconnects passes the last message it
        saw and receives what it missed in the order it was sent.
        """
        check_limit(limit)
        if cursor is not None:
            decode_cursor(cursor)
        return await self._page(("after", event_id, cursor, limit), unchanged_since)

    async def _page(self, read: PageRead, unchanged_since: float | None) -> MessagePage:
        page = await self.pages.get(read, None, unchanged_since=unchanged_since)
        return MessagePage(list(page.messages), page.next_cursor)

    async def _read_page(self, read: PageRead, keys: list[None]) -> dict[None, MessagePage]:
        kind, event_id, cursor, limit = read
        position = Position.of(decode_cursor(cursor)) if cursor is not None else None
        if kind == "after":
            page = await self._messages(event_id, position, None, limit, newest=False)
        else:
            page = await self._messages(event_id, None, position, limit, newest=True)
        return {None: page}

    async def after_position(self, event_id: int, after: Position, limit: int) -> MessagePage:
        """Messages above a position that need not be a message's own (a node's floor),
        oldest first: what the cross-node order reads when a node died."""
        return await self._messages(event_id, after, None, limit, newest=False, from_message=False)

    async def between(
        self, event_id: int, start: datetime, end: datetime, limit: int, cursor: str | None = None
    ) -> MessagePage:
        """Messages created in ``[start, end)``, newest first; the cursor continues older."""
        check_limit(limit)
        start_ms, end_ms = ms_of(start), ms_of(end)
        if start_ms >= end_ms:
            raise ValidationFailed(
                "the time range is empty: start must be before end",
                errors=[FieldError("start", "must be before end")],
            )
        hi = Position.before_ms(end_ms)
        from_message = False
        if cursor is not None:
            at = Position.of(decode_cursor(cursor))
            from_message = at < hi
            hi = min(hi, at)
        return await self._messages(
            event_id,
            Position.before_ms(start_ms),
            hi,
            limit,
            newest=True,
            from_message=from_message,
        )

    async def activity(self, user_id: int, limit: int, cursor: str | None = None) -> ActivityPage:
        """The user's own messages across all events, newest first."""
        check_limit(limit)
        hi = Position.of(decode_cursor(cursor)) if cursor is not None else None
        _, by_user = await self._statements()
        rows = await by_user.walk(
            self._cql, user_id, None, hi, limit + 1, newest=True, from_message=hi is not None
        )
        items = [_activity_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return ActivityPage(items, encode_cursor(items[-1].message_id) if more else None)

    async def _messages(
        self,
        event_id: int,
        lo: Position | None,
        hi: Position | None,
        limit: int,
        *,
        newest: bool,
        from_message: bool | None = None,
    ) -> MessagePage:
        """A page between the bounds; a given cursor bound is a message's key unless told."""
        by_event, _ = await self._statements()
        start = hi if newest else lo
        rows = await by_event.walk(
            self._cql,
            event_id,
            lo,
            hi,
            limit + 1,
            newest=newest,
            from_message=start is not None if from_message is None else from_message,
        )
        messages = [message_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return MessagePage(messages, encode_cursor(messages[-1].message_id) if more else None)
