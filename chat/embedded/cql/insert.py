"""INSERT compiled into a plan: the hot write path.

At PREPARE every column becomes a slot and a getter, so an EXECUTE is key bytes + clustering
ordering key + the values side by side in one :class:`~mutations.InsertRow` (what a new row is
encoded from, and what the log writes).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from chat.embedded.cql import ast
from chat.embedded.cql.cells import OP_COLL_CLEAR, Cell
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.mutations import InsertRow
from chat.embedded.cql.ordering import INVERT, Encoder, ordering_encoder
from chat.embedded.cql.results import Rows
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.values import (
    UNSET,
    Getter,
    Values,
    ValuesWithUnset,
    composite_key,
    getter_for,
)
from chat.embedded.cql.write import (
    MAX_KEY_BYTES,
    MAX_TTL,
    KeyedWrite,
    ListClock,
    Staged,
    check_key,
    check_key_length,
    check_ttl,
    collection_cells,
)


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
        self.bound_get = _tuple_getter(bound)
        self.single_pk = len(self.pk) == 1
        self.ck_encoders: list[Encoder] = list(table.clustering_encoders)
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
        simple = self.pk_get is not None and (self.ck_get is not None or not self.ck)
        self.simple_pk_get = self.pk_get if simple else None
        self.has_ttl = stmt.ttl is not None
        self.default_ttl = table.default_ttl

    def _keys(self, values: Values) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """Partition and clustering values, validated (null, empty key, fixed sizes)."""
        if self.pk_get is not None:
            pv = self.pk_get(values)
            if None in pv or b"" in pv:
                pv = tuple([check_key(c, g(values)) for c, g in self.pk])
            for i, size in self.pk_fixed:
                if len(pv[i]) != size:
                    check_key(self.pk[i][0], pv[i])
        else:
            pv = tuple([check_key(c, g(values)) for c, g in self.pk])
        if not self.ck:
            return pv, ()
        if self.ck_get is not None:
            cv = self.ck_get(values)
            if None in cv:
                cv = tuple([check_key(c, g(values)) for c, g in self.ck])
            for i, size in self.ck_fixed:
                if len(cv[i]) != size:
                    check_key(self.ck[i][0], cv[i])
        else:
            cv = tuple([check_key(c, g(values)) for c, g in self.ck])
        return pv, cv

    def run(
        self, values: Values, ts: int, now: int, *, checked: bool = False
    ) -> tuple[list[Staged], Rows | None]:
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
            check_ttl(ttl, self.table)
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
                ckey = encs[0](cv[0])
            else:
                ckey = b"".join([enc(v) for enc, v in zip(encs, cv, strict=True)])
            if self.ck_inverted:
                ckey = ckey.translate(INVERT)
        else:
            ckey = b""
        return pv, cv, pkey, ckey

    def stage(self, values: Values, ts: int, now: int) -> Staged:
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
        pk_get = self.simple_pk_get
        if pk_get is not None:  # _keys_and_encoded, inlined: bind markers, one encoder each
            pv = pk_get(values)
            cv = self.ck_get(values) if self.ck_get is not None else ()
            if None in pv or b"" in pv or None in cv:
                pv, cv = self._keys(values)
            pkey = self.pk_key(pv)
            if cv:
                ckey = b"".join([enc(v) for enc, v in zip(self.ck_encoders, cv, strict=True)])
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
        collections: list[Cell] = []
        if self.colls:
            for col, g in self.colls:
                raw = g(values)
                if raw is UNSET:
                    continue
                collections.append((OP_COLL_CLEAR, col.slot, ts - 1))
                if raw is not None:
                    collections.extend(collection_cells(col, raw, ts, exp, ttl, self.clock))
        # Slots and values side by side, no per-cell tuples: what the log records, and what a
        # new row is encoded from (a row that exists gets ``InsertRow.cells()``).
        record = InsertRow(self.tid, pv, cv, (ts, exp, ttl), slots, vals, collections)
        return (self.data, pkey, ckey, record, None)
