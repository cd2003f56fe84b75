"""SELECT: compiled once at PREPARE into a plan; run against a table's storage with paging.

Partitions come in token order (a full scan walks the token index; ``IN`` keys are sorted by
token too), rows in clustering order or its reverse. The paging state is an opaque ``marshal``
of (partition key, last clustering key, rows still allowed by LIMIT, rows already returned
from the current partition), so a page resumes exactly after the last row it returned, both
across partitions and within one.
"""

from __future__ import annotations

import marshal
import operator
import time
from collections.abc import Callable, Iterator
from typing import Any

from cassandra import cqltypes as _ct

from chat.embedded.cql import ast
from chat.embedded.cql.cells import CollectionCell, Row
from chat.embedded.cql.errors import InvalidRequest, ProtocolError
from chat.embedded.cql.marshal import pack_elements, pack_entries
from chat.embedded.cql.restrictions import FILTERING_MSG, Range, Where, compile_where
from chat.embedded.cql.results import ColumnSpec, Rows
from chat.embedded.cql.rowcodec import SLOW
from chat.embedded.cql.schema import ColumnMeta, TableMeta
from chat.embedded.cql.storage import AnyPartition, TableData
from chat.embedded.cql.values import Values, int_getter

Partition = AnyPartition
Extractor = Callable[[Partition, Row, int], bytes | None]


def collection_value(col: ColumnMeta, cell: CollectionCell, now: int) -> bytes | None:
    """Serialize the live elements of a non-frozen collection (null when empty, as Cassandra)."""
    live = cell.live(now)
    if not live:
        return None
    if col.collection == "list":
        live.sort(key=lambda kc: kc[0])
        return pack_elements([c[2] for _, c in live])
    enc = col.element_encoder
    assert enc is not None
    live.sort(key=lambda kc: enc(kc[0]))
    if col.collection == "set":
        return pack_elements([k for k, _ in live])
    return pack_entries([(k, c[2]) for k, c in live])


def cell_value(col: ColumnMeta, row: Row, now: int) -> bytes | None:
    c = row.cells[col.slot] if col.slot < len(row.cells) else None
    if c is None:
        return None
    if type(c) is tuple:
        if c[4] != 0 and c[4] <= now:
            return None
        return c[2]  # type: ignore[no-any-return]
    return collection_value(col, c, now)


def _extractor(table: TableMeta, sel: ast.Selector) -> tuple[str, Any, Extractor]:
    """(default name, cql type class, function) for one selector."""
    if sel.kind == "column":
        assert sel.column is not None
        col = table.column(sel.column)
        if col.kind == "partition_key":
            i = col.slot
            return col.name, col.driver, lambda p, r, now: p.values[i]
        if col.kind == "clustering":
            i = col.slot
            return col.name, col.driver, lambda p, r, now: r.ck[i]
        return col.name, col.driver, lambda p, r, now: cell_value(col, r, now)
    if sel.kind in ("writetime", "ttl"):
        assert sel.column is not None
        col = table.column(sel.column)
        if col.kind != "regular":
            raise InvalidRequest(
                f"Cannot use selection function {sel.kind} on PRIMARY KEY part {col.name}"
            )
        if col.collection is not None:
            raise InvalidRequest(
                f"Cannot use selection function {sel.kind} on non-frozen collection {col.name}"
            )
        slot = col.slot
        if sel.kind == "writetime":

            def writetime(p: Partition, r: Row, now: int) -> bytes | None:
                c = r.cells[slot]
                if c is None or c[2] is None or (c[4] != 0 and c[4] <= now):
                    return None
                return int(c[3]).to_bytes(8, "big", signed=True)

            return f"writetime({col.name})", _ct.LongType, writetime

        def ttl(p: Partition, r: Row, now: int) -> bytes | None:
            c = r.cells[slot]
            if c is None or c[2] is None or c[4] == 0 or c[4] <= now:
                return None
            return int(c[4] - now).to_bytes(4, "big", signed=True)

        return f"ttl({col.name})", _ct.Int32Type, ttl
    if sel.kind == "function" and (sel.column or "").lower() == "token":
        names = [a.column for a in sel.args]
        if names != [c.name for c in table.partition_key]:
            raise InvalidRequest(
                "The token function arguments must be in the partition key order: "
                + ", ".join(c.name for c in table.partition_key)
            )
        return (
            f"system.token({', '.join(str(n) for n in names)})",
            _ct.LongType,
            lambda p, r, now: p.get_token().to_bytes(8, "big", signed=True),
        )
    if sel.kind == "function":
        name = (sel.column or "").lower()
        if len(sel.args) != 1:
            raise InvalidRequest(f"Unsupported selector function {name}")
        inner_name, inner_type, inner = _extractor(table, sel.args[0])
        return _function_selector(name, inner_name, inner_type, inner)
    raise InvalidRequest(f"Unsupported selector {sel.kind}")


def _function_selector(
    name: str, arg_name: str, arg_type: Any, inner: Extractor
) -> tuple[str, Any, Extractor]:
    def millis(raw: bytes) -> int:
        if arg_type in (_ct.TimeUUIDType, _ct.UUIDType):
            u = int.from_bytes(raw, "big")
            t = ((u >> 64) & 0x0FFF) << 48 | ((u >> 80) & 0xFFFF) << 32 | (u >> 96)
            return (t - 0x01B21DD213814000) // 10000
        if arg_type is _ct.SimpleDateType:
            return (int.from_bytes(raw, "big") - 2**31) * 86_400_000
        return int.from_bytes(raw, "big", signed=True)

    if name in ("totimestamp", "dateof"):
        out_type: Any = _ct.DateType

        def conv(raw: bytes) -> bytes:
            return millis(raw).to_bytes(8, "big", signed=True)
    elif name in ("tounixtimestamp", "unixtimestampof"):
        out_type = _ct.LongType

        def conv(raw: bytes) -> bytes:
            return millis(raw).to_bytes(8, "big", signed=True)
    elif name == "todate":
        out_type = _ct.SimpleDateType

        def conv(raw: bytes) -> bytes:
            return (millis(raw) // 86_400_000 + 2**31).to_bytes(4, "big")
    else:
        raise InvalidRequest(f"Unknown function '{name}'")

    def apply(p: Partition, r: Row, now: int) -> bytes | None:
        raw = inner(p, r, now)
        return None if raw is None else conv(raw)

    return f"system.{name}({arg_name})", out_type, apply


RowBuilder = Callable[[Partition, Row, int], list[bytes | None]]
BlobBuilder = Callable[[bytes, int, Any], Any]


def _row_builder(table: TableMeta, cols: list[ColumnMeta]) -> tuple[BlobBuilder, RowBuilder]:
    """Two functions assembling a row of plain columns: the hot path of SELECT.

    The first reads a stored row's bytes, given the partition's key values
    (:meth:`~rowcodec.RowCodec.reader`): None when the row is not live,
    :data:`~rowcodec.SLOW` when it is one for the second, which assembles a decoded row.
    """
    spec = [
        ("pk" if c.kind == "partition_key" else "ck" if c.kind == "clustering" else "cell", c.slot)
        for c in cols
    ]
    n_pk, n_ck = len(table.partition_key), len(table.clustering)
    regular = sorted({c.slot for c in cols if c.kind == "regular"})
    reg_cols = [table.regular[s] for s in regular]
    where = {s: n_pk + n_ck + i for i, s in enumerate(regular)}
    positions = [
        c.slot
        if c.kind == "partition_key"
        else n_pk + c.slot
        if c.kind == "clustering"
        else where[c.slot]
        for c in cols
    ]
    pick: Callable[[tuple[Any, ...]], Any] = (
        (lambda t: (t[positions[0]],)) if len(positions) == 1 else operator.itemgetter(*positions)
    )

    def build(p: Partition, r: Row, now: int) -> list[bytes | None]:
        vals: list[bytes | None] = []
        cells = r.cells
        for col in reg_cols:
            c = cells[col.slot] if col.slot < len(cells) else None
            if c is None:
                vals.append(None)
            elif type(c) is tuple:
                vals.append(c[2] if (c[4] == 0 or c[4] > now) else None)
            else:
                vals.append(collection_value(col, c, now))
        return list(pick((*p.values, *r.ck, *vals)))

    return table.data.codec.reader(spec), build


_AGGREGATES = ("count", "min", "max", "sum", "avg")


def _aggregate(fname: str, t: Any, row_count: int | None, raws: list[bytes]) -> bytes | None:
    """COUNT/MIN/MAX/SUM/AVG over serialized inputs, with Cassandra's result types."""
    if fname == "count":
        n = row_count if row_count is not None else len(raws)
        return n.to_bytes(8, "big", signed=True)
    values = [t.deserialize(r, 4) for r in raws]
    if fname in ("min", "max"):
        if not values:
            return None
        if t in _BYTE_ORDERED:
            raw = min(raws) if fname == "min" else max(raws)
            return raw
        return bytes(t.serialize(min(values) if fname == "min" else max(values), 4))
    total: Any = sum(values) if values else 0
    if fname == "avg" and values:
        total = _average(total, len(values))
    return bytes(t.serialize(total, 4))


def _average(total: Any, n: int) -> Any:
    """Integer averages truncate toward zero, as Cassandra's ``avg`` does."""
    if isinstance(total, int):
        return abs(total) // n * (1 if total >= 0 else -1)
    return total / n


_BYTE_ORDERED = (_ct.UTF8Type, _ct.AsciiType, _ct.BytesType)


class SelectPlan:
    """A compiled SELECT. ``run`` takes the table storage (virtual tables pass fresh data)."""

    def __init__(self, table: TableMeta, stmt: ast.Select) -> None:
        self.table = table
        self.where: Where = compile_where(table, stmt.where, for_select=True)
        if self.where.needs_filtering and not stmt.allow_filtering and not table.virtual:
            w = self.where
            if w.ck_error is not None and w.pk_terms is not None and not w.filters:
                raise InvalidRequest(w.ck_error)
            raise InvalidRequest(FILTERING_MSG)
        self.count_only = False
        self.aggregate = False
        extractors: list[Extractor] = []
        specs: list[ColumnSpec] = []
        ks, name = table.keyspace, table.name
        if not stmt.selectors:
            ordered = [*table.partition_key, *table.clustering]
            ordered += sorted(table.regular, key=lambda c: c.name)
            for col in ordered:
                _n, t, f = _extractor(table, ast.Selector("column", col.name))
                extractors.append(f)
                specs.append(ColumnSpec(ks, name, col.name, t))
        # Aggregates: position -> (argument extractor or None for COUNT(*), function, type).
        self.aggregates: dict[int, tuple[Extractor | None, str, Any]] = {}
        for i, sel in enumerate(stmt.selectors):
            if sel.kind == "count":
                self.aggregate = True
                self.aggregates[i] = (None, "count", _ct.LongType)
                specs.append(ColumnSpec(ks, name, sel.alias or "count", _ct.LongType))
                extractors.append(lambda p, r, now: None)
                continue
            fname = (sel.column or "").lower()
            if sel.kind == "function" and fname in _AGGREGATES and len(sel.args) == 1:
                arg_name, arg_type, arg = _extractor(table, sel.args[0])
                out_type = _ct.LongType if fname == "count" else arg_type
                self.aggregate = True
                self.aggregates[i] = (arg, fname, arg_type)
                default = f"system.{fname}({arg_name})"
                specs.append(ColumnSpec(ks, name, sel.alias or default, out_type))
                extractors.append(arg)
                continue
            default, t, f = _extractor(table, sel)
            specs.append(ColumnSpec(ks, name, sel.alias or default, t))
            extractors.append(f)
        self.columns = specs
        self.extractors = extractors
        names = [c.name for c in table.columns.values()]
        plain: list[str | None] = [s.column for s in stmt.selectors]
        if not stmt.selectors:
            star = [*table.partition_key, *table.clustering]
            star += sorted(table.regular, key=lambda c: c.name)
            plain = [c.name for c in star]
        self.build: RowBuilder | None = None
        self.build_blob: BlobBuilder | None = None
        if all(s.kind == "column" for s in stmt.selectors) and all(n in names for n in plain):
            self.build_blob, self.build = _row_builder(
                table, [table.columns[n] for n in plain if n is not None]
            )
        self.distinct = stmt.distinct
        self.limit = int_getter(stmt.limit, "LIMIT")
        self.pp_limit = int_getter(stmt.per_partition_limit, "PER PARTITION LIMIT")
        self.reverse = self._reversed(stmt.order_by)
        self.ordered_in = bool(stmt.order_by) and not self.aggregate
        self.in_partitions = any(op == "IN" for op, _term in self.where.pk_terms or ())
        if self.where.filters or self.where.ck_filters or self.where.pk_filters:
            self.has_filters = True
        else:
            self.has_filters = False

    def _reversed(self, order_by: tuple[tuple[str, str], ...]) -> bool:
        if not order_by:
            return False
        if self.where.pk_terms is None:
            raise InvalidRequest(
                "ORDER BY is only supported when the partition key is restricted by an EQ or an IN."
            )
        cks = self.table.clustering
        reverse: bool | None = None
        for i, (name, direction) in enumerate(order_by):
            col = self.table.column(name)
            if col.kind != "clustering":
                raise InvalidRequest(
                    "Order by is currently only supported on the clustered columns of the "
                    f"PRIMARY KEY, got {name}"
                )
            if i >= len(cks) or cks[i].name != name:
                raise InvalidRequest(
                    "Order by currently only supports the ordering of columns following their "
                    "declared order in the PRIMARY KEY"
                )
            this = (direction.lower() == "desc") != (col.order == "desc")
            if reverse is not None and this != reverse:
                raise InvalidRequest("Unsupported order by relation")
            reverse = this
        return bool(reverse)

    # ---------------------------------------------------------------------------------------

    def _partitions(
        self, data: TableData, values: Values, resume: bytes | None
    ) -> Iterator[Partition]:
        w = self.where
        if w.pk_terms is not None:
            keyed = []
            for key, _parts in w.partition_keys(values, reading=True):
                part = data.get(key)
                if part is not None:
                    keyed.append(((part.get_token(), key), part))
            keyed.sort(key=lambda kp: kp[0])
            started = resume is None
            for _k, part in keyed:
                if not started:
                    if part.key != resume:
                        continue
                    started = True
                yield part
            return
        lo, lo_inc, hi, hi_inc = (
            w.token_range(values) if w.token_bounds else (None, True, None, True)
        )
        if resume is not None:
            part = data.get(resume)
            if part is not None:
                start = (part.get_token(), resume)
                yield part
                for p in data.scan(start, inclusive=False):
                    if hi is not None and (
                        p.get_token() > hi or (p.get_token() == hi and not hi_inc)
                    ):
                        return
                    yield p
                return
        yield from data.token_range(lo, lo_inc, hi, hi_inc)

    def _rows(
        self, part: Partition, ranges: list[Range] | None, after: bytes | None
    ) -> Iterator[bytes]:
        """The stored rows of ``part`` the plan reads, in order."""
        if not self.table.clustering:
            if after is None:
                yield from part.span((None, True, None, True), False)
            return
        spans: list[Range] = ranges if ranges is not None else [(None, True, None, True)]
        if self.reverse:
            spans = spans[::-1]
        for lo, lo_inc, hi, hi_inc in spans:
            if after is not None:
                if self.reverse:
                    if hi is None or after <= hi:
                        hi, hi_inc = after, False
                else:
                    if lo is None or after >= lo:
                        lo, lo_inc = after, False
            if (
                lo is not None
                and hi is not None
                and (lo > hi or (lo == hi and not (lo_inc and hi_inc)))
            ):
                continue
            yield from part.span((lo, lo_inc, hi, hi_inc), self.reverse)

    def _ordered_across_partitions(
        self,
        data: TableData,
        values: Values,
        now: int,
        limit: int | None,
        pp_limit: int | None,
    ) -> Rows:
        """``IN (...) ORDER BY``: rows of every partition merged in clustering order, unpaged.

        Scylla sorts such results across partitions, and refuses to page them (``run``).
        """
        w = self.where
        ranges = w.ck_builder(values) if w.ck_builder is not None else None
        filters = [(f.col, f.compile(values)) for f in w.filters]
        ck_filters = [(i, f.compile(values)) for i, f in w.ck_filters]
        found: list[tuple[bytes, int, Partition, Row]] = []
        decode, width = data.codec.decode, data.width
        for n, part in enumerate(self._partitions(data, values, None)):
            taken = 0
            for blob in self._rows(part, ranges, None):
                ckey = part.ckey(blob)
                row = decode(blob, width)
                if not row.is_live(now):
                    continue
                if ck_filters and not all(f(row.ck[i]) for i, f in ck_filters):
                    continue
                if filters and not all(f(cell_value(col, row, now)) for col, f in filters):
                    continue
                found.append((ckey, n, part, row))
                taken += 1
                if pp_limit is not None and taken >= pp_limit:
                    break
        found.sort(key=lambda item: item[:2], reverse=self.reverse)
        if limit is not None:
            found = found[:limit]
        rows = [[f(p, r, now) for f in self.extractors] for _k, _n, p, r in found]
        return Rows(self.columns, rows)

    def run(
        self,
        data: TableData,
        values: Values,
        page_size: int | None,
        paging_state: bytes | None,
        now: int | None = None,
    ) -> Rows:
        now = int(time.time()) if now is None else now
        limit = self.limit(values)
        if limit is not None and limit <= 0:
            raise InvalidRequest("LIMIT must be strictly positive")
        pp_limit = self.pp_limit(values)
        if pp_limit is not None and pp_limit <= 0:
            raise InvalidRequest("PER PARTITION LIMIT must be strictly positive")
        if self.ordered_in and self.in_partitions and page_size is not None and page_size > 0:
            raise InvalidRequest(
                "Cannot page queries with both ORDER BY and a IN restriction on the partition "
                "key; you must either remove the ORDER BY or the IN and sort client side, or "
                "disable paging for this query"
            )
        if self.ordered_in and len(self.where.partition_keys(values, reading=True)) > 1:
            return self._ordered_across_partitions(data, values, now, limit, pp_limit)
        resume_key: bytes | None = None
        resume_ck: bytes | None = None
        pp_seen = 0
        if paging_state:
            try:
                resume_key, resume_ck, limit, pp_seen = marshal.loads(paging_state)
            except (ValueError, EOFError, TypeError) as exc:
                raise ProtocolError("Invalid paging state") from exc
        if self.aggregate or (page_size is not None and page_size <= 0):
            page_size = None
        w = self.where
        ranges = w.ck_builder(values) if w.ck_builder is not None else None
        if ranges == []:
            return Rows(self.columns, [])
        filters = [f.compile(values) for f in w.filters] if w.filters else []
        ck_filters = [(i, f.compile(values)) for i, f in w.ck_filters]
        pk_filters = [(i, f.compile(values)) for i, f in w.pk_filters]
        extract = self.extractors
        build, build_blob = self.build, self.build_blob
        if ck_filters or filters or self.aggregate:
            build_blob = None  # every row is decoded
        decode, width, is_live = data.codec.decode, data.width, data.codec.is_live
        out: list[list[bytes | None]] = []
        count = 0
        first: list[bytes | None] | None = None
        inputs: dict[int, list[bytes]] = {}
        for part in self._partitions(data, values, resume_key):
            if pk_filters and not all(f(part.values[i]) for i, f in pk_filters):
                continue
            after = resume_ck if part.key == resume_key else None
            in_part = pp_seen if part.key == resume_key else 0
            if self.distinct and (
                after is not None or not any(is_live(r, now) for r in part.all_rows())
            ):
                continue
            if pp_limit is not None and in_part >= pp_limit:
                continue
            pv = part.values
            for blob in self._rows(part, ranges, after):
                got = SLOW if build_blob is None else build_blob(blob, now, pv)
                if got is None:
                    continue
                if got is SLOW:
                    row = decode(blob, width)
                    if not row.is_live(now):
                        continue
                    if ck_filters and not all(f(row.ck[i]) for i, f in ck_filters):
                        continue
                    if filters and not all(
                        f(cell_value(flt.col, row, now))
                        for f, flt in zip(filters, w.filters, strict=True)
                    ):
                        continue
                    if self.aggregate:
                        count += 1
                        if first is None:
                            first = [f(part, row, now) for f in extract]
                        for i, (arg, _fname, _t) in self.aggregates.items():
                            if arg is not None:
                                raw = arg(part, row, now)
                                if raw is not None:
                                    inputs.setdefault(i, []).append(raw)
                        continue
                    got = build(part, row, now) if build else [f(part, row, now) for f in extract]
                out.append(got)
                in_part += 1
                if limit is not None:
                    limit -= 1
                    if limit == 0:
                        return Rows(self.columns, out)
                if page_size is not None and len(out) >= page_size:
                    state = marshal.dumps((part.key, part.ckey(blob), limit, in_part))
                    return Rows(self.columns, out, state)
                if self.distinct or (pp_limit is not None and in_part >= pp_limit):
                    break
        if self.aggregate:
            row_out: list[bytes | None] = first if first is not None else [None] * len(extract)
            for i, (arg, fname, t) in self.aggregates.items():
                row_out[i] = _aggregate(fname, t, count if arg is None else None, inputs.get(i, []))
            return Rows(self.columns, [row_out])
        return Rows(self.columns, out)
