"""Lightweight transactions: IF conditions and the result set they answer with, as ScyllaDB.

ScyllaDB's result set of a conditional statement has the same columns whether or not it
applied (so prepared statements keep their metadata): ``[applied]``, then every column of the
table for ``IF EXISTS``/``IF NOT EXISTS``, else the columns the conditions name — in the
table's column order — with the values the row had *before* the statement (all null when there
was no row).

A conditional batch touches one partition of one table. Every condition is checked against the
state before the batch; the batch applies whole or not at all. Its result has one row per
statement, in statement order: ``[applied]`` (the batch's outcome), the primary key columns and
the union of every statement's condition columns, from the row the statement targets (all
null when no conditional statement read that row, as ScyllaDB prefetches only those).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cassandra import cqltypes as _ct

from chat.embedded.cql.cells import Row
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.restrictions import term_list
from chat.embedded.cql.results import ColumnSpec, Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.select import cell_value
from chat.embedded.cql.values import PROTOCOL, Values, serialize

APPLIED = "[applied]"
OldRow = list[bytes | None]


def all_columns(table: TableMeta) -> list[ColumnMeta]:
    """The table's columns in ScyllaDB's column order (that of ``SELECT *``)."""
    return [*table.partition_key, *table.clustering, *sorted(table.regular, key=lambda c: c.name)]


def cas_columns(table: TableMeta, named: Sequence[ColumnMeta], exists: bool) -> list[ColumnMeta]:
    """The columns after ``[applied]`` in a conditional statement's result."""
    if exists:
        return all_columns(table)
    wanted = {id(c) for c in named}
    return [c for c in all_columns(table) if id(c) in wanted]


def old_values(
    columns: Sequence[ColumnMeta], pv: Sequence[bytes], row: Row | None, now: int
) -> OldRow:
    """What the targeted row held in ``columns`` before the write (all null: no row)."""
    if row is None:
        return [None] * len(columns)
    out: OldRow = []
    for c in columns:
        if c.kind == "partition_key":
            out.append(pv[c.slot])
        elif c.kind == "clustering":
            out.append(row.ck[c.slot])
        else:
            out.append(cell_value(c, row, now))
    return out


def cas_result(
    table: TableMeta, columns: Sequence[ColumnMeta], applied: bool, rows: Sequence[OldRow]
) -> Rows:
    specs = [ColumnSpec(table.keyspace, table.name, APPLIED, _ct.BooleanType)]
    specs.extend(c.spec for c in columns if c.spec is not None)
    flag = b"\x01" if applied else b"\x00"
    return Rows(specs, [[flag, *old] for old in rows])


def condition_holds(
    col: ColumnMeta, op: str, term: Any, current: bytes | None, values: Values
) -> bool:
    """One ``IF column op value``; null compares equal to null only, as in LWT."""
    drv = col.driver
    cur = None if current is None else drv.deserialize(current, PROTOCOL)
    if op == "IN":
        wanted = [
            None if r is None else drv.deserialize(r, PROTOCOL)
            for r in term_list(term, col, values, True)
        ]
        return cur in wanted
    raw = serialize(term, col.type, col.name, values)
    want = None if raw is None else drv.deserialize(raw, PROTOCOL)
    if op == "=":
        return bool(cur == want)
    if op == "!=":
        return bool(cur != want)
    if cur is None or want is None:
        return False
    return bool({"<": cur < want, "<=": cur <= want, ">": cur > want, ">=": cur >= want}[op])


class CasStatement(Protocol):
    """What a write plan offers a conditional batch."""

    table: TableMeta
    cas_columns: list[ColumnMeta]

    @property
    def conditional(self) -> bool: ...

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]: ...

    def current(self, pkey: bytes, ckey: bytes, now: int) -> Row | None: ...

    def check(
        self, values: Values, pv: Sequence[bytes], pkey: bytes, ckey: bytes, now: int
    ) -> tuple[bool, OldRow]: ...


def check_batch(statements: Sequence[tuple[CasStatement, Values]], now: int) -> tuple[bool, Rows]:
    """Check every condition of a conditional batch against the state before it.

    Returns whether the batch applies and the result set to answer with either way.
    """
    table = statements[0][0].table
    targets: list[tuple[tuple[bytes, ...], bytes, bytes]] = []
    for plan, values in statements:
        if plan.table is not table:
            raise InvalidRequest("BATCH with conditions cannot span multiple tables")
        target = plan.target(values)
        if target[1] != (targets[0][1] if targets else target[1]):
            raise InvalidRequest("BATCH with conditions cannot span multiple partitions")
        targets.append(target)
    columns = {id(c) for c in (*table.partition_key, *table.clustering)}
    for plan, _values in statements:
        columns.update(id(c) for c in plan.cas_columns)
    result_columns = [c for c in all_columns(table) if id(c) in columns]
    applied = True
    read: dict[bytes, Row | None] = {}
    for (plan, values), (pv, pkey, ckey) in zip(statements, targets, strict=True):
        if plan.conditional:
            holds, _old = plan.check(values, pv, pkey, ckey, now)
            applied = applied and holds
            read[ckey] = plan.current(pkey, ckey, now)
    rows = [old_values(result_columns, pv, read.get(ckey), now) for pv, _pkey, ckey in targets]
    return applied, cas_result(table, result_columns, applied, rows)
