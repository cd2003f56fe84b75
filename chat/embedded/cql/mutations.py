"""The records of the commit log and of snapshots: one typed record per kind of mutation.

A write statement produces mutation records (:mod:`write`), the commit log stores them, and
start-up replays them (:mod:`replay`); a snapshot stores the tables as records too. Each
record is written as a plain tuple led by its kind, a ``marshal``-ed list of them per
statement or batch (the framing is :mod:`commitlog`'s). That byte format is what a data
directory holds, so it stays readable across versions: the kinds and the order of their
fields are fixed.

* ``"i"`` :class:`InsertRow`: an INSERT in compact form; its cells are rebuilt from its slots,
  values and marker (the row marker's timestamp, expiry and TTL), plus its collection cells.
* ``"w"`` :class:`RowWrite`: cells written to one row (see :mod:`cells`). Counters are logged
  as their new absolute value, list elements with the keys chosen live, so replay never
  re-reads or re-decides anything.
* ``"d"`` :class:`RowDelete`, ``"p"`` :class:`PartitionDelete`, ``"r"`` :class:`RangeDelete`:
  tombstones of a row, a partition, a clustering range.
* ``"t"`` :class:`Truncate`.
* ``"s"`` :class:`SchemaUpdate`: a DDL change, as :meth:`schema.Catalog.apply` takes it.
* ``"rows"`` :class:`SnapshotRows` and ``"part"`` :class:`SnapshotPartition`: a snapshot's
  stored rows (the very bytes the storage keeps) and a partition's tombstones.

Every record is an idempotent last-write-wins merge, which is what makes replaying a log over
a snapshot that may hold some of its writes already safe.
"""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from typing import Any, NamedTuple

from chat.embedded.cql.cells import OP_SET, Cell, Marker
from chat.embedded.cql.errors import ServerError

RangeTombstone = tuple[bytes | None, bool, bytes | None, bool, int]
"""(low bound, inclusive, high bound, inclusive, timestamp); a bound None is open."""


class InsertRow(NamedTuple):
    """An INSERT: slots and values side by side, what a new row is encoded from."""

    table_id: bytes
    partition: tuple[bytes, ...]
    clustering: tuple[bytes, ...]
    marker: Marker
    slots: Sequence[int]
    values: Sequence[bytes | None]
    collections: list[Cell]
    """The cells of the collection columns it writes (a clear, then the elements)."""

    def cells(self) -> list[Cell]:
        """Every cell it writes, for a row that exists already (merged cell by cell)."""
        ts, exp, ttl = self.marker
        ops: list[Cell] = [
            (OP_SET, slot, v, ts, exp, ttl) for slot, v in zip(self.slots, self.values, strict=True)
        ]
        ops.extend(self.collections)
        return ops


class RowWrite(NamedTuple):
    """Cells of one row: an UPDATE, or a DELETE of columns or elements."""

    table_id: bytes
    partition: tuple[bytes, ...]
    clustering: tuple[bytes, ...]
    marker: Marker | None
    cells: list[Cell]


class RowDelete(NamedTuple):
    table_id: bytes
    partition: tuple[bytes, ...]
    clustering: tuple[bytes, ...]
    timestamp: int


class PartitionDelete(NamedTuple):
    table_id: bytes
    partition: tuple[bytes, ...]
    timestamp: int


class RangeDelete(NamedTuple):
    """A clustering range tombstone; ``low``/``high`` are encoded clustering prefixes."""

    table_id: bytes
    partition: tuple[bytes, ...]
    low: bytes | None
    low_inclusive: bool
    high: bytes | None
    high_inclusive: bool
    timestamp: int


class Truncate(NamedTuple):
    table_id: bytes


class SchemaUpdate(NamedTuple):
    change: tuple[Any, ...]


class SnapshotRows(NamedTuple):
    """Stored rows of one partition (``partition`` None: a table without clustering)."""

    table_id: bytes
    partition: tuple[bytes, ...] | None
    rows: list[bytes]


class SnapshotPartition(NamedTuple):
    table_id: bytes
    partition: tuple[bytes, ...]
    deleted_at: int
    ranges: list[RangeTombstone]


RowMutation = InsertRow | RowWrite | RowDelete | PartitionDelete | RangeDelete
"""What a write statement stages and commits."""

Mutation = RowMutation | Truncate | SchemaUpdate | SnapshotRows | SnapshotPartition
"""Anything the commit log or a snapshot holds."""

_KINDS: dict[type[Mutation], tuple[str]] = {
    InsertRow: ("i",),
    RowWrite: ("w",),
    RowDelete: ("d",),
    PartitionDelete: ("p",),
    RangeDelete: ("r",),
    Truncate: ("t",),
    SchemaUpdate: ("s",),
    SnapshotRows: ("rows",),
    SnapshotPartition: ("part",),
}
"""Each record type's kind, as the one-element tuple its logged form starts with."""


class UnreadableRecord(ServerError):
    """A commit-log or snapshot record of no kind this version knows: refuse to start."""


def encode(records: Sequence[Mutation]) -> bytes:
    """One commit-log payload: the records as plain tuples, each led by its kind."""
    kinds = _KINDS
    return marshal.dumps([kinds[type(record)] + record for record in records])


def decode(payload: bytes) -> list[Mutation]:
    """The records of one commit-log or snapshot payload (see :func:`encode`)."""
    return [_decode_one(record) for record in marshal.loads(payload)]


def _decode_one(record: Any) -> Mutation:
    match record:
        case ("i", tid, pv, cv, marker, slots, values, collections):
            return InsertRow(tid, tuple(pv), tuple(cv), tuple(marker), slots, values, collections)
        case ("w", tid, pv, cv, marker, cells):
            return RowWrite(tid, tuple(pv), tuple(cv), marker, cells)
        case ("d", tid, pv, cv, ts):
            return RowDelete(tid, tuple(pv), tuple(cv), ts)
        case ("p", tid, pv, ts):
            return PartitionDelete(tid, tuple(pv), ts)
        case ("r", tid, pv, lo, lo_inc, hi, hi_inc, ts):
            return RangeDelete(tid, tuple(pv), lo, lo_inc, hi, hi_inc, ts)
        case ("t", tid):
            return Truncate(tid)
        case ("s", change):
            return SchemaUpdate(change)
        case ("rows", tid, pv, rows):
            return SnapshotRows(tid, None if pv is None else tuple(pv), rows)
        case ("part", tid, pv, deleted_at, ranges):
            return SnapshotPartition(tid, tuple(pv), deleted_at, ranges)
    kind = record[0] if isinstance(record, tuple) and record else record
    raise UnreadableRecord(
        f"the data directory holds a record of unknown kind {kind!r}: it was written by "
        "another version of the server; start that version, or move the directory aside"
    )
