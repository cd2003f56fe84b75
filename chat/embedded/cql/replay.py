"""Commit-log replay: the records of a data directory applied to the catalog at start-up.

A logged mutation is applied the way the live write applied it (:func:`write.commit`), from
the values the record holds: keys are re-encoded from the partition and clustering values,
nothing is read or decided again. A record for a table dropped later in the log is skipped.
"""

from __future__ import annotations

from chat.embedded.cql.mutations import (
    InsertRow,
    Mutation,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
    SchemaUpdate,
    SnapshotPartition,
    SnapshotRows,
    Truncate,
)
from chat.embedded.cql.schema import Catalog
from chat.embedded.cql.storage import pkey_of_values as partition_key


def replay(catalog: Catalog, mutation: Mutation) -> None:
    """Re-apply one logged mutation, or load one piece of a snapshot."""
    if isinstance(mutation, SchemaUpdate):
        catalog.apply(mutation.change)
        return
    table = catalog.tables_by_id.get(mutation.table_id)
    if table is None:
        return  # the table was dropped later in the log
    data = table.data
    match mutation:
        case Truncate():
            data.truncate()
        case SnapshotRows(_tid, pv, rows):
            data.load_rows(pv, rows)
        case SnapshotPartition(_tid, pv, deleted_at, ranges):
            data.load_partition(pv, deleted_at, ranges)
        case InsertRow(_tid, pv, cv, marker, slots, values, collections):
            # A snapshot taken across an ALTER TABLE ADD may carry cells for columns whose
            # ALTER record replays only later: make room for them.
            widest = max([*slots, *(cell[1] for cell in collections)], default=-1)
            if widest >= data.width:
                data.widen(widest + 1)
            pkey = partition_key(pv)
            ckey = table.clustering_key(cv)
            if collections or not data.insert_fresh(pkey, pv, ckey, cv, marker, slots, values):
                data.apply_write(pkey, pv, ckey, cv, marker, mutation.cells())
        case RowWrite(_tid, pv, cv, marker, cells):
            widest = max([cell[1] for cell in cells], default=-1)
            if widest >= data.width:
                data.widen(widest + 1)
            data.apply_write(partition_key(pv), pv, table.clustering_key(cv), cv, marker, cells)
        case RowDelete(_tid, pv, cv, ts):
            data.apply_row_delete(partition_key(pv), pv, table.clustering_key(cv), cv, ts)
        case PartitionDelete(_tid, pv, ts):
            data.apply_partition_delete(partition_key(pv), pv, ts)
        case RangeDelete(_tid, pv, lo, lo_inc, hi, hi_inc, ts):
            data.apply_range_delete(partition_key(pv), pv, lo, lo_inc, hi, hi_inc, ts)
