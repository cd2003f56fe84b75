"""DELETE compiled into a plan: row, partition and range tombstones, or column deletions."""

from __future__ import annotations

from chat.embedded.cql import ast
from chat.embedded.cql.cells import OP_COLL_CLEAR, OP_COLL_ELEM, OP_SET, Cell, CollectionCell
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.mutations import PartitionDelete, RangeDelete, RowDelete, RowWrite
from chat.embedded.cql.results import Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.values import UNSET, Getter, Values, getter_for
from chat.embedded.cql.write import KeyedWrite, RowKeys, Staged


class DeletePlan(KeyedWrite):
    def __init__(self, table: TableMeta, stmt: ast.Delete) -> None:
        super().__init__(table, stmt.timestamp, None)
        self.keys = RowKeys(table, stmt.where, verb="DELETE")
        self.if_exists = stmt.if_exists
        self.compile_conditions(stmt.conditions)
        self.targets: list[tuple[ColumnMeta, Getter | None]] = []
        for t in stmt.columns:
            col = table.column(t.column)
            if col.kind != "regular":
                raise InvalidRequest(
                    f"Invalid identifier {col.name} for deletion (should not be a PRIMARY KEY part)"
                )
            key_get = None
            if t.key is not None:
                if col.collection == "map":
                    key_get = getter_for(t.key, col.type.params[0], col.name)
                elif col.collection == "list":
                    key_get = getter_for(t.key, ast.CqlType("int"), col.name)
                else:
                    raise InvalidRequest(
                        f"Invalid deletion operation for non collection column {col.name}"
                    )
            self.targets.append((col, key_get))
        if self.targets or self.conditional:
            self.keys.require_complete()
        self.finish_conditions()
        if self.conditional:
            self.keys.refuse_in("deletions")
        self.where = self.keys.where

    def run(
        self, values: Values, ts: int, now: int, *, checked: bool = False
    ) -> tuple[list[Staged], Rows | None]:
        """Stage every deletion named; ``checked``: the IF was already checked (batches)."""
        ts = self.timestamp(values, ts)
        holds, result = self.condition(values, now, checked)
        if not holds:
            return [], result
        data = self.table.data
        tid = self.tid
        staged: list[Staged] = []
        for pkey, pv in self.keys.partitions(values):
            if not self.targets and not self.keys.complete:
                if self.where.ck_builder is None:
                    staged.append((data, pkey, b"", PartitionDelete(tid, pv, ts), None))
                    continue
                for lo, lo_inc, hi, hi_inc in self.where.ck_builder(values) or []:
                    record = RangeDelete(tid, pv, lo, lo_inc, hi, hi_inc, ts)
                    staged.append((data, pkey, b"", record, None))
                continue
            for ckey, cv in self.keys.clusterings(values):
                if not self.targets:
                    staged.append((data, pkey, ckey, RowDelete(tid, pv, cv, ts), None))
                    continue
                ops: list[Cell] = []
                for col, key_get in self.targets:
                    ops.extend(self._delete_ops(col, key_get, values, ts, pkey, ckey, now))
                staged.append((data, pkey, ckey, RowWrite(tid, pv, cv, None, ops), None))
        return staged, result

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        return self.keys.one_row(values)

    def _delete_ops(
        self,
        col: ColumnMeta,
        key_get: Getter | None,
        values: Values,
        ts: int,
        pkey: bytes,
        ckey: bytes,
        now: int,
    ) -> list[Cell]:
        if key_get is None:
            if col.collection is not None:
                return [(OP_COLL_CLEAR, col.slot, ts)]
            return [(OP_SET, col.slot, None, ts, 0, 0)]
        k = key_get(values)
        if k is UNSET:
            return []
        if k is None:
            raise InvalidRequest(f"Invalid null value for {col.name} element key")
        if col.collection == "map":
            return [(OP_COLL_ELEM, col.slot, k, None, ts, 0, 0)]
        row = self.current(pkey, ckey, now)
        cell = row.cells[col.slot] if row is not None else None
        live = sorted(cell.live(now)) if isinstance(cell, CollectionCell) else []
        idx = int.from_bytes(k, "big", signed=True)
        if idx < 0 or idx >= len(live):
            raise InvalidRequest(f"List index {idx} out of bound, list has size {len(live)}")
        return [(OP_COLL_ELEM, col.slot, live[idx][0], None, ts, 0, 0)]
