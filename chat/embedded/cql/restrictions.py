"""WHERE clauses compiled into what the storage can use: partition keys, clustering byte ranges,
token bounds and residual filters.

Clustering restrictions become ranges over ordering keys (``values.ordering_encoder``): an
equality prefix is a byte prefix, a slice on the next column narrows it, and a multi-column
relation ``(a, b) > (x, y)`` becomes the disjunction ``a > x OR (a = x AND b > y)`` — one range
per term, each in the column's own clustering direction, which gives Cassandra's lexicographic
semantics even when the columns have mixed ASC/DESC order. Ranges are kept sorted and
disjoint, so iterating them in order (or reversed) yields rows in clustering order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chat.embedded.cql import ast
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.marshal import elements
from chat.embedded.cql.ordering import increment
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.values import (
    PROTOCOL,
    UNSET,
    Values,
    composite_key,
    serialize,
)

Range = tuple[bytes | None, bool, bytes | None, bool]
FILTERING_MSG = (
    "Cannot execute this query as it might involve data filtering and thus may have "
    "unpredictable performance. If you want to execute this query despite the performance "
    "unpredictability, use ALLOW FILTERING"
)
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def term_list(rel_value: Any, col: ColumnMeta, values: Values, is_in: bool) -> list[bytes | None]:
    """The values of an ``=`` (one) or ``IN`` (several) restriction, serialized."""
    if isinstance(rel_value, tuple):
        return [serialize(t, col.type, col.name, values) for t in rel_value]
    if is_in and isinstance(rel_value, ast.BindMarker):
        raw = values[rel_value.index]
        if raw is UNSET:
            raise InvalidRequest(f"Invalid unset value for column {col.name}")
        if raw is None:
            raise InvalidRequest(f"Invalid null value for column {col.name}")
        return [k for k, _ in elements(raw, False)]
    return [serialize(rel_value, col.type, col.name, values)]


def render(term: Any) -> str:
    """A term as CQL text, for error messages (constants, markers and tuples of them)."""
    if isinstance(term, ast.BindMarker):
        return "?" if term.name is None else f":{term.name}"
    if isinstance(term, ast.Constant):
        return f"'{term.text}'" if term.kind == "string" else term.text
    if isinstance(term, ast.TupleLiteral):
        return "(" + ", ".join(render(i) for i in term.items) + ")"
    if isinstance(term, tuple):
        return "(" + ", ".join(render(i) for i in term) + ")"
    return "..."


def _tuple_values(term: Any, cols: Sequence[ColumnMeta], values: Values) -> list[bytes | None]:
    if isinstance(term, ast.TupleLiteral):
        if len(term.items) != len(cols):
            raise InvalidRequest(
                f"Expected {len(cols)} elements in value tuple, but got {len(term.items)}: "
                f"{render(term)}"
            )
        return [serialize(t, c.type, c.name, values) for t, c in zip(term.items, cols, strict=True)]
    if isinstance(term, ast.BindMarker):
        raw = values[term.index]
        if raw is UNSET:
            raise InvalidRequest("Invalid unset value for multi-column relation")
        if raw is None:
            raise InvalidRequest("Invalid null value for multi-column relation")
        out: list[bytes | None] = []
        pos = 0
        for _ in cols:  # the tuple was validated when bound: every length fits
            size = int.from_bytes(raw[pos : pos + 4], "big", signed=True)
            pos += 4
            out.append(raw[pos : pos + size] if size >= 0 else None)
            pos += max(size, 0)
        return out
    raise InvalidRequest("Invalid multi-column relation value")


def _slice(prefix: bytes, col: ColumnMeta, op: str, v: bytes) -> Range:
    assert col.encoder is not None
    if col.order == "desc":
        op = _FLIP[op]
    e = prefix + col.encoder(v)
    lo: bytes | None = prefix or None
    hi: bytes | None = increment(prefix) if prefix else None
    lo_inc, hi_inc = True, False
    if op == ">":
        above = increment(e)
        if above is None:
            return (e, False, e, False)  # nothing sorts after: an empty range
        lo, lo_inc = above, True
    elif op == ">=":
        lo, lo_inc = e, True
    elif op == "<":
        hi, hi_inc = e, False
    else:
        hi, hi_inc = increment(e), False
    return (lo, lo_inc, hi, hi_inc)


def _lo_key(r: Range) -> tuple[int, bytes]:
    return (0, b"") if r[0] is None else (1, r[0])


def intersect(a: Range, b: Range) -> Range | None:
    lo, lo_inc = a[0], a[1]
    if b[0] is not None and (lo is None or b[0] > lo or (b[0] == lo and not b[1])):
        lo, lo_inc = b[0], b[1]
    hi, hi_inc = a[2], a[3]
    if b[2] is not None and (hi is None or b[2] < hi or (b[2] == hi and not b[3])):
        hi, hi_inc = b[2], b[3]
    if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_inc and hi_inc))):
        return None
    return (lo, lo_inc, hi, hi_inc)


def intersect_lists(a: list[Range], b: list[Range]) -> list[Range]:
    out = [r for x in a for y in b if (r := intersect(x, y)) is not None]
    out.sort(key=_lo_key)
    return out


def _nothing(_value: bytes | None) -> bool:
    return False


@dataclass
class Filter:
    """A residual restriction checked row by row (ALLOW FILTERING or virtual tables)."""

    col: ColumnMeta
    op: str
    term: Any

    def compile(self, values: Values) -> Callable[[bytes | None], bool]:
        col, op = self.col, self.op
        drv = col.driver
        if op in ("CONTAINS", "CONTAINS KEY"):
            sub_t = col.type.params[0] if col.type.name == "frozen" else col.type
            elem_t = (
                sub_t.params[1] if (op == "CONTAINS" and sub_t.name == "map") else sub_t.params[0]
            )
            raw = serialize(self.term, elem_t, col.name, values)
            if raw is None:  # CONTAINS NULL matches nothing, as in ScyllaDB
                return _nothing
            from chat.embedded.cql.values import driver_type

            want = driver_type(elem_t).deserialize(raw, PROTOCOL)

            def contains(v: bytes | None) -> bool:
                if v is None:
                    return False
                coll = drv.deserialize(v, PROTOCOL)
                if isinstance(coll, dict):
                    return want in (coll.keys() if op == "CONTAINS KEY" else coll.values())
                return want in coll

            return contains
        if op == "IN":
            if isinstance(self.term, ast.BindMarker) and values[self.term.index] is None:
                return _nothing  # IN null matches nothing
            wanted = {
                drv.deserialize(r, PROTOCOL)
                for r in term_list(self.term, col, values, True)
                if r is not None
            }
            return lambda v: v is not None and drv.deserialize(v, PROTOCOL) in wanted
        raw = serialize(self.term, col.type, col.name, values)
        if raw is None:  # v = NULL, v > NULL... match nothing (ScyllaDB follows SQL here)
            return _nothing
        target = drv.deserialize(raw, PROTOCOL)
        cmp: Callable[[Any, Any], bool] = {
            "=": lambda x, y: x == y,
            "!=": lambda x, y: x != y,
            "<": lambda x, y: x < y,
            "<=": lambda x, y: x <= y,
            ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y,
        }[op]
        return lambda v: v is not None and bool(cmp(drv.deserialize(v, PROTOCOL), target))


@dataclass
class Where:
    """A compiled WHERE clause for one table."""

    table: TableMeta
    pk_terms: list[tuple[str, Any]] | None = None  # per pk column: (op, value); None = scan
    token_bounds: list[tuple[str, ast.Term]] = field(default_factory=list)
    ck_builder: Callable[[Values], list[Range] | None] | None = None
    ck_eq_full: bool = False  # every clustering column restricted by =
    ck_filters: list[tuple[int, Filter]] = field(default_factory=list)
    pk_filters: list[tuple[int, Filter]] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    needs_filtering: bool = False
    ck_restricted: bool = False
    ck_error: str | None = None  # why the clustering restrictions need ALLOW FILTERING

    def partition_keys(
        self, values: Values, *, reading: bool = False
    ) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """The (key, component values) of every partition named by ``=``/``IN``, de-duplicated.

        ``reading``: a SELECT, where ``IN ?`` bound to null names no partition (a write
        refuses it).
        """
        assert self.pk_terms is not None
        lists = []
        for col, (op, term) in zip(self.table.partition_key, self.pk_terms, strict=True):
            in_null = isinstance(term, ast.BindMarker) and values[term.index] is None
            if reading and op == "IN" and in_null:
                return []
            vals = term_list(term, col, values, op == "IN")
            for v in vals:
                if v is None:
                    raise InvalidRequest(f"Invalid null value in condition for column {col.name}")
            lists.append(vals)
        out: dict[bytes, tuple[bytes, ...]] = {}
        for combo in itertools.product(*lists):
            parts = tuple(v for v in combo if v is not None)
            key = parts[0] if len(parts) == 1 else composite_key(parts)
            out.setdefault(key, parts)
        return list(out.items())

    def token_range(self, values: Values) -> tuple[int | None, bool, int | None, bool]:
        lo: int | None = None
        hi: int | None = None
        lo_inc = hi_inc = True
        for op, term in self.token_bounds:
            raw = serialize(term, ast.CqlType("bigint"), "token", values)
            if raw is None:
                raise InvalidRequest("Invalid null value for token")
            t = int.from_bytes(raw, "big", signed=True)
            if op in (">", ">="):
                if lo is None or t > lo or (t == lo and op == ">"):
                    lo, lo_inc = t, op == ">="
            elif op in ("<", "<="):
                if hi is None or t < hi or (t == hi and op == "<"):
                    hi, hi_inc = t, op == "<="
            else:
                lo = hi = t
                lo_inc = hi_inc = True
        return lo, lo_inc, hi, hi_inc


def compile_where(table: TableMeta, where: ast.WhereClause, *, for_select: bool) -> Where:
    """Classify every relation; raise Cassandra's errors for unsupported combinations."""
    w = Where(table)
    pk_rel: dict[str, Any] = {}
    ck_eq: dict[str, tuple[str, Any]] = {}
    ck_slices: dict[str, list[tuple[str, Any]]] = {}
    tuple_rels: list[ast.Relation] = []
    for rel in where:
        if isinstance(rel, ast.TokenRelation):
            if list(rel.columns) != [c.name for c in table.partition_key]:
                raise InvalidRequest(
                    "The token function arguments must be in the partition key order: "
                    + ", ".join(c.name for c in table.partition_key)
                )
            w.token_bounds.append((rel.op, rel.value))
            continue
        if len(rel.columns) > 1:
            for name in rel.columns:
                col = table.column(name)
                if col.kind != "clustering":
                    raise InvalidRequest(
                        f"Multi-column relations can only be applied to clustering columns but "
                        f"was applied to: {name}"
                    )
            tuple_rels.append(rel)
            continue
        col = table.column(rel.columns[0])
        if col.kind == "partition_key" and rel.op in ("=", "IN"):
            if col.name in pk_rel:
                raise InvalidRequest(
                    f"{col.name} cannot be restricted by more than one relation if it includes "
                    "an Equal"
                )
            pk_rel[col.name] = (rel.op, rel.value)
        elif col.kind == "partition_key":
            w.pk_filters.append((col.slot, Filter(col, rel.op, rel.value)))
            w.needs_filtering = True
        elif col.kind == "clustering" and rel.op in ("=", "IN"):
            ck_eq[col.name] = (rel.op, rel.value)
        elif col.kind == "clustering" and rel.op in ("<", "<=", ">", ">="):
            ck_slices.setdefault(col.name, []).append((rel.op, rel.value))
        elif col.kind == "clustering":
            w.ck_filters.append((col.slot, Filter(col, rel.op, rel.value)))
            w.needs_filtering = True
        else:
            w.filters.append(Filter(col, rel.op, rel.value))
            w.needs_filtering = True
    if pk_rel:
        if len(pk_rel) == len(table.partition_key):
            w.pk_terms = [pk_rel[c.name] for c in table.partition_key]
        else:
            missing = [c.name for c in table.partition_key if c.name not in pk_rel]
            if not for_select:
                raise InvalidRequest(f"Some partition key parts are missing: {', '.join(missing)}")
            for c in table.partition_key:
                if c.name in pk_rel:
                    w.pk_filters.append(
                        (
                            c.slot,
                            Filter(
                                c,
                                pk_rel[c.name][0],
                                pk_rel[c.name][1],
                            ),
                        )
                    )
            w.needs_filtering = True
    elif not for_select:
        missing = [c.name for c in table.partition_key]
        raise InvalidRequest(f"Some partition key parts are missing: {', '.join(missing)}")
    if w.pk_terms is not None and w.token_bounds:
        raise InvalidRequest("Token relations cannot be combined with partition key restrictions")
    _compile_clustering(w, table, ck_eq, ck_slices, tuple_rels)
    if for_select and w.pk_terms is None and w.ck_restricted:
        w.needs_filtering = True  # clustering restrictions on a scan filter every partition
    return w


def _compile_clustering(
    w: Where,
    table: TableMeta,
    ck_eq: dict[str, tuple[str, Any]],
    ck_slices: dict[str, list[tuple[str, Any]]],
    tuple_rels: list[ast.Relation],
) -> None:
    cks = table.clustering
    prefix_cols: list[tuple[ColumnMeta, str, Any]] = []
    pos = 0
    while pos < len(cks) and cks[pos].name in ck_eq:
        op, term = ck_eq.pop(cks[pos].name)
        prefix_cols.append((cks[pos], op, term))
        pos += 1
    tuple_eq = [r for r in tuple_rels if r.op in ("=", "IN")]
    tuple_slices = [r for r in tuple_rels if r.op in ("<", "<=", ">", ">=")]
    for rel in tuple_rels:
        if rel.op not in ("=", "IN", "<", "<=", ">", ">="):
            raise InvalidRequest(
                f'Unsupported "{rel.op}" relation: ({", ".join(rel.columns)}) {rel.op} '
                f"{render(rel.value)}"
            )
    if tuple_eq:
        rel = tuple_eq[0]
        names = [c.name for c in cks[pos : pos + len(rel.columns)]]
        if list(rel.columns) != names or len(tuple_eq) > 1:
            raise InvalidRequest(
                "Clustering columns must appear in the PRIMARY KEY order in multi-column relations"
            )
        pos += len(rel.columns)
    slice_col: ColumnMeta | None = None
    if pos < len(cks) and cks[pos].name in ck_slices:
        slice_col = cks[pos]
    for rel in tuple_slices:
        names = [c.name for c in cks[pos : pos + len(rel.columns)]]
        if list(rel.columns) != names:
            raise InvalidRequest(
                "Clustering columns must appear in the PRIMARY KEY order in multi-column relations"
            )
    if slice_col is not None and tuple_slices:
        raise InvalidRequest(
            f'Column "{slice_col.name}" cannot be restricted by both a tuple notation '
            "inequality and a single column inequality"
        )
    # Whatever is left cannot use the clustering order: it becomes a filter, which a SELECT
    # without ALLOW FILTERING refuses with the reason ScyllaDB gives (see ``ck_error``).
    leftovers = dict(ck_eq)
    restricted_by_eq = {c.name for c, _op, _t in prefix_cols}
    for rel in tuple_eq:
        restricted_by_eq.update(rel.columns)
    sliced = {slice_col.name} if slice_col is not None else set()
    for rel in tuple_slices:
        sliced.update(rel.columns)
    for col in cks[pos:]:
        if col.name not in leftovers and col.name not in ck_slices:
            continue
        if col.name in sliced or col.name in restricted_by_eq:
            continue
        before = cks[: cks.index(col)]
        free = [c for c in before if c.name not in restricted_by_eq and c.name not in sliced]
        if free:
            w.ck_error = (
                f'PRIMARY KEY column "{col.name}" cannot be restricted as preceding column '
                f'"{free[-1].name}" is not restricted'
            )
        else:
            ranged = [c for c in before if c.name in sliced]
            w.ck_error = (
                f'Clustering column "{col.name}" cannot be restricted (preceding column '
                f'"{ranged[-1].name}" is restricted by a non-EQ relation)'
            )
        break
    for name, slices in ck_slices.items():
        if slice_col is None or name != slice_col.name:
            for op, term in slices:
                w.ck_filters.append((table.column(name).slot, Filter(table.column(name), op, term)))
            w.needs_filtering = True
    for name, (op, term) in leftovers.items():
        w.ck_filters.append((table.column(name).slot, Filter(table.column(name), op, term)))
        w.needs_filtering = True
    w.ck_eq_full = pos == len(cks) and not tuple_slices and slice_col is None
    w.ck_restricted = bool(prefix_cols or tuple_rels or slice_col is not None)
    if not w.ck_restricted:
        return
    eq_rel = tuple_eq[0] if tuple_eq else None
    slices = ck_slices.get(slice_col.name, []) if slice_col is not None else []

    def build(values: Values) -> list[Range] | None:
        prefixes: list[bytes] = [b""]
        for col, op, term in prefix_cols:
            if op == "IN" and isinstance(term, ast.BindMarker) and values[term.index] is None:
                return []  # IN null: no row matches
            vals = (
                term_list(term, col, values, True)
                if op == "IN"
                else [serialize(term, col.type, col.name, values)]
            )
            encoded = []
            for v in vals:
                if v is None:
                    raise InvalidRequest(f"Invalid null value for clustering key part {col.name}")
                assert col.encoder is not None
                encoded.append(col.encoder(v))
            prefixes = [p + e for p in prefixes for e in sorted(set(encoded))]
        if eq_rel is not None:
            n = len(eq_rel.columns)
            cols = cks[len(prefix_cols) : len(prefix_cols) + n]
            terms = eq_rel.value if eq_rel.op == "IN" else (eq_rel.value,)
            if isinstance(terms, ast.BindMarker) and values[terms.index] is None:
                return []
            if isinstance(terms, ast.BindMarker):
                raise InvalidRequest("IN ? with multi-column relations is not supported")
            assert isinstance(terms, tuple)
            tails = set()
            for term in terms:
                vals = _tuple_values(term, cols, values)
                tail = b""
                for c, v in zip(cols, vals, strict=True):
                    if v is None:
                        raise InvalidRequest(f"Invalid null value for clustering key part {c.name}")
                    assert c.encoder is not None
                    tail += c.encoder(v)
                tails.add(tail)
            prefixes = [p + t for p in prefixes for t in sorted(tails)]
        prefixes.sort()
        ranges: list[Range] = []
        for p in prefixes:
            rs: list[Range] = [(p or None, True, increment(p) if p else None, False)]
            for op, term in slices:
                assert slice_col is not None
                v = serialize(term, slice_col.type, slice_col.name, values)
                if v is None:
                    raise InvalidRequest(
                        f"Invalid null value for clustering key part {slice_col.name}"
                    )
                rs = intersect_lists(rs, [_slice(p, slice_col, op, v)])
            for rel in tuple_slices:
                cols = [table.column(n) for n in rel.columns]
                vals = _tuple_values(rel.value, cols, values)
                disj: list[Range] = []
                head = p
                for i, (c, v) in enumerate(zip(cols, vals, strict=True)):
                    if v is None:
                        raise InvalidRequest(f"Invalid null value for clustering key part {c.name}")
                    last = i == len(cols) - 1
                    op = rel.op if last else rel.op[0]
                    disj.append(_slice(head, c, op, v))
                    assert c.encoder is not None
                    head = head + c.encoder(v)
                disj.sort(key=_lo_key)
                rs = intersect_lists(rs, disj)
            ranges.extend(rs)
        return ranges

    w.ck_builder = build
