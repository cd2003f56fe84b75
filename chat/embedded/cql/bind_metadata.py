"""The metadata a PREPARE answers with: the column each bind marker is bound to.

Drivers serialize bound values with these types and route by the partition-key indexes, so
each marker is described as ScyllaDB describes it: by its column, or by a made-up name for
what is not a column (``[ttl]``, ``[timestamp]``, ``[limit]``, ``key(m)``, ``in(a,b)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cassandra import cqltypes as _ct

from chat.embedded.cql import ast, system_tables
from chat.embedded.cql.results import ColumnSpec
from chat.embedded.cql.schema import TableMeta
from chat.embedded.cql.values import base_name, parameterized


def bind_specs(
    stmt: Any, catalog_table: Callable[[str | None, str], TableMeta]
) -> tuple[list[ColumnSpec], list[int], frozenset[int]]:
    """ColumnSpecs of the bind markers of ``stmt`` (by index), the partition-key indexes and
    the markers that may be bound to UNSET (values written, TTL, TIMESTAMP, LIMIT)."""
    binds = _BindSpecs(catalog_table)
    binds.statement(stmt)
    n = stmt.bind_count
    out = [binds.specs.get(i) or ColumnSpec("", "", f"[{i}]", _ct.BytesType) for i in range(n)]
    pk_indexes: list[int] = []
    if isinstance(stmt, (ast.Insert, ast.Update, ast.Delete, ast.Select)):
        table = catalog_table(stmt.keyspace, stmt.table)
        for c in table.partition_key:
            if c.name not in binds.pk_index:
                pk_indexes = []
                break
            pk_indexes.append(binds.pk_index[c.name])
    return out, pk_indexes, frozenset(binds.unset_ok)


class _BindSpecs:
    """Walks a statement collecting the column each bind marker is bound to.

    A class rather than nested recursive functions: a closure that refers to itself is a
    reference cycle, garbage after every PREPARE, and the server's collector policy
    (``gc_policy``) relies on its request paths leaving no cyclic garbage.
    """

    def __init__(self, catalog_table: Callable[[str | None, str], TableMeta]) -> None:
        self.catalog_table = catalog_table
        self.specs: dict[int, ColumnSpec] = {}
        self.pk_index: dict[str, int] = {}
        self.unset_ok: set[int] = set()

    def mark(
        self,
        term: Any,
        table: TableMeta,
        name: str,
        t: Any,
        pk: bool = False,
        unset_ok: bool = False,
    ) -> None:
        if isinstance(term, ast.BindMarker):
            self.specs[term.index] = ColumnSpec(table.keyspace, table.name, term.name or name, t)
            if pk:
                self.pk_index.setdefault(name, term.index)
            if unset_ok:
                self.unset_ok.add(term.index)
        elif isinstance(term, (ast.ListLiteral, ast.SetLiteral, ast.TupleLiteral)) and hasattr(
            t, "subtypes"
        ):
            subs = t.subtypes
            for i, item in enumerate(term.items):
                sub = subs[min(i, len(subs) - 1)] if subs else _ct.BytesType
                self.mark(item, table, name, sub)
        elif isinstance(term, ast.MapLiteral) and len(getattr(t, "subtypes", ())) == 2:
            for k, v in term.entries:
                self.mark(k, table, name, t.subtypes[0])
                self.mark(v, table, name, t.subtypes[1])

    def where(self, table: TableMeta, rels: Sequence[Any]) -> None:
        mark = self.mark
        for rel in rels:
            if isinstance(rel, ast.TokenRelation):
                mark(rel.value, table, "partition key token", _ct.LongType)
                continue
            cols = [table.column(n) for n in rel.columns]
            if len(cols) > 1:
                tt = parameterized(_ct.TupleType, tuple(c.driver for c in cols))
                vals = rel.value if isinstance(rel.value, tuple) else (rel.value,)
                for v in vals:
                    if isinstance(v, ast.TupleLiteral):
                        for c, item in zip(cols, v.items, strict=False):
                            mark(item, table, c.name, c.driver)
                    elif rel.op == "IN" and not isinstance(rel.value, tuple):
                        tuples = parameterized(_ct.ListType, (tt,))
                        mark(v, table, "in(" + ",".join(rel.columns) + ")", tuples)
                    else:
                        mark(v, table, "(" + ",".join(rel.columns) + ")", tt)
                continue
            col = cols[0]
            t = col.driver
            if rel.op in ("CONTAINS", "CONTAINS KEY"):
                st = t.subtypes
                t = st[1] if (rel.op == "CONTAINS" and len(st) == 2) else st[0]
            if isinstance(rel.value, tuple):
                for v in rel.value:
                    mark(v, table, col.name, t)
            elif rel.op == "IN":
                mark(rel.value, table, f"in({col.name})", parameterized(_ct.ListType, (t,)))
            else:
                mark(
                    rel.value, table, col.name, t, pk=col.kind == "partition_key" and rel.op == "="
                )

    def conditions(self, table: TableMeta, conds: Sequence[ast.Condition]) -> None:
        for c in conds:
            col = table.column(c.column)
            vals = c.value if isinstance(c.value, tuple) else (c.value,)
            for v in vals:
                self.mark(v, table, col.name, col.driver)

    def statement(self, s: Any) -> None:
        mark = self.mark
        if isinstance(s, ast.Batch):
            for inner in s.statements:
                self.statement(inner)
            local = system_tables.TABLES[("system", "local")]
            mark(s.timestamp, local, "[timestamp]", _ct.LongType, unset_ok=True)
            return
        if not isinstance(s, (ast.Select, ast.Insert, ast.Update, ast.Delete)):
            return
        table = self.catalog_table(s.keyspace, s.table)
        if isinstance(s, ast.Insert):
            for name, term in zip(s.columns, s.values, strict=False):
                col = table.column(name)
                regular = col.kind == "regular"
                mark(term, table, name, col.driver, col.kind == "partition_key", regular)
        elif isinstance(s, ast.Update):
            for a in s.assignments:
                col = table.column(a.column)
                t = col.driver
                if a.key is not None:
                    if base_name(col.type) == "map":
                        mark(a.key, table, f"key({col.name})", t.subtypes[0])
                        t = t.subtypes[1]
                    else:
                        mark(a.key, table, f"idx({col.name})", _ct.Int32Type)
                        t = t.subtypes[0]
                elif col.is_counter:
                    t = _ct.LongType
                elif a.op == "sub" and base_name(col.type) == "map":
                    t = parameterized(_ct.SetType, (t.subtypes[0],))
                mark(a.value, table, col.name, t, unset_ok=True)
        elif isinstance(s, ast.Delete):
            for target in s.columns:
                col = table.column(target.column)
                if target.key is not None:
                    kt = col.driver.subtypes[0] if base_name(col.type) == "map" else _ct.Int32Type
                    mark(target.key, table, f"key({col.name})", kt, unset_ok=True)
        if isinstance(s, (ast.Update, ast.Delete, ast.Select)):
            self.where(table, s.where)
        if isinstance(s, (ast.Update, ast.Delete)):
            self.conditions(table, s.conditions)
        if isinstance(s, (ast.Insert, ast.Update)):
            mark(s.ttl, table, "[ttl]", _ct.Int32Type, unset_ok=True)
        if isinstance(s, (ast.Insert, ast.Update, ast.Delete)):
            mark(s.timestamp, table, "[timestamp]", _ct.LongType, unset_ok=True)
        if isinstance(s, ast.Select):
            mark(s.limit, table, "[limit]", _ct.Int32Type, unset_ok=True)
            mark(
                s.per_partition_limit,
                table,
                "[per_partition_limit]",
                _ct.Int32Type,
                unset_ok=True,
            )
