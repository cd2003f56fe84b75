"""A row as plain Python objects, and how two versions of a cell are reconciled.

The storage keeps rows in their compact form (:mod:`rowcodec`); this is the form a row is
decoded into when something must change or inspect it cell by cell — a write to a row that
exists, a counter increment, a list index, a conditional statement, a SELECT beyond plain
columns — and the form the codec encodes from.

* A simple cell is ``(0, slot, value, timestamp, expiry_seconds, ttl)``: value ``None`` is a
  cell tombstone, expiry 0 means none. The executor builds the same tuples and the commit log
  records them, so replay merges exactly what the live path merged.
* A non-frozen collection is a :class:`CollectionCell` with per-element cells.

Writes are last-write-wins per cell by timestamp (ties broken as ScyllaDB breaks them, see
:func:`wins`) and idempotent, which is what makes replaying a log over a snapshot safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Cell = tuple[Any, ...]  # (0, slot, value, ts, expiry, ttl)
Marker = tuple[int, int, int]  # (ts, expiry, ttl) of the row marker an INSERT writes
NO_TS = -(2**63)

OP_SET = 0
OP_COLL_CLEAR = 1
OP_COLL_ELEM = 2
OP_COUNTER = 3


def wins(new: Cell, old: Cell) -> bool:
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


def cell_live(cell: Cell, now: int) -> bool:
    return cell[2] is not None and (cell[4] == 0 or cell[4] > now)


class CollectionCell:
    """A non-frozen collection: per-element cells keyed by element key, plus a clear tombstone.

    Keys: the serialized element (sets), the serialized map key (maps), or an ordering key
    derived from time (lists: appends grow, prepends shrink).
    """

    __slots__ = ("cleared_at", "items")

    def __init__(self, cleared_at: int = NO_TS, items: dict[bytes, Cell] | None = None) -> None:
        self.cleared_at = cleared_at
        self.items: dict[bytes, Cell] = {} if items is None else items

    def clear(self, ts: int) -> None:
        if ts > self.cleared_at:
            self.cleared_at = ts
            self.items = {k: c for k, c in self.items.items() if c[3] > ts}

    def put(self, key: bytes, cell: Cell) -> None:
        if cell[3] <= self.cleared_at:
            return
        old = self.items.get(key)
        if old is None or wins(cell, old):
            self.items[key] = cell

    def live(self, now: int) -> list[tuple[bytes, Cell]]:
        return [(k, c) for k, c in self.items.items() if cell_live(c, now)]

    def forget_expired(self, now: int) -> None:
        """Drop elements whose TTL has passed (nothing of them can shadow anything)."""
        self.items = {
            k: c for k, c in self.items.items() if c[2] is None or c[4] == 0 or c[4] > now
        }


class Row:
    """One CQL row, decoded. ``marker``: (ts, expiry, ttl) written by INSERT (keeps it alive)."""

    __slots__ = ("cells", "ck", "deleted_at", "marker")

    def __init__(
        self,
        ck: tuple[bytes, ...],
        width: int,
        deleted_at: int = NO_TS,
        marker: Marker | None = None,
        cells: list[Any] | None = None,
    ) -> None:
        self.ck = ck
        self.marker = marker
        self.deleted_at = deleted_at
        self.cells: list[Any] = [None] * width if cells is None else cells

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

    def is_empty(self) -> bool:
        """Nothing at all: no tombstone, marker or cell (such a row is not stored)."""
        if self.deleted_at != NO_TS or self.marker is not None:
            return False
        for c in self.cells:
            if c is None:
                continue
            if type(c) is tuple or c.items or c.cleared_at != NO_TS:
                return False
        return True

    def widen(self, width: int) -> None:
        if len(self.cells) < width:
            self.cells.extend([None] * (width - len(self.cells)))

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
                if not c.items and c.cleared_at <= ts:
                    cells[i] = None

    def forget_expired(self, now: int) -> bool:
        """Drop the marker and cells whose TTL has passed; whether anything was dropped.

        What the snapshot has always left out: the embedded server keeps no expired cell as a
        tombstone (see docs/embedded-cql.md, "How it differs from ScyllaDB").
        """
        changed = False
        m = self.marker
        if m is not None and m[1] != 0 and m[1] <= now:
            self.marker = None
            changed = True
        cells = self.cells
        for i, c in enumerate(cells):
            if c is None:
                continue
            if type(c) is tuple:
                if c[2] is not None and c[4] != 0 and c[4] <= now:
                    cells[i] = None
                    changed = True
            else:
                before = len(c.items)
                c.forget_expired(now)
                changed = changed or len(c.items) != before
        return changed

    def apply(self, marker: Marker | None, ops: Sequence[Cell]) -> None:
        """Merge a write: its marker and its cell operations (see :mod:`write`)."""
        floor = self.deleted_at
        if marker is not None and marker[0] > floor:
            old = self.marker
            if old is None or marker[0] > old[0] or (marker[0] == old[0] and marker[1] > old[1]):
                self.marker = marker
        cells = self.cells
        for op in ops:
            code = op[0]
            if code == OP_SET:
                if op[3] <= floor:
                    continue
                slot = op[1]
                old_cell = cells[slot]
                if old_cell is None or wins(op, old_cell):
                    cells[slot] = op
            elif code == OP_COUNTER:
                cells[op[1]] = (OP_SET, op[1], op[2], op[3], 0, 0)
            else:
                coll = cells[op[1]]
                if coll is None:
                    coll = cells[op[1]] = CollectionCell()
                coll.clear(floor)
                if code == OP_COLL_CLEAR:
                    coll.clear(op[2])
                else:  # (2, slot, key, value, ts, expiry, ttl)
                    coll.put(op[2], (OP_SET, op[1], op[3], op[4], op[5], op[6]))
