"""INSERT, UPDATE and DELETE compiled into plans, and the mutation records they produce.

A plan's ``run`` stages its mutation: the writes to make and, for each, the *record*
describing it — plain tuples the commit log ``marshal``s and ``apply_record`` replays:

* ``("i", table_id, pk_values, ck_values, marker, slots, values, extra_ops)``: an INSERT in
  compact form (the cells are rebuilt from slots + values + the marker's timestamp/TTL);
* ``("w", table_id, pk_values, ck_values, marker, ops)``: a row write; ``ops`` are cells
  (see ``storage``); counters are logged as their new absolute value, list elements with the
  keys chosen live, so replay never re-reads or re-decides anything;
* ``("d", table_id, pk_values, ck_values, ts)``: a row tombstone;
* ``("p", table_id, pk_values, ts)``: a partition tombstone;
* ``("r", table_id, pk_values, lo, lo_inc, hi, hi_inc, ts)``: a clustering range tombstone;
* ``("t", table_id)``: TRUNCATE.

Every write goes in two steps: ``run`` (``stage`` for an unconditional INSERT) computes and
validates everything a statement will write — keys, cells, read-before-write of list indexes —
without touching the storage, and ``commit`` applies what was staged. A batch stages all its
statements before it commits any, so a statement that fails validation leaves nothing of its
batch behind, as in ScyllaDB, which builds every mutation of a batch before applying one.
Counter increments are staged as deltas and made absolute when committed, so two increments of
one counter in a batch both count.

The INSERT path is the hot one: at PREPARE every column becomes a slot and a getter, so an
EXECUTE is key bytes + clustering ordering key + one tuple per cell (the same tuple the storage
keeps and the log writes).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from chat.embedded.cql import ast
from chat.embedded.cql.cells import (
    OP_COLL_CLEAR,
    OP_COLL_ELEM,
    OP_COUNTER,
    OP_SET,
    CollectionCell,
    Row,
)
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.lwt import OldRow, cas_columns, cas_result, condition_holds, old_values
from chat.embedded.cql.marshal import elements
from chat.embedded.cql.ordering import INVERT, ordering_encoder
from chat.embedded.cql.restrictions import compile_where, term_list
from chat.embedded.cql.results import Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.select import cell_value
from chat.embedded.cql.values import (
    UNSET,
    Getter,
    Values,
    ValuesWithUnset,
    composite_key,
    getter_for,
    int_getter,
    now_micros,
)

Record = tuple[Any, ...]
MAX_TTL = 630720000
MIN_TIMESTAMP = -(2**63)
MAX_KEY_BYTES = 65535
"""A partition or clustering key, all its components together, as ScyllaDB limits it."""
APPLIED = "[applied]"
OP_COUNTER_DELTA = -1
"""A staged counter increment ``(OP_COUNTER_DELTA, slot, delta, ts)``; never stored or logged."""

Pending = tuple[str, Any, bytes, bytes, list[Record], Record, Any]
"""A staged write: (kind, table data, partition key, clustering key, cells, record, extra).

``kind`` is the record's; ``extra`` is, for an INSERT, whether it writes no collection (the
storage's new-row fast path), for a row write the time counters are read at, or None.
"""


def commit(pending: Pending) -> Record:
    """Apply one staged write to the storage; return its commit-log record."""
    kind, data, pkey, ckey, ops, rec, extra = pending
    if kind == "i":
        if not (extra and data.insert_fresh(pkey, rec[2], ckey, rec[3], rec[4], rec[5], rec[6])):
            data.apply_write(pkey, rec[2], ckey, rec[3], rec[4], insert_ops(rec))
    elif kind == "w":
        if extra is not None:
            _resolve_counters(data.row(pkey, ckey), ops, extra)
        data.apply_write(pkey, rec[2], ckey, rec[3], None, ops)
    elif kind == "d":
        data.apply_row_delete(pkey, rec[2], ckey, rec[3], rec[4])
    elif kind == "p":
        data.apply_partition_delete(pkey, rec[2], rec[3])
    else:
        data.apply_range_delete(pkey, rec[2], rec[3], rec[4], rec[5], rec[6], rec[7])
    return rec


def insert_ops(rec: Record) -> list[Record]:
    """The cell operations of an INSERT record (its compact form: slots and values apart)."""
    ts, exp, ttl = rec[4]
    ops: list[Record] = [
        (OP_SET, slot, v, ts, exp, ttl) for slot, v in zip(rec[5], rec[6], strict=True)
    ]
    ops.extend(rec[7])
    return ops


def _resolve_counters(row: Row | None, ops: list[Record], now: int) -> None:
    """Turn staged counter deltas into the absolute values the storage keeps and the log replays."""
    live = row is not None and row.is_live(now)
    for i, op in enumerate(ops):
        if op[0] == OP_COUNTER_DELTA:
            _code, slot, delta, ts = op
            old = row.cells[slot] if live and row is not None and slot < len(row.cells) else None
            base = int.from_bytes(old[2], "big", signed=True) if old and old[2] else 0
            total = (base + delta + 2**63) % 2**64 - 2**63  # 64-bit arithmetic: wraps around
            ops[i] = (OP_COUNTER, slot, total.to_bytes(8, "big", signed=True), ts)


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


def ckey_of(table: TableMeta, cvals: Sequence[bytes]) -> bytes:
    return b"".join(c.encoder(v) for c, v in zip(table.clustering, cvals, strict=True))  # type: ignore[misc]


def pkey_of(pvals: Sequence[bytes]) -> bytes:
    return pvals[0] if len(pvals) == 1 else composite_key(pvals)


def apply_record(tables: dict[bytes, TableMeta], rec: Record) -> None:
    """Re-apply a logged mutation (commit-log replay), or load a snapshot's rows."""
    table = tables.get(rec[1])
    if table is None:
        return  # the table was dropped later in the log
    data = table.data
    kind = rec[0]
    if kind == "t":
        data.truncate()
        return
    if kind == "rows":  # ("rows", tid, partition values or None, [stored rows])
        data.load_rows(rec[2], rec[3])
        return
    if kind == "part":  # ("part", tid, partition values, deleted_at, range tombstones)
        data.load_partition(rec[2], rec[3], rec[4])
        return
    pv = tuple(rec[2])
    pkey = pkey_of(pv)
    if kind in ("w", "i"):
        # A snapshot taken across an ALTER TABLE ADD may carry cells for columns whose ALTER
        # record replays only later: make room for them.
        slots = [op[1] for op in rec[5]] if kind == "w" else [*rec[5], *(op[1] for op in rec[7])]
        if slots and max(slots) >= data.width:
            data.widen(max(slots) + 1)
    if kind == "w":
        cv = tuple(rec[3])
        data.apply_write(pkey, pv, ckey_of(table, cv), cv, rec[4], rec[5])
    elif kind == "i":  # ("i", tid, pv, cv, marker, slots, values, extra ops)
        cv = tuple(rec[3])
        ckey = ckey_of(table, cv)
        marker = tuple(rec[4])
        if not (not rec[7] and data.insert_fresh(pkey, pv, ckey, cv, marker, rec[5], rec[6])):
            data.apply_write(pkey, pv, ckey, cv, marker, insert_ops(rec))
    elif kind == "d":
        cv = tuple(rec[3])
        data.apply_row_delete(pkey, pv, ckey_of(table, cv), cv, rec[4])
    elif kind == "p":
        data.apply_partition_delete(pkey, pv, rec[3])
    elif kind == "r":
        data.apply_range_delete(pkey, pv, rec[3], rec[4], rec[5], rec[6], rec[7])


def _check_ttl(ttl: int | None, table: TableMeta) -> int:
    if ttl is None:
        return table.default_ttl
    if ttl < 0:
        raise InvalidRequest("A TTL must be greater or equal to 0")
    if ttl > MAX_TTL:
        raise InvalidRequest(f"ttl is too large. requested ({ttl}) maximum ({MAX_TTL})")
    return ttl


def _check_key(col: ColumnMeta, v: bytes | None) -> bytes:
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


def _collection_ops(
    col: ColumnMeta,
    raw: bytes,
    ts: int,
    exp: int,
    ttl: int,
    clock: ListClock,
    prepend: bool = False,
) -> list[Record]:
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


class KeyedWrite:
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

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        """(partition values, partition key, clustering key) of the one row written."""
        raise NotImplementedError

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


def _tuple_getter(terms: Sequence[ast.Term]) -> Callable[[Values], tuple[Any, ...]] | None:
    """One C-level ``itemgetter`` returning a tuple, when every term is a bind marker."""
    idx = [t.index for t in terms if isinstance(t, ast.BindMarker)]
    if len(idx) != len(terms) or not idx:
        return None
    if len(idx) == 1:
        only = idx[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*idx)


class InsertPlan(KeyedWrite):
    def __init__(self, table: TableMeta, stmt: ast.Insert, clock: ListClock) -> None:
        super().__init__(table, stmt.timestamp, stmt.ttl)
        if table.is_counter:
            raise InvalidRequest(
                "INSERT statements are not allowed on counter tables, use UPDATE instead"
            )
        if len(stmt.columns) != len(stmt.values):
            raise InvalidRequest("Unmatched column names/values")
        given: dict[str, Getter] = {}
        terms: dict[str, ast.Term] = {}
        for name, term in zip(stmt.columns, stmt.values, strict=True):
            col = table.column(name)
            if name in given:
                raise InvalidRequest(f"Multiple definitions found for column {name}")
            given[name] = getter_for(term, col.type, name)
            terms[name] = term
        missing = [c.name for c in table.partition_key if c.name not in given]
        if missing:
            raise InvalidRequest(f"Some partition key parts are missing: {', '.join(missing)}")
        missing = [c.name for c in table.clustering if c.name not in given]
        if missing:
            raise InvalidRequest(f"Some clustering keys are missing: {', '.join(missing)}")
        self.clock = clock
        self.pk = [(c, given[c.name]) for c in table.partition_key]
        self.ck = [(c, given[c.name]) for c in table.clustering]
        self.simple: list[tuple[int, Getter, int | None]] = []
        self.colls: list[tuple[ColumnMeta, Getter]] = []
        for c in table.regular:
            if c.name in given:
                if c.collection is not None:
                    self.colls.append((c, given[c.name]))
                else:
                    self.simple.append((c.slot, given[c.name], c.fixed_size))
        self.if_not_exists = stmt.if_not_exists
        self.finish_conditions()
        self.data = table.data
        # Fast path: every regular value is a bind marker → one C-level itemgetter call.
        self.simple_slots = [slot for slot, _g, _s in self.simple]
        self.slots_tuple = tuple(self.simple_slots)
        bound = [terms[table.regular[slot].name] for slot in self.simple_slots]
        self.bound_get: Callable[[Values], Sequence[bytes | None]] | None = None
        if bound and all(isinstance(t, ast.BindMarker) for t in bound):
            idx = [t.index for t in bound if isinstance(t, ast.BindMarker)]
            if len(idx) == 1:
                only = idx[0]
                self.bound_get = lambda values: (values[only],)
            else:
                self.bound_get = operator.itemgetter(*idx)
        self.single_pk = len(self.pk) == 1
        self.ck_encoders = [c.encoder for c, _g in self.ck]
        # Every clustering column descending (chat timelines): encode ascending and invert the
        # joined key once, instead of one inverting translate per column.
        self.ck_inverted = bool(self.ck) and all(c.order == "desc" for c, _g in self.ck)
        if self.ck_inverted:
            self.ck_encoders = [ordering_encoder(c.type) for c, _g in self.ck]
        self.pk_key: Callable[[Sequence[bytes]], bytes] = (
            operator.itemgetter(0) if len(self.pk) == 1 else composite_key
        )
        self.slots = self.slots_tuple
        self.pk_get = _tuple_getter([terms[c.name] for c in table.partition_key])
        self.ck_get = _tuple_getter([terms[c.name] for c in table.clustering])
        self.pk_fixed = [(i, c.fixed_size) for i, (c, _g) in enumerate(self.pk) if c.fixed_size]
        self.ck_fixed = [(i, c.fixed_size) for i, (c, _g) in enumerate(self.ck) if c.fixed_size]
        # Keys all bind markers: stage() reads them inline and leaves the validation (and its
        # error messages) to _keys only when one is null or an empty partition key. Their sizes
        # need no check there: every bound value was checked against its type (binding).
        self.simple_keys = self.pk_get is not None and (self.ck_get is not None or not self.ck)
        self.has_ttl = stmt.ttl is not None
        self.default_ttl = table.default_ttl

    def _keys(self, values: Values) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """Partition and clustering values, validated (null, empty key, fixed sizes)."""
        if self.pk_get is not None:
            pv = self.pk_get(values)
            if None in pv or b"" in pv:
                pv = tuple([_check_key(c, g(values)) for c, g in self.pk])
            for i, size in self.pk_fixed:
                if len(pv[i]) != size:
                    _check_key(self.pk[i][0], pv[i])
        else:
            pv = tuple([_check_key(c, g(values)) for c, g in self.pk])
        if not self.ck:
            return pv, ()
        if self.ck_get is not None:
            cv = self.ck_get(values)
            if None in cv:
                cv = tuple([_check_key(c, g(values)) for c, g in self.ck])
            for i, size in self.ck_fixed:
                if len(cv[i]) != size:
                    _check_key(self.ck[i][0], cv[i])
        else:
            cv = tuple([_check_key(c, g(values)) for c, g in self.ck])
        return pv, cv

    def run(
        self, values: Values, ts: int, now: int, *, checked: bool = False
    ) -> tuple[list[Pending], Rows | None]:
        """Stage the row; ``checked``: the IF was already checked (conditional batches)."""
        if self.if_not_exists and not checked:
            self._timing(values, ts, now)  # a bad TTL is an error even when the IF fails
            pv, pkey, ckey = self.target(values)
            holds, old = self.check(values, pv, pkey, ckey, now)
            if not holds:
                return [], self.cas(False, old)
            return [self.stage(values, ts, now)], self.cas(True, old)
        return [self.stage(values, ts, now)], None

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        pv, _cv, pkey, ckey = self._keys_and_encoded(values)
        return pv, pkey, ckey

    def _timing(self, values: Values, ts: int, now: int) -> tuple[int, int, int]:
        """(write timestamp, expiry in seconds or 0, TTL), validated."""
        ts = self.timestamp(values, ts)
        ttl = self.ttl_get(values) if self.has_ttl else None
        if ttl is None:
            ttl = self.default_ttl
        elif ttl < 0 or ttl > MAX_TTL:
            _check_ttl(ttl, self.table)
        return ts, (now + ttl if ttl else 0), ttl

    def _keys_and_encoded(
        self, values: Values
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...], bytes, bytes]:
        """Partition and clustering values, and the storage keys made of them."""
        pv, cv = self._keys(values)
        pkey = self.pk_key(pv)
        if cv:
            encs = self.ck_encoders
            if len(encs) == 1:
                ckey = encs[0](cv[0])  # type: ignore[misc]
            else:
                ckey = b"".join([enc(v) for enc, v in zip(encs, cv, strict=True)])  # type: ignore[misc]
            if self.ck_inverted:
                ckey = ckey.translate(INVERT)
        else:
            ckey = b""
        return pv, cv, pkey, ckey

    def stage(self, values: Values, ts: int, now: int) -> Pending:
        """The row to write (no IF: ``run`` checks that first), validated, storage untouched.

        The batch path calls this directly for every unconditional INSERT, so it builds no
        more than the storage keeps and the log needs: the cells, the row, and the record.
        """
        if self.has_ts:  # _timing, inlined for the common case (no TTL given)
            t = self.ts_get(values)
            if t is not None:
                ts = t
        if self.has_ttl:
            ts, exp, ttl = self._timing(values, ts, now)
        else:
            ttl = self.default_ttl
            exp = now + ttl if ttl else 0
        if self.simple_keys:  # _keys_and_encoded, inlined: bind markers, one encoder each
            pv = self.pk_get(values)  # type: ignore[misc]
            cv = self.ck_get(values) if self.ck_get is not None else ()
            if None in pv or b"" in pv or None in cv:
                pv, cv = self._keys(values)
            pkey = self.pk_key(pv)
            if cv:
                ckey = b"".join([enc(v) for enc, v in zip(self.ck_encoders, cv, strict=True)])  # type: ignore[misc]
                if self.ck_inverted:
                    ckey = ckey.translate(INVERT)
            else:
                ckey = b""
        else:
            pv, cv, pkey, ckey = self._keys_and_encoded(values)
        # Encoded keys are never shorter than ScyllaDB counts them: check exactly only then.
        if len(pkey) > MAX_KEY_BYTES:
            check_key_length(pv)
        if len(ckey) > MAX_KEY_BYTES:
            check_key_length(cv)
        if self.bound_get is not None:
            vals = self.bound_get(values)
        else:
            vals = tuple([g(values) for _slot, g, _size in self.simple])
        slots = self.slots
        if type(values) is ValuesWithUnset:  # unset columns are left as they are
            kept = [(s, v) for s, v in zip(slots, vals, strict=True) if v is not UNSET]
            slots = tuple(s for s, _v in kept)
            vals = tuple(v for _s, v in kept)
        extra: list[Record] = []
        if self.colls:
            for col, g in self.colls:
                raw = g(values)
                if raw is UNSET:
                    continue
                extra.append((OP_COLL_CLEAR, col.slot, ts - 1))
                if raw is not None:
                    extra.extend(_collection_ops(col, raw, ts, exp, ttl, self.clock))
        # Slots and values side by side, no per-cell tuples: what the log records, and what a
        # new row is encoded from (a row that exists gets the cells of ``insert_ops``).
        record = ("i", self.tid, pv, cv, (ts, exp, ttl), slots, vals, extra)
        return ("i", self.data, pkey, ckey, extra, record, not extra)


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
                _check_key(c, v)
        return out

    def clusterings(self, values: Values) -> list[tuple[bytes, tuple[bytes, ...]]]:
        if not self.table.clustering:
            return [(b"", ())]
        lists = []
        for c, term in self.ck_terms:
            lists.append([_check_key(c, v) for v in term_list(term[1], c, values, term[0] == "IN")])
        out = []
        for combo in itertools.product(*lists):
            out.append((ckey_of(self.table, combo), tuple(combo)))
        return out


ColumnOp = Callable[[Values, int, int, int, Callable[[], Row | None]], list[Record]]


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
            ) -> list[Record]:
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
            ) -> list[Record]:
                raw = get(values)
                return [] if raw is UNSET else [(OP_SET, slot, raw, ts, exp, ttl)]

            return assign
        if a.op == "set":

            def replace(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Record]:
                raw = get(values)
                if raw is UNSET:
                    return []
                ops: list[Record] = [(OP_COLL_CLEAR, slot, ts - 1)]
                if raw is not None:
                    ops += _collection_ops(col, raw, ts, exp, ttl, clock)
                return ops

            return replace
        if a.op in ("add", "prepend"):
            prepend = a.op == "prepend"

            def add(
                values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
            ) -> list[Record]:
                raw = get(values)
                if raw is None or raw is UNSET:
                    return []
                return _collection_ops(col, raw, ts, exp, ttl, clock, prepend)

            return add

        def remove(
            values: Values, ts: int, exp: int, ttl: int, cur: Callable[[], Row | None]
        ) -> list[Record]:
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
            ) -> list[Record]:
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
            ) -> list[Record]:
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
    ) -> tuple[list[Pending], Rows | None]:
        """Stage every row named; ``checked``: the IF was already checked (batches)."""
        ts = self.timestamp(values, ts)
        ttl = _check_ttl(self.ttl_get(values), self.table)
        exp = now + ttl if ttl else 0
        holds, result = self.condition(values, now, checked)
        if not holds:
            return [], result
        staged: list[Pending] = []
        data = self.table.data
        counters = now if self.table.is_counter else None
        for pkey, pv in self.keys.partitions(values):
            for ckey, cv in self.keys.clusterings(values):

                def cur(pkey: bytes = pkey, ckey: bytes = ckey) -> Row | None:
                    return self.current(pkey, ckey, now)

                ops: list[Record] = []
                for op in self.ops:
                    ops.extend(op(values, ts, exp, ttl, cur))
                record = ("w", self.tid, pv, cv, None, ops)
                staged.append(("w", data, pkey, ckey, ops, record, counters))
        return staged, result

    def target(self, values: Values) -> tuple[tuple[bytes, ...], bytes, bytes]:
        return self.keys.one_row(values)


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
    ) -> tuple[list[Pending], Rows | None]:
        """Stage every deletion named; ``checked``: the IF was already checked (batches)."""
        ts = self.timestamp(values, ts)
        holds, result = self.condition(values, now, checked)
        if not holds:
            return [], result
        data = self.table.data
        tid = self.tid
        staged: list[Pending] = []
        for pkey, pv in self.keys.partitions(values):
            if not self.targets and not self.keys.complete:
                if self.where.ck_builder is None:
                    staged.append(("p", data, pkey, b"", [], ("p", tid, pv, ts), None))
                    continue
                for lo, lo_inc, hi, hi_inc in self.where.ck_builder(values) or []:
                    record = ("r", tid, pv, lo, lo_inc, hi, hi_inc, ts)
                    staged.append(("r", data, pkey, b"", [], record, None))
                continue
            for ckey, cv in self.keys.clusterings(values):
                if not self.targets:
                    staged.append(("d", data, pkey, ckey, [], ("d", tid, pv, cv, ts), None))
                    continue
                ops: list[Record] = []
                for col, key_get in self.targets:
                    ops.extend(self._delete_ops(col, key_get, values, ts, pkey, ckey, now))
                staged.append(("w", data, pkey, ckey, ops, ("w", tid, pv, cv, None, ops), None))
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
    ) -> list[Record]:
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


WritePlan = InsertPlan | UpdatePlan | DeletePlan
