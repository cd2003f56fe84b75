"""The memtable: partitions, rows and cells with write timestamps, TTLs and tombstones.

Layout, chosen for the write path (a prepared INSERT touches only what it must):

* ``TableData.partitions`` maps the serialized partition key to a ``Partition``; the
  token-ordered index (a ``SortedList`` of ``(token, key)``) is maintained lazily — new
  partitions wait in ``_pending`` until a scan needs token order, so inserts never hash.
* ``Partition.rows`` maps the clustering *ordering key* (see ``values.ordering_encoder``) to a
  ``Row``: ``ClusteredRows`` for clustered tables (a dict plus a lazily merged ``SortedList`` of
  keys, so a write is a dict insert and sorting happens, in C, when a read needs order), a
  plain dict (one row, key ``b""``) otherwise.
* A simple cell is the very tuple the executor built and the commit log records:
  ``(0, slot, value, timestamp, expiry_seconds, ttl)`` — value ``None`` is a cell tombstone,
  expiry 0 means none. A non-frozen collection is a ``CollectionCell`` with per-element cells.

Every mutation is applied through the ``apply_*`` methods with plain data, both live and when
the commit log is replayed, so replay rebuilds exactly what the live path built. Writes are
last-write-wins per cell by timestamp (ties broken as ScyllaDB breaks them, see ``_wins``) and
idempotent, which is what makes replaying a log over a snapshot safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sortedcontainers import SortedList  # type: ignore[import-untyped]

from chat.embedded.cql.values import token_of

Cell = tuple[Any, ...]  # (0, slot, value, ts, expiry, ttl)
NO_TS = -(2**63)

OP_SET = 0
OP_COLL_CLEAR = 1
OP_COLL_ELEM = 2
OP_COUNTER = 3


def _wins(new: Cell, old: Cell) -> bool:
    """ScyllaDB's reconciliation of two versions of a cell (``compare_atomic_cell_for_merge``).

    The greater write timestamp wins. On a tie: a tombstone beats a live cell; between live
    cells an expiring one beats a non-expiring one, then the later expiry, then (same expiry)
    the smaller TTL — the later write — and only then the greater value (unsigned bytes).
    """
    if new[3] != old[3]:
        return bool(new[3] > old[3])
    new_value, old_value = new[2], old[2]
    if new_value is None or old_value is None:
        return new_value is None and old_value is not None
    new_expiry, old_expiry = new[4], old[4]
    if new_expiry != old_expiry:
        if not new_expiry or not old_expiry:
            return bool(new_expiry)
        return bool(new_expiry > old_expiry)
    if new_expiry and new[5] != old[5]:
        return bool(new[5] < old[5])
    return bool(new_value > old_value)


class CollectionCell:
    """A non-frozen collection: per-element cells keyed by element key, plus a clear tombstone.

    Keys: the serialized element (sets), the serialized map key (maps), or an ordering key
    derived from time (lists: appends grow, prepends shrink).
    """

    __slots__ = ("cleared_at", "items")

    def __init__(self) -> None:
        self.cleared_at = NO_TS
        self.items: dict[bytes, Cell] = {}

    def clear(self, ts: int) -> None:
        if ts > self.cleared_at:
            self.cleared_at = ts
            self.items = {k: c for k, c in self.items.items() if c[3] > ts}

    def put(self, key: bytes, cell: Cell) -> None:
        if cell[3] <= self.cleared_at:
            return
        old = self.items.get(key)
        if old is None or _wins(cell, old):
            self.items[key] = cell

    def live(self, now: int) -> list[tuple[bytes, Cell]]:
        return [
            (k, c) for k, c in self.items.items() if c[2] is not None and (c[4] == 0 or c[4] > now)
        ]

    def drop_older(self, ts: int) -> None:
        self.clear(ts)


class Row:
    """One CQL row. ``marker``: (ts, expiry, ttl) written by INSERT (keeps the row alive)."""

    __slots__ = ("cells", "ck", "deleted_at", "marker")

    def __init__(self, ck: tuple[bytes, ...], width: int, deleted_at: int) -> None:
        self.ck = ck
        self.marker: tuple[int, int, int] | None = None
        self.deleted_at = deleted_at
        self.cells: list[Any] = [None] * width

    def is_live(self, now: int) -> bool:
        m = self.marker
        if m is not None and (m[1] == 0 or m[1] > now):
            return True
        for c in self.cells:
            if c is None:
                continue
            if type(c) is tuple:
                if c[2] is not None and (c[4] == 0 or c[4] > now):
                    return True
            elif c.live(now):
                return True
        return False

    def expired(self, now: int) -> bool:
        """Nothing live and nothing that still shadows older writes: safe to forget."""
        if self.deleted_at != NO_TS:
            return False
        m = self.marker
        if m is not None and (m[1] == 0 or m[1] > now):
            return False
        for c in self.cells:
            if c is None:
                continue
            if type(c) is tuple:
                if c[2] is None or c[4] == 0 or c[4] > now:
                    return False
            elif c.cleared_at != NO_TS or any(
                e[2] is None or e[4] == 0 or e[4] > now for e in c.items.values()
            ):
                return False
        return True

    def delete(self, ts: int) -> None:
        if ts <= self.deleted_at:
            return
        self.deleted_at = ts
        if self.marker is not None and self.marker[0] <= ts:
            self.marker = None
        cells = self.cells
        for i, c in enumerate(cells):
            if c is None:
                continue
            if type(c) is tuple:
                if c[3] <= ts:
                    cells[i] = None
            else:
                c.clear(ts)


_new_row = object.__new__  # a Row without __init__'s placeholder cells list (insert_fresh)


class ClusteredRows(dict[bytes, "Row"]):
    """Rows by clustering ordering key; key order is kept lazily (rows are never removed)."""

    __slots__ = ("_order", "_pending")

    def __init__(self) -> None:
        super().__init__()
        self._order = SortedList()
        self._pending: list[bytes] = []

    def __setitem__(self, key: bytes, row: Row) -> None:
        if key not in self:
            self._pending.append(key)
        super().__setitem__(key, row)

    def ordered(self) -> SortedList:
        if self._pending:
            self._order.update(self._pending)
            self._pending = []
        return self._order

    def discard(self, key: bytes) -> None:
        if self.pop(key, None) is None:
            return
        if key in self._pending:
            self._pending.remove(key)
        else:
            self._order.discard(key)

    def irange(
        self,
        lo: bytes | None,
        hi: bytes | None,
        inclusive: tuple[bool, bool] = (True, True),
        reverse: bool = False,
    ) -> Iterator[bytes]:
        return self.ordered().irange(lo, hi, inclusive, reverse)  # type: ignore[no-any-return]


class Partition:
    __slots__ = ("deleted_at", "key", "ranges", "rows", "token", "values")

    def __init__(self, key: bytes, values: tuple[bytes, ...], clustered: bool) -> None:
        self.key = key
        self.values = values
        self.token: int | None = None
        self.rows: Any = ClusteredRows() if clustered else {}
        self.deleted_at = NO_TS
        # Range tombstones: (lo, lo_inclusive, hi, hi_inclusive, ts) over ordering keys.
        self.ranges: list[tuple[bytes | None, bool, bytes | None, bool, int]] = []

    def get_token(self) -> int:
        if self.token is None:
            self.token = token_of(self.key)
        return self.token

    def shadow_of(self, ckey: bytes) -> int:
        """The newest partition/range tombstone covering a clustering key."""
        ts = self.deleted_at
        for lo, lo_inc, hi, hi_inc, rts in self.ranges:
            if rts <= ts:
                continue
            if lo is not None and (ckey < lo or (ckey == lo and not lo_inc)):
                continue
            if hi is not None and (ckey > hi or (ckey == hi and not hi_inc)):
                continue
            ts = rts
        return ts


class TableData:
    """All partitions of one table."""

    __slots__ = ("_index", "_pending", "clustered", "partitions", "width")

    def __init__(self, width: int, clustered: bool) -> None:
        self.width = width
        self.clustered = clustered
        self.partitions: dict[bytes, Partition] = {}
        self._index: SortedList = SortedList()
        self._pending: list[Partition] = []

    def widen(self, width: int) -> None:
        """ALTER TABLE ADD: give every row a slot for the new columns."""
        extra = width - self.width
        if extra <= 0:
            return
        self.width = width
        for part in self.partitions.values():
            for row in part.rows.values():
                row.cells.extend([None] * extra)

    def partition(self, key: bytes, values: tuple[bytes, ...]) -> Partition:
        part = self.partitions.get(key)
        if part is None:
            part = Partition(key, values, self.clustered)
            self.partitions[key] = part
            self._pending.append(part)
        return part

    def token_ordered(self) -> SortedList:
        """The ``(token, key)`` index, bringing newly created partitions into it first."""
        if self._pending:
            index = self._index
            for part in self._pending:
                index.add((part.get_token(), part.key))
            self._pending = []
        return self._index

    def purge_expired(self, part: Partition, now: int) -> None:
        """Drop rows whose every cell has expired (TTL), and the partition if nothing is left."""
        rows = part.rows
        dead = [k for k, row in rows.items() if row.expired(now)]
        for k in dead:
            if self.clustered:
                rows.discard(k)
            else:
                del rows[k]
        if rows or part.deleted_at != NO_TS or part.ranges:
            return
        if self.partitions.get(part.key) is part:
            del self.partitions[part.key]
            if part in self._pending:
                self._pending.remove(part)
            elif part.token is not None:
                self._index.discard((part.token, part.key))

    def truncate(self) -> None:
        self.partitions = {}
        self._index = SortedList()
        self._pending = []

    # ---------------------------------------------------------------------------------------
    # Mutations (live and replay).

    def row_for_write(self, part: Partition, ckey: bytes, cvals: tuple[bytes, ...]) -> Row:
        rows = part.rows
        row: Row | None = rows.get(ckey)
        if row is None:
            shadow = part.shadow_of(ckey) if (part.ranges or part.deleted_at != NO_TS) else NO_TS
            row = Row(cvals, self.width, shadow)
            rows[ckey] = row
        return row

    def apply_write(
        self,
        part: Partition,
        ckey: bytes,
        cvals: tuple[bytes, ...],
        marker: tuple[int, int, int] | None,
        ops: tuple[Cell, ...] | list[Cell],
    ) -> None:
        row = self.row_for_write(part, ckey, cvals)
        floor = row.deleted_at
        if marker is not None and marker[0] > floor:
            old = row.marker
            if old is None or marker[0] > old[0] or (marker[0] == old[0] and marker[1] > old[1]):
                row.marker = marker
        cells = row.cells
        for op in ops:
            code = op[0]
            if code == OP_SET:
                if op[3] <= floor:
                    continue
                slot = op[1]
                old_cell = cells[slot]
                if old_cell is None or _wins(op, old_cell):
                    cells[slot] = op
            elif code == OP_COUNTER:
                cells[op[1]] = (OP_SET, op[1], op[2], op[3], 0, 0)
            else:
                coll = cells[op[1]]
                if coll is None:
                    coll = cells[op[1]] = CollectionCell()
                coll.drop_older(floor)
                if code == OP_COLL_CLEAR:
                    coll.clear(op[2])
                else:  # (2, slot, key, value, ts, expiry, ttl)
                    coll.put(op[2], (OP_SET, op[1], op[3], op[4], op[5], op[6]))

    def insert_fresh(
        self,
        part: Partition,
        ckey: bytes,
        cvals: tuple[bytes, ...],
        marker: tuple[int, int, int],
        cells: list[Cell],
    ) -> bool:
        """INSERT fast path: a brand-new row whose ``cells`` list (one per slot, in slot order)
        becomes the row's storage as is. False (nothing done) when the row exists or may be
        shadowed by a tombstone; the caller then takes the general ``apply_write`` path."""
        rows = part.rows
        if ckey in rows or part.deleted_at != NO_TS or part.ranges:
            return False
        row = _new_row(Row)
        row.ck = cvals
        row.cells = cells
        row.marker = marker
        row.deleted_at = NO_TS
        if self.clustered:
            # What ClusteredRows.__setitem__ does, without its Python-level call per row: the
            # key is known to be new.
            rows._pending.append(ckey)
            dict.__setitem__(rows, ckey, row)
        else:
            rows[ckey] = row
        return True

    def apply_row_delete(
        self, part: Partition, ckey: bytes, cvals: tuple[bytes, ...], ts: int
    ) -> None:
        row = self.row_for_write(part, ckey, cvals)
        row.delete(ts)

    def apply_range_delete(
        self,
        part: Partition,
        lo: bytes | None,
        lo_inc: bool,
        hi: bytes | None,
        hi_inc: bool,
        ts: int,
    ) -> None:
        part.ranges.append((lo, lo_inc, hi, hi_inc, ts))
        if self.clustered:
            for row in part.rows.irange(lo, hi, (lo_inc, hi_inc)):
                part.rows[row].delete(ts)

    def apply_partition_delete(self, part: Partition, ts: int) -> None:
        if ts > part.deleted_at:
            part.deleted_at = ts
            for row in part.rows.values():
                row.delete(ts)

    # ---------------------------------------------------------------------------------------
    # Reads.

    def scan(
        self, start: tuple[int, bytes] | None = None, inclusive: bool = True
    ) -> Iterator[Partition]:
        """Partitions in token order, from ``start`` (token, key) on."""
        index = self.token_ordered()
        parts = self.partitions
        it = index.irange(start, None, (inclusive, True)) if start is not None else iter(index)
        for _token, key in it:
            part = parts.get(key)
            if part is not None:
                yield part

    def token_range(
        self, lo: int | None, lo_inc: bool, hi: int | None, hi_inc: bool
    ) -> Iterator[Partition]:
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
