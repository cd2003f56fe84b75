"""What every write plan shares: validation, the keyed-write base, staging and committing.

INSERT (:mod:`insert`), UPDATE (:mod:`update`) and DELETE (:mod:`delete`) compile into plans
whose ``run`` stages their mutation: for each row, partition or range written, a
:class:`Staged` write holding the storage keys and the typed record describing it
(:mod:`mutations`), which :func:`commit` applies and the commit log writes.

Every write goes in two steps: ``run`` (``stage`` for an unconditional INSERT) computes and
validates everything a statement will write — keys, cells, read-before-write of list indexes —
without touching the storage, and :func:`commit` applies what was staged. A batch stages all
its statements before it commits any, so a statement that fails validation leaves nothing of
its batch behind, as in ScyllaDB, which builds every mutation of a batch before applying one.
Counter increments are staged as deltas and made absolute when committed, so two increments of
one counter in a batch both count, and the log replays absolute values.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from chat.embedded.cql import ast
from chat.embedded.cql.cells import OP_COLL_ELEM, OP_COUNTER, Cell, Row
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.lwt import OldRow, cas_columns, cas_result, condition_holds, old_values
from chat.embedded.cql.marshal import elements
from chat.embedded.cql.mutations import (
    InsertRow,
    PartitionDelete,
    RowDelete,
    RowMutation,
    RowWrite,
)
from chat.embedded.cql.restrictions import compile_where, term_list
from chat.embedded.cql.results import Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.select import cell_value
from chat.embedded.cql.storage import TableData
from chat.embedded.cql.values import UNSET, Values, int_getter, now_micros

MAX_TTL = 630720000
MIN_TIMESTAMP = -(2**63)
MAX_KEY_BYTES = 65535
"""A partition or clustering key, all its components together, as ScyllaDB limits it."""
OP_COUNTER_DELTA = -1
"""A staged counter increment ``(OP_COUNTER_DELTA, slot, delta, ts)``; never stored or logged."""


Staged = tuple[TableData, bytes, bytes, RowMutation, int | None]
"""A write validated and ready to apply: (table data, partition key, clustering key, the
record describing it, counters read at). The last is, for a write to a counter table, the
time its counters' current values are read at when it is committed (their deltas become
absolute values then), else None. A plain tuple: one is built per row on the hot path.
"""


def commit(staged: Staged) -> RowMutation:
    """Apply one staged write to the storage; return its commit-log record.

    Records are unpacked as tuples: this runs once per row written, where a ``match`` on
    class patterns costs an attribute lookup per field.
    """
    data, pkey, ckey, mutation, counters_read_at = staged
    if isinstance(mutation, InsertRow):
        _tid, pv, cv, marker, slots, values, collections = mutation
        if collections or not data.insert_fresh(pkey, pv, ckey, cv, marker, slots, values):
            data.apply_write(pkey, pv, ckey, cv, marker, mutation.cells())
    elif isinstance(mutation, RowWrite):
        _tid, pv, cv, _marker, cells = mutation
        if counters_read_at is not None:
            _resolve_counters(data.row(pkey, ckey), cells, counters_read_at)
        data.apply_write(pkey, pv, ckey, cv, None, cells)
    elif isinstance(mutation, RowDelete):
        data.apply_row_delete(
            pkey, mutation.partition, ckey, mutation.clustering, mutation.timestamp
        )
    elif isinstance(mutation, PartitionDelete):
        data.apply_partition_delete(pkey, mutation.partition, mutation.timestamp)
    else:
        _tid, pv, lo, lo_inc, hi, hi_inc, ts = mutation
        data.apply_range_delete(pkey, pv, lo, lo_inc, hi, hi_inc, ts)
    return mutation


def _resolve_counters(row: Row | None, cells: list[Cell], now: int) -> None:
    """Turn staged counter deltas into the absolute values the storage keeps and the log replays."""
    live = row is not None and row.is_live(now)
    for i, op in enumerate(cells):
        if op[0] == OP_COUNTER_DELTA:
            _code, slot, delta, ts = op
            old = row.cells[slot] if live and row is not None and slot < len(row.cells) else None
            base = int.from_bytes(old[2], "big", signed=True) if old and old[2] else 0
            total = (base + delta + 2**63) % 2**64 - 2**63  # 64-bit arithmetic: wraps around
            cells[i] = (OP_COUNTER, slot, total.to_bytes(8, "big", signed=True), ts)


class ListClock:
    """Monotonic sequence for list element keys (appends grow, prepends shrink)."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(self.last + 1, now_micros())
        return self.last


def list_key(seq: int, i: int, prepend: bool = False) -> bytes:
    base = 2**62 - seq if prepend else 2**62 + seq
    return base.to_bytes(8, "big") + i.to_bytes(4, "big")


def check_ttl(ttl: int | None, table: TableMeta) -> int:
    if ttl is None:
        return table.default_ttl
    if ttl < 0:
        raise InvalidRequest("A TTL must be greater or equal to 0")
    if ttl > MAX_TTL:
        raise InvalidRequest(f"ttl is too large. requested ({ttl}) maximum ({MAX_TTL})")
    return ttl


def check_key(col: ColumnMeta, v: bytes | None) -> bytes:
    if v is UNSET:
        raise InvalidRequest(f"Invalid unset value for column {col.name}")
    if v is None:
        raise InvalidRequest(f"Invalid null value in condition for column {col.name}")
    if col.kind == "partition_key" and not v:
        raise InvalidRequest("Key may not be empty")
    if col.fixed_size is not None and len(v) != col.fixed_size and v:
        raise InvalidRequest(f"Expected {col.fixed_size} or 0 byte value for {col.name} ({len(v)})")
    return v


def check_key_length(parts: Sequence[bytes]) -> None:
    """ScyllaDB's 64 KiB limit on a key: one component alone, or all with 2 bytes each."""
    length = len(parts[0]) if len(parts) == 1 else sum(len(p) + 2 for p in parts)
    if length > MAX_KEY_BYTES:
        raise InvalidRequest(f"Key length of {length} is longer than maximum of {MAX_KEY_BYTES}")


def collection_cells(
    col: ColumnMeta,
    raw: bytes,
    ts: int,
    exp: int,
    ttl: int,
    clock: ListClock,
    prepend: bool = False,
) -> list[Cell]:
    slot = col.slot
    if col.collection == "map":
        return [(OP_COLL_ELEM, slot, k, v, ts, exp, ttl) for k, v in elements(raw, True)]
    items = elements(raw, False)
    if col.collection == "set":
        return [(OP_COLL_ELEM, slot, k, b"", ts, exp, ttl) for k, _ in items]
    seq = clock.next()
    return [
        (OP_COLL_ELEM, slot, list_key(seq, i, prepend), k, ts, exp, ttl)
        for i, (k, _) in enumerate(items)
    ]


MAX_FUTURE_MICROS = 3 * 86_400 * 1_000_000


def check_write_timestamp(ts: int) -> int:
    """A USING TIMESTAMP value as ScyllaDB accepts it (``restrict_future_timestamp`` on)."""
    if ts == MIN_TIMESTAMP:
        raise InvalidRequest(
            f"Invalid timestamp value {ts}: out of bounds, it is reserved to mean no timestamp"
        )
    if ts - now_micros() > MAX_FUTURE_MICROS:
        raise InvalidRequest(
            "Cannot provide a timestamp more than 3 days into the future. If this was not "
            "intended, make sure the timestamp is in microseconds. You can also disable this "
            "check by setting the restrict_future_timestamp configuration option to false."
        )
    return ts


def timestamp_getter(term: ast.Term | None) -> Callable[[Values], int | None]:
    """The USING TIMESTAMP of a statement or batch, checked; None when absent or unset."""
    get = int_getter(term, "timestamp")
    if term is None:
        return get

    def checked(values: Values) -> int | None:
        ts = get(values)
        return ts if ts is None else check_write_timestamp(ts)

    return checked


class KeyedWrite(ABC):
    """What INSERT/UPDATE/DELETE share: the table, keys, timestamp, TTL and conditions."""

    def __init__(
        self, table: TableMeta, ts_term: ast.Term | None, ttl_term: ast.Term | None
    ) -> None:
        if table.virtual:
            raise InvalidRequest(f"{table.keyspace} keyspace is not user-modifiable.")
        if table.is_counter and ts_term is not None:
            raise InvalidRequest("Cannot provide custom timestamp for counter updates")
        if table.is_counter and ttl_term is not None:
            raise InvalidRequest("Cannot provide custom TTL for counter updates")
        self.table = table
        self.tid = table.id.bytes
        self.ts_get = timestamp_getter(ts_term)
        self.ttl_get = int_getter(ttl_term, "TTL")
        self.has_ts = ts_term is not None
        self.conditions: list[tuple[ColumnMeta, str, Any]] = []
        self.if_exists = False
        self.if_not_exists = False
        self.cas_columns: list[ColumnMeta] = []

    @property
    def conditional(self) -> bool:
        return bool(self.conditions) or self.if_exists or self.if_not_exists

    def current(self, pkey: bytes, ckey: bytes, now: int) -> Row | None:
        row = self.table.data.row(pkey, ckey)
        if row is None or not row.is_live(now):
            return None
        return row

    def compile_conditions(self, conditions: Sequence[ast.Condition]) -> None:
        for cond in conditions:
            col = self.table.column(cond.column)
            if col.kind != "regular":
                raise InvalidRequest(f"PRIMARY KEY column '{col.name}' cannot have IF conditions")
            self.conditions.append((col, cond.op, cond.value))

    def finish_conditions(self) -> None:
        """Refuse what ScyllaDB refuses in a conditional statement; fix its result columns."""
        if not self.conditional:
            return
        if self.table.is_counter:
            raise InvalidRequest("Conditional updates are not supported on counter tables")
        if self.has_ts:
            raise InvalidRequest("Cannot provide custom timestamp for conditional updates")
        exists = self.if_exists or self.if_not_exists
        self.cas_columns = cas_columns(self.table, [c for c, _op, _t in self.conditions], exists)

    @abstractmethod
    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        """(partition values, partition key, clustering key) of the one row written."""

    @abstractmethod
    def run(
        self, values: Values, ts: int, now: int, *, checked: bool = False
    ) -> tuple[list[Staged], Rows | None]:
        """Stage what the statement writes, and its result set (a conditional's).

        ``checked``: the IF was already checked (a conditional batch checks them all first).
        """

    def check(
        self, values: Values, pv: Sequence[bytes], pkey: bytes, ckey: bytes, now: int
    ) -> tuple[bool, OldRow]:
        """Whether the IF holds, and the row's old values for the result set."""
        row = self.current(pkey, ckey, now)
        old = old_values(self.cas_columns, pv, row, now)
        if self.if_not_exists:
            return row is None, old
        if self.if_exists:
            return row is not None, old
        holds = True
        for col, op, term in self.conditions:
            current = cell_value(col, row, now) if row is not None else None
            if not condition_holds(col, op, term, current, values):
                holds = False
        return holds, old

    def cas(self, applied: bool, old: OldRow) -> Rows:
        return cas_result(self.table, self.cas_columns, applied, [old])

    def timestamp(self, values: Values, default: int) -> int:
        """The statement's USING TIMESTAMP, else ``default`` (the request's or the batch's)."""
        if self.has_ts:
            t = self.ts_get(values)
            if t is not None:
                return t
        return default

    def condition(self, values: Values, now: int, checked: bool) -> tuple[bool, Rows | None]:
        """(whether to write, the result set) of the statement's IF, if it has one to check."""
        if not self.conditional or checked:
            return True, None
        pv, pkey, ckey = self.target(values)
        holds, old = self.check(values, pv, pkey, ckey, now)
        return holds, self.cas(holds, old)


class RowKeys:
    """The rows an UPDATE (or a column DELETE) names: ``=``/``IN`` on every key column."""

    def __init__(self, table: TableMeta, where: ast.WhereClause, *, verb: str) -> None:
        self.where = compile_where(table, where, for_select=False)
        self.table = table
        if self.where.filters:
            names = ", ".join(f.col.name for f in self.where.filters)
            raise InvalidRequest(f"Non PRIMARY KEY columns found in where clause: {names}")
        if self.where.token_bounds or self.where.pk_filters:
            raise InvalidRequest(f"Invalid restrictions on partition key for {verb}")
        eq: dict[str, Any] = {}
        for rel in where:
            if isinstance(rel, ast.Relation) and len(rel.columns) == 1 and rel.op in ("=", "IN"):
                eq[rel.columns[0]] = rel
        self.ck_terms: list[tuple[ColumnMeta, Any]] = []
        missing = [c.name for c in table.clustering if c.name not in eq]
        self.complete = not missing and not self.where.ck_filters
        for c in table.clustering:
            if c.name in eq:
                self.ck_terms.append((c, (eq[c.name].op, eq[c.name].value)))
        self.missing = missing
        self.pk_in = any(op == "IN" for op, _term in self.where.pk_terms or ())
        self.ck_in = any(op == "IN" for _c, (op, _term) in self.ck_terms)

    def refuse_in(self, kind: str) -> None:
        """A conditional statement names exactly one row (``kind``: updates or deletions)."""
        if self.pk_in:
            raise InvalidRequest(
                f"IN on the partition key is not supported with conditional {kind}"
            )
        if self.ck_in:
            raise InvalidRequest(
                f"IN on the clustering key columns is not supported with conditional {kind}"
            )

    def one_row(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        """(partition values, partition key, clustering key) when the keys name one row."""
        ((pkey, pv),) = self.partitions(values)
        ((ckey, _cv),) = self.clusterings(values)
        return pv, pkey, ckey

    def require_complete(self) -> None:
        if not self.complete:
            if self.missing:
                raise InvalidRequest(f"Some clustering keys are missing: {', '.join(self.missing)}")
            raise InvalidRequest("Slice restrictions are not supported on the clustering columns")

    def partitions(self, values: Values) -> list[tuple[bytes, tuple[bytes, ...]]]:
        out = self.where.partition_keys(values)
        for _key, pv in out:
            for c, v in zip(self.table.partition_key, pv, strict=True):
                check_key(c, v)
        return out

    def clusterings(self, values: Values) -> list[tuple[bytes, tuple[bytes, ...]]]:
        if not self.table.clustering:
            return [(b"", ())]
        lists = []
        for c, term in self.ck_terms:
            lists.append([check_key(c, v) for v in term_list(term[1], c, values, term[0] == "IN")])
        out = []
        for combo in itertools.product(*lists):
            out.append((self.table.clustering_key(combo), tuple(combo)))
        return out
