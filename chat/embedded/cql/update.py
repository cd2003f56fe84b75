"""UPDATE compiled into a plan: one cell operation per assignment, staged per row named."""

from __future__ import annotations

from collections.abc import Callable

from chat.embedded.cql import ast
from chat.embedded.cql.cells import OP_COLL_CLEAR, OP_COLL_ELEM, OP_SET, Cell, CollectionCell, Row
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.marshal import elements
from chat.embedded.cql.mutations import RowWrite
from chat.embedded.cql.results import Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.values import UNSET, Values, getter_for
from chat.embedded.cql.write import (
    OP_COUNTER_DELTA,
    KeyedWrite,
    ListClock,
    RowKeys,
    Staged,
    check_ttl,
    collection_cells,
)

ColumnOp = Callable[[Values, int, int, int, Callable[[], Row | None]], list[Cell]]


class UpdatePlan(KeyedWrite):
    def __init__(self, table: TableMeta, stmt: ast.Update, clock: ListClock) -> None:
        super().__init__(table, stmt.timestamp, stmt.ttl)
        self.keys = RowKeys(table, stmt.where, verb="UPDATE")
        self.keys.require_complete()
        self.clock = clock
        self.if_exists = stmt.if_exists
        self.compile_conditions(stmt.conditions)
        self.finish_conditions()
        if self.conditional:
            self.keys.refuse_in("updates")
        self.ops: list[ColumnOp] = [self._assignment(a) for a in stmt.assignments]

    def _assignment(self, a: ast.Assignment) -> ColumnOp:
        table = self.table
        col = table.column(a.column)
        if col.kind != "regular":
            raise InvalidRequest(f"PRIMARY KEY part {col.name} found in SET part")
        slot = col.slot
        clock = self.clock
        if col.is_counter:
            if a.op not in ("add", "sub"):
                raise InvalidRequest(
                    f"Cannot set the value of counter column {col.name} (counters can only be "
                    "incremented/decremented, not set)"
                )
            delta = getter_for(a.value, ast.CqlType("bigint"), col.name)
            sign = 1 if a.op == "add" else -1

            def counter(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                raw = delta(values)
                if raw is UNSET:  # "an unset bind counter operation does not change the counter"
                    return []
                if raw is None:
                    raise InvalidRequest(f"Invalid null value for counter increment on {col.name}")
                return [
                    (OP_COUNTER_DELTA, slot, sign * int.from_bytes(raw, "big", signed=True), ts)
                ]

            return counter
        if a.op in ("add", "sub", "prepend") and col.collection is None:
            if col.type.name == "frozen":
                raise InvalidRequest(
                    f"Invalid operation ({col.name} = {col.name} + ?) for frozen collection "
                    f"column {col.name}"
                )
            raise InvalidRequest(
                f"Invalid operation ({col.name} = {col.name} + ?) for non counter column {col.name}"
            )
        if a.key is not None:
            return self._element_set(col, a)
        value_type = col.type
        if a.op == "sub" and col.collection == "map":
            value_type = ast.CqlType("set", (col.type.params[0],))
        get = getter_for(a.value, value_type, col.name)
        if col.collection is None:

            def assign(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                raw = get(values)
                return [] if raw is UNSET else [(OP_SET, slot, raw, ts, exp, ttl)]

            return assign
        if a.op == "set":

            def replace(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                raw = get(values)
                if raw is UNSET:
                    return []
                ops: list[Cell] = [(OP_COLL_CLEAR, slot, ts - 1)]
                if raw is not None:
                    ops += collection_cells(col, raw, ts, exp, ttl, clock)
                return ops

            return replace
        if a.op in ("add", "prepend"):
            prepend = a.op == "prepend"

            def add(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                raw = get(values)
                if raw is None or raw is UNSET:
                    return []
                return collection_cells(col, raw, ts, exp, ttl, clock, prepend)

            return add

        def remove(
            values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
        ) -> list[Cell]:
            raw = get(values)
            if raw is None or raw is UNSET:
                return []
            doomed = [k for k, _ in elements(raw, False)]
            if col.collection != "list":
                return [(OP_COLL_ELEM, slot, k, None, ts, 0, 0) for k in doomed]
            row = cur()
            cell = row.cells[slot] if row is not None else None
            if not isinstance(cell, CollectionCell):
                return []
            gone = set(doomed)
            return [
                (OP_COLL_ELEM, slot, k, None, ts, 0, 0)
                for k, c in cell.items.items()
                if c[2] in gone
            ]

        return remove

    def _element_set(self, col: ColumnMeta, a: ast.Assignment) -> ColumnOp:
        slot = col.slot
        assert a.key is not None
        if col.collection == "map":
            kt, vt = col.type.params
            kget = getter_for(a.key, kt, col.name)
            vget = getter_for(a.value, vt, col.name)

            def map_put(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                k = kget(values)
                if k is None:
                    raise InvalidRequest("Invalid null map key")
                v = vget(values)
                return [] if v is UNSET else [(OP_COLL_ELEM, slot, k, v, ts, exp, ttl)]

            return map_put
        if col.collection == "list":
            iget = getter_for(a.key, ast.CqlType("int"), col.name)
            vget = getter_for(a.value, col.type.params[0], col.name)

            def list_set(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Cell]:
                raw_i = iget(values)
                if raw_i is None:
                    raise InvalidRequest("Invalid null value for list index")
                idx = int.from_bytes(raw_i, "big", signed=True)
                row = cur()
                cell = row.cells[slot] if row is not None else None
                live = (
                    sorted(cell.live(ts // 1_000_000)) if isinstance(cell, CollectionCell) else []
                )
                if idx < 0 or idx >= len(live):
                    raise InvalidRequest(
                        f"List index {idx} out of bound, list has size {len(live)}"
                    )
                v = vget(values)
                return [] if v is UNSET else [(OP_COLL_ELEM, slot, live[idx][0], v, ts, exp, ttl)]

            return list_set
        raise InvalidRequest(
            f"Invalid operation ({col.name}[?] = ?) for non collection column {col.name}"
        )

    def run(
        self, values: Values, ts: int, now: int, *, checked: bool = False
    ) -> tuple[list[Staged], Rows | None]:
        """Stage every row named; ``checked``: the IF was already checked (batches)."""
        ts = self.timestamp(values, ts)
        ttl = check_ttl(self.ttl_get(values), self.table)
        exp = now + ttl if ttl else 0
        holds, result = self.condition(values, now, checked)
        if not holds:
            return [], result
        staged: list[Staged] = []
        data = self.table.data
        counters = now if self.table.is_counter else None
        for pkey, pv in self.keys.partitions(values):
            for ckey, cv in self.keys.clusterings(values):

                def cur(pkey: bytes = pkey, ckey: bytes = ckey) -> Row | None:
                    return self.current(pkey, ckey, now)

                ops: list[Cell] = []
                for op in self.ops:
                    ops.extend(op(values, ts, exp, ttl, cur))
                record = RowWrite(self.tid, pv, cv, None, ops)
                staged.append((data, pkey, ckey, record, counters))
        return staged, result

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        return self.keys.one_row(values)
