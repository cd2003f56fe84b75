"""In-memory storage: every table's rows in their compact form, and what they cost.

A table with clustering columns keeps a :class:`Partition` per partition key, whose rows are
one :class:`~runs.Run` sorted by clustering ordering key. A table without clustering columns
has one row per partition, so it keeps no per-partition object at all: its rows live in one
run sorted by token, then partition key — the scan order — and a partition delete is a
delete of that row. Each row is one ``bytes`` object (:mod:`rowcodec`).

Every mutation is applied through the ``apply_*`` methods with plain data, both live and when
the commit log is replayed, so replay rebuilds exactly what the live path built. A write to a
row that exists decodes it (:class:`~cells.Row`), merges, and encodes it again; a new row
written by one INSERT is encoded straight from its values (:meth:`TableData.insert_fresh`).

The tables of a catalog share one :class:`StoreUsage`: rows, bytes and partitions, updated
as rows come and go, which is what the memory budget and ``system.embedded_stats`` read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from chat.embedded.cql.cells import (
    NO_TS,
    OP_COLL_CLEAR,
    OP_COLL_ELEM,
    OP_SET,
    Cell,
    CollectionCell,
    Marker,
    Row,
)
from chat.embedded.cql.mutations import SnapshotPartition, SnapshotRows
from chat.embedded.cql.rowcodec import (
    RowCodec,
    may_expire,
    prefix_len,
    token_of_prefix,
    token_prefix,
)
from chat.embedded.cql.runs import Run
from chat.embedded.cql.values import composite_key, split_composite, token_of

ROW_OVERHEAD = 56
"""Memory a stored row costs beyond its bytes: the ``bytes`` object's header and allocation
rounding (about 41), its pointer in a run and the run's spare room (about 15)."""
SWEEP_PIECE_ROWS = 2000
"""Rows an expiry sweep or a snapshot handles before letting other work run."""
PARTITION_OVERHEAD = 480
"""Memory a partition of a table with clustering columns costs beyond its rows: the
:class:`Partition`, its entry in the table's dict, its key and values, its run and token."""

Range = tuple[bytes | None, bool, bytes | None, bool]


class StoreUsage:
    """What the stored data costs, kept up to date by every table of one catalog."""

    __slots__ = ("bytes", "partitions", "rows")

    def __init__(self) -> None:
        self.rows = 0
        self.bytes = 0
        self.partitions = 0

    @property
    def memory(self) -> int:
        """The estimated memory of the stored data (what the budget bounds)."""
        return self.bytes + self.rows * ROW_OVERHEAD + self.partitions * PARTITION_OVERHEAD


def _ckey_of(row: bytes) -> bytes:
    return row[: prefix_len(row)]


class Partition:
    """A partition of a table with clustering columns: its rows, sorted, and its tombstones."""

    __slots__ = ("deleted_at", "key", "ranges", "rows", "token", "values")

    def __init__(self, key: bytes, values: tuple[bytes, ...]) -> None:
        self.key = key
        self.values = values
        self.token: int | None = None
        self.rows = Run()
        self.deleted_at = NO_TS
        # Range tombstones: (lo, lo_inclusive, hi, hi_inclusive, ts) over ordering keys.
        self.ranges: list[tuple[bytes | None, bool, bytes | None, bool, int]] | None = None

    def get_token(self) -> int:
        if self.token is None:
            self.token = token_of(self.key)
        return self.token

    def shadow_of(self, ckey: bytes) -> int:
        """The newest partition/range tombstone covering a clustering key."""
        ts = self.deleted_at
        for lo, lo_inc, hi, hi_inc, rts in self.ranges or ():
            if rts <= ts:
                continue
            if lo is not None and (ckey < lo or (ckey == lo and not lo_inc)):
                continue
            if hi is not None and (ckey > hi or (ckey == hi and not hi_inc)):
                continue
            ts = rts
        return ts

    def tombstoned(self) -> bool:
        return self.deleted_at != NO_TS or bool(self.ranges)

    def row_blob(self, ckey: bytes) -> bytes | None:
        where = self.rows.find(ckey, _ckey_of)
        return None if where is None else self.rows.at(where)

    def span(self, rng: Range, reverse: bool) -> Iterator[bytes]:
        """The stored rows in a range of clustering keys."""
        return self.rows.span(rng[0], rng[1], rng[2], rng[3], _ckey_of, reverse)

    @staticmethod
    def ckey(row: bytes) -> bytes:
        """A stored row's clustering ordering key."""
        return row[: prefix_len(row)]

    def all_rows(self) -> Iterator[bytes]:
        return iter(self.rows)


class SingleRowPartition:
    """A partition of a table without clustering columns, as reads see it: its one row."""

    __slots__ = ("arity", "key", "row")

    def __init__(self, key: bytes, row: bytes, arity: int) -> None:
        self.key = key
        self.row = row
        self.arity = arity

    @property
    def values(self) -> tuple[bytes, ...]:
        return (self.key,) if self.arity == 1 else split_composite(self.key, self.arity)

    def get_token(self) -> int:
        return token_of_prefix(self.row)

    def row_blob(self, ckey: bytes) -> bytes | None:
        return self.row if ckey == b"" else None

    def span(self, rng: Range, reverse: bool) -> Iterator[bytes]:
        yield self.row

    @staticmethod
    def ckey(row: bytes) -> bytes:
        return b""

    def all_rows(self) -> Iterator[bytes]:
        yield self.row


AnyPartition = Partition | SingleRowPartition


class TableData:
    """All rows of one table. ``width``: its regular columns; ``arity``: partition key columns."""

    __slots__ = (
        "_index",
        "_pending",
        "arity",
        "clustered",
        "codec",
        "expiring",
        "lossy_clustering",
        "partitions",
        "rows",
        "usage",
        "width",
    )

    def __init__(
        self,
        width: int,
        clustered: bool,
        *,
        clustering_columns: int = 0,
        arity: int = 1,
        usage: StoreUsage | None = None,
        lossy_clustering: bool = False,
    ) -> None:
        self.width = width
        # Whether distinct clustering values may share an ordering key (decimals: 1230 and
        # 1.23E+3): a row then keeps the bytes it was first written with.
        self.lossy_clustering = lossy_clustering
        self.clustered = clustered
        self.arity = arity
        self.codec = RowCodec(clustering_columns if clustered else 0)
        self.usage = usage if usage is not None else StoreUsage()
        self.expiring = False  # whether any row stored may carry a TTL (expiry sweeps look)
        self.partitions: dict[bytes, Partition] = {}
        self.rows = Run()  # a table without clustering columns: every row, by token and key
        self._index: SortedList = SortedList()
        self._pending: list[Partition] = []

    def widen(self, width: int) -> None:
        """ALTER TABLE ADD: stored rows need nothing (absent trailing slots are not stored)."""
        self.width = max(self.width, width)

    # ---------------------------------------------------------------------------------------
    # Partitions.

    def partition(self, key: bytes, values: Sequence[bytes]) -> Partition:
        part = self.partitions.get(key)
        if part is None:
            part = Partition(key, tuple(values))
            self.partitions[key] = part
            self._pending.append(part)
            self.usage.partitions += 1
        return part

    def get(self, key: bytes) -> AnyPartition | None:
        """The partition of ``key`` as reads see it, None when nothing is stored there."""
        if self.clustered:
            return self.partitions.get(key)
        prefix = token_prefix(token_of(key), key)
        where = self.rows.find(prefix, _ckey_of)
        if where is None:
            return None
        return SingleRowPartition(key, self.rows.at(where), self.arity)

    def token_ordered(self) -> SortedList:
        """The ``(token, key)`` index of partitions, bringing newly created ones into it first."""
        if self._pending:
            index = self._index
            for part in self._pending:
                index.add((part.get_token(), part.key))
            self._pending = []
        return self._index

    def _drop_partition(self, part: Partition) -> None:
        if self.partitions.get(part.key) is not part:
            return
        del self.partitions[part.key]
        self.usage.partitions -= 1
        if part in self._pending:
            self._pending.remove(part)
        elif part.token is not None:
            self._index.discard((part.token, part.key))

    def truncate(self) -> None:
        usage = self.usage
        for part in self.partitions.values():
            for row in part.rows:
                usage.rows -= 1
                usage.bytes -= len(row)
        for row in self.rows:
            usage.rows -= 1
            usage.bytes -= len(row)
        usage.partitions -= len(self.partitions)
        self.partitions = {}
        self.rows = Run()
        self._index = SortedList()
        self._pending = []

    # ---------------------------------------------------------------------------------------
    # Rows.

    def row(self, pkey: bytes, ckey: bytes) -> Row | None:
        """The stored row, decoded (None when there is none)."""
        if self.clustered:
            part = self.partitions.get(pkey)
            blob = part.row_blob(ckey) if part is not None else None
        else:
            found = self.get(pkey)
            blob = found.row if isinstance(found, SingleRowPartition) else None
        return None if blob is None else self.codec.decode(blob, self.width)

    def _store(
        self, run: Run, where: tuple[int, int] | None, old: bytes | None, new: bytes | None
    ) -> None:
        usage = self.usage
        if old is not None:
            assert where is not None
            if new is None:
                run.remove(where)
                usage.rows -= 1
            else:
                run.replace(where, new)
                usage.bytes += len(new)
            usage.bytes -= len(old)
        elif new is not None:
            run.add(new)
            usage.rows += 1
            usage.bytes += len(new)
        if new is not None and not self.expiring and may_expire(new):
            self.expiring = True

    def _update(
        self,
        pkey: bytes,
        pv: Sequence[bytes],
        ckey: bytes,
        cv: Sequence[bytes],
        change: Any,
        *args: Any,
    ) -> None:
        """Decode the row (or start a new one), let ``change`` alter it, store it again.

        A row left with nothing but a tombstone that its partition's tombstones already cover
        is not kept: the partition's tombstone says the same.
        """
        part = self.partition(pkey, pv) if self.clustered else None
        run = part.rows if part is not None else self.rows
        prefix = ckey if part is not None else token_prefix(token_of(pkey), pkey)
        where = run.find(prefix, _ckey_of)
        old = run.at(where) if where is not None else None
        shadow = NO_TS
        if part is not None and part.tombstoned():
            shadow = part.shadow_of(ckey)
        if old is None:
            row = Row(tuple(cv), self.width, shadow)
        else:
            row = self.codec.decode(old, self.width)
        change(row, *args)
        new = self._encode_kept(prefix, row, shadow)
        self._store(run, where, old, new)
        if part is not None and not len(part.rows) and not part.tombstoned():
            self._drop_partition(part)

    def _encode_kept(self, prefix: bytes, row: Row, shadow: int) -> bytes | None:
        if row.deleted_at <= shadow and row.marker is None and all(c is None for c in row.cells):
            return None
        return self.codec.encode(prefix, row)

    def insert_fresh(
        self,
        pkey: bytes,
        pv: Sequence[bytes],
        ckey: bytes,
        cv: Sequence[bytes],
        marker: Marker,
        slots: Sequence[int],
        vals: Sequence[bytes | None],
    ) -> bool:
        """INSERT fast path: a row encoded straight from its values, new or replacing one it
        overwrites wholly (:meth:`~rowcodec.RowCodec.superseded`). False (nothing done) when
        a stored row must be merged with it or a tombstone may shadow it; the caller then
        takes the general ``apply_write`` path."""
        if self.clustered:
            part = self.partitions.get(pkey) or self.partition(pkey, pv)
            if part.deleted_at != NO_TS or part.ranges:
                return False
            run, prefix = part.rows, ckey
        else:
            run, prefix = self.rows, token_prefix(token_of(pkey), pkey)
        row = self.codec.insert(prefix, cv, marker, slots, vals)
        where = run.insert_new(prefix, row, _ckey_of)
        usage = self.usage
        if where is None:
            usage.rows += 1
        else:  # an upsert: the new row replaces the stored one when it overwrites all of it
            old = run.at(where)
            if not self.codec.superseded(old, marker[0], slots) or (
                self.lossy_clustering and self.codec.clustering(old) != tuple(cv)
            ):
                return False
            run.replace(where, row)
            usage.bytes -= len(old)
        usage.bytes += len(row)
        if marker[1]:
            self.expiring = True
        return True

    def apply_write(
        self,
        pkey: bytes,
        pv: Sequence[bytes],
        ckey: bytes,
        cv: Sequence[bytes],
        marker: Marker | None,
        ops: Sequence[Cell],
    ) -> None:
        self._update(pkey, pv, ckey, cv, Row.apply, marker, ops)

    def apply_row_delete(
        self, pkey: bytes, pv: Sequence[bytes], ckey: bytes, cv: Sequence[bytes], ts: int
    ) -> None:
        self._update(pkey, pv, ckey, cv, Row.delete, ts)

    def apply_partition_delete(self, pkey: bytes, pv: Sequence[bytes], ts: int) -> None:
        if not self.clustered:
            self.apply_row_delete(pkey, pv, b"", (), ts)
            return
        part = self.partition(pkey, pv)
        if ts > part.deleted_at:
            part.deleted_at = ts
            self._delete_rows(part, list(part.rows), ts)

    def apply_range_delete(
        self,
        pkey: bytes,
        pv: Sequence[bytes],
        lo: bytes | None,
        lo_inc: bool,
        hi: bytes | None,
        hi_inc: bool,
        ts: int,
    ) -> None:
        part = self.partition(pkey, pv)
        if part.ranges is None:
            part.ranges = []
        part.ranges.append((lo, lo_inc, hi, hi_inc, ts))
        rows = list(part.rows.span(lo, lo_inc, hi, hi_inc, _ckey_of))
        self._delete_rows(part, rows, ts)

    def _delete_rows(self, part: Partition, rows: list[bytes], ts: int) -> None:
        """Apply a partition or range tombstone to the rows it covers: rows with nothing
        newer than it are dropped (the tombstone covers them), the others lose what it hides."""
        for old in rows:
            ckey = old[: prefix_len(old)]
            row = self.codec.decode(old, self.width)
            row.delete(ts)
            new = self._encode_kept(ckey, row, part.shadow_of(ckey))
            where = part.rows.find(ckey, _ckey_of)
            self._store(part.rows, where, old, new)

    def load_rows(self, pv: Sequence[bytes] | None, rows: Sequence[bytes]) -> None:
        """Rows as a snapshot holds them, in their stored form (snapshot load).

        A row already present (written again by a log segment replayed before) is merged
        with it; the others are kept as the very bytes the snapshot holds.
        """
        if self.clustered:
            assert pv is not None
            run = self.partition(pkey_of_values(pv), pv).rows
        else:
            run = self.rows
        last = run.last()
        if rows and (last is None or rows[0] > last):  # a snapshot's rows come in order
            run.merge(list(rows))
            self.usage.rows += len(rows)
            self.usage.bytes += sum(map(len, rows))
            self.expiring = self.expiring or any(map(may_expire, rows))
            return
        for row in rows:
            prefix = row[: prefix_len(row)]
            where = run.find(prefix, _ckey_of)
            if where is None:
                self._store(run, None, None, row)
                continue
            old = run.at(where)
            merged = self.codec.decode(old, self.width)
            merge_into(merged, self.codec.decode(row, self.width))
            self._store(run, where, old, self.codec.encode(prefix, merged))

    def load_partition(
        self,
        pv: Sequence[bytes],
        deleted_at: int,
        ranges: Sequence[tuple[bytes | None, bool, bytes | None, bool, int]],
    ) -> None:
        """A partition's tombstones as a snapshot holds them."""
        part = self.partition(pkey_of_values(pv), pv)
        part.deleted_at = max(part.deleted_at, deleted_at)
        if ranges:
            part.ranges = [*(part.ranges or ()), *ranges]

    # ---------------------------------------------------------------------------------------
    # Expiry and snapshots.

    def _forget_expired(self, run: Run, rows: Sequence[bytes], now: int) -> list[bytes]:
        """Of ``rows`` (stored in ``run``), forget those wholly expired; return the others."""
        codec = self.codec
        kept: list[bytes] = []
        for row in rows:
            if not codec.expires_by(row, now):
                kept.append(row)
                continue
            where = run.find(row[: prefix_len(row)], _ckey_of)
            if where is not None and run.at(where) is row:
                self._store(run, where, row, None)
        return kept

    def _forget_expired_in(self, part: Partition, now: int) -> list[bytes]:
        kept = self._forget_expired(part.rows, list(part.rows), now)
        if not kept and not part.tombstoned():
            self._drop_partition(part)
        return kept

    def sweep_expired(self, now: int) -> Iterator[int]:
        """Forget rows whose every cell has expired (TTL), and clustered partitions left with
        nothing, a piece at a time: yields after each piece (the caller lets others run)."""
        if not self.clustered:
            rows = list(self.rows)
            for start in range(0, len(rows), SWEEP_PIECE_ROWS):
                piece = rows[start : start + SWEEP_PIECE_ROWS]
                yield len(piece) - len(self._forget_expired(self.rows, piece, now))
            return
        seen = 0
        forgotten = 0
        for key in list(self.partitions):
            part = self.partitions.get(key)
            if part is None:
                continue
            before = len(part.rows)
            forgotten += before - len(self._forget_expired_in(part, now))
            seen += before + 1
            if seen >= SWEEP_PIECE_ROWS:
                yield forgotten
                seen = forgotten = 0
        yield forgotten

    def snapshot_records(
        self, tid: bytes, now: int
    ) -> Iterator[tuple[list[SnapshotRows | SnapshotPartition], int]]:
        """The table as snapshot records, a piece at a time: (records, rows in them).

        Rows are written in their stored form, so a snapshot restores the very bytes. Rows
        whose every cell has expired are left out and forgotten on the way. A partition is
        whole within one piece (``commitlog`` says why writes landing in between are safe).
        """
        if not self.clustered:
            rows = list(self.rows)
            for start in range(0, len(rows), SWEEP_PIECE_ROWS):
                piece = rows[start : start + SWEEP_PIECE_ROWS]
                kept = self._forget_expired(self.rows, piece, now)
                if kept:
                    yield [SnapshotRows(tid, None, kept)], len(kept)
            return
        for key in list(self.partitions):
            part = self.partitions.get(key)
            if part is None:
                continue
            kept = self._forget_expired_in(part, now)
            records: list[SnapshotRows | SnapshotPartition] = []
            if part.tombstoned():
                records.append(
                    SnapshotPartition(tid, part.values, part.deleted_at, part.ranges or [])
                )
            if kept:
                records.append(SnapshotRows(tid, part.values, kept))
            if records:
                yield records, len(kept)

    # ---------------------------------------------------------------------------------------
    # Reads.

    def scan(
        self, start: tuple[int, bytes] | None = None, inclusive: bool = True
    ) -> Iterator[AnyPartition]:
        """Partitions in token order, from ``start`` (token, key) on."""
        if not self.clustered:
            lo = None if start is None else token_prefix(*start)
            for row in self.rows.span(lo, inclusive, None, True, _ckey_of):
                yield self._single(row)
            return
        index = self.token_ordered()
        parts = self.partitions
        it = index.irange(start, None, (inclusive, True)) if start is not None else iter(index)
        for _token, key in it:
            part = parts.get(key)
            if part is not None:
                yield part

    def token_range(
        self, lo: int | None, lo_inc: bool, hi: int | None, hi_inc: bool
    ) -> Iterator[AnyPartition]:
        if not self.clustered:
            for row in self.rows.span(
                None if lo is None else token_prefix(lo, b""), True, None, True, _ckey_of
            ):
                token = token_of_prefix(row)
                if lo is not None and token == lo and not lo_inc:
                    continue
                if hi is not None and (token > hi or (token == hi and not hi_inc)):
                    break
                yield self._single(row)
            return
        index = self.token_ordered()
        parts = self.partitions
        lo_key = None if lo is None else ((lo, b"") if lo_inc else (lo, b"\xff" * 64))
        for token, key in index.irange(lo_key, None, (True, True)):
            if lo is not None and (token < lo or (token == lo and not lo_inc)):
                continue
            if hi is not None and (token > hi or (token == hi and not hi_inc)):
                break
            part = parts.get(key)
            if part is not None:
                yield part

    def _single(self, row: bytes) -> SingleRowPartition:
        return SingleRowPartition(row[8 : prefix_len(row)], row, self.arity)


def pkey_of_values(pv: Sequence[bytes]) -> bytes:
    return pv[0] if len(pv) == 1 else composite_key(pv)


def row_ops(row: Row) -> tuple[Marker | None, list[Cell]]:
    """A decoded row as the write that recreates it: its marker and cell operations."""
    ops: list[Cell] = []
    for slot, c in enumerate(row.cells):
        if c is None:
            continue
        if type(c) is tuple:
            ops.append(c)
        else:
            assert isinstance(c, CollectionCell)
            ops.append((OP_COLL_CLEAR, slot, c.cleared_at))
            for k, e in c.items.items():
                ops.append((OP_COLL_ELEM, slot, k, e[2], e[3], e[4], e[5]))
    return row.marker, ops


def merge_into(row: Row, other: Row) -> None:
    """Reconcile ``other`` into ``row`` (both decoded versions of one row)."""
    if other.deleted_at != NO_TS:
        row.delete(other.deleted_at)
    marker, ops = row_ops(other)
    row.apply(marker, ops)


__all__ = [
    "NO_TS",
    "OP_SET",
    "AnyPartition",
    "Partition",
    "SingleRowPartition",
    "StoreUsage",
    "TableData",
]
