"""Values: CQL types, literal conversion, bound-value access and the partitioner token.

The engine keeps regular values exactly as the client serialized them (validated when bound,
see :mod:`marshal`). What needs more than bytes lives here:

* literals in statement text (``Constant``) become serialized bytes through the driver's own
  codecs (``cassandra.cqltypes``), once, at PREPARE — timestamps and dates parsed as ScyllaDB
  parses them (:mod:`temporal`), sets and maps in their normal order;
* the :data:`UNSET` bind value, and the getters that read bound values;
* partition keys become Murmur3 tokens, as Scylla's partitioner computes them.

Clustering values become ordering keys in :mod:`ordering`.
"""

from __future__ import annotations

import ipaddress
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from cassandra import cqltypes as _ct
from cassandra import util as _cutil
from cassandra.murmur3 import murmur3 as _murmur3

from chat.embedded.cql import ast
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.marshal import MarshalError, check_for, pack_elements, pack_entries
from chat.embedded.cql.temporal import DATE_EPOCH, parse_date, parse_timestamp

PROTOCOL = 4
MIN_LONG = -(2**63)
MAX_LONG = 2**63 - 1

Values = Sequence[bytes | None]
Getter = Callable[[Values], Any]

_SIMPLE: dict[str, Any] = {
    "ascii": _ct.AsciiType,
    "text": _ct.UTF8Type,
    "varchar": _ct.UTF8Type,
    "int": _ct.Int32Type,
    "bigint": _ct.LongType,
    "smallint": _ct.ShortType,
    "tinyint": _ct.ByteType,
    "boolean": _ct.BooleanType,
    "float": _ct.FloatType,
    "double": _ct.DoubleType,
    "decimal": _ct.DecimalType,
    "varint": _ct.IntegerType,
    "timestamp": _ct.DateType,
    "date": _ct.SimpleDateType,
    "time": _ct.TimeType,
    "uuid": _ct.UUIDType,
    "timeuuid": _ct.TimeUUIDType,
    "blob": _ct.BytesType,
    "inet": _ct.InetAddressType,
    "counter": _ct.CounterColumnType,
    "duration": _ct.DurationType,
}

FIXED_SIZES: dict[str, int] = {
    "int": 4,
    "bigint": 8,
    "smallint": 2,
    "tinyint": 1,
    "boolean": 1,
    "float": 4,
    "double": 8,
    "timestamp": 8,
    "date": 4,
    "time": 8,
    "uuid": 16,
    "timeuuid": 16,
    "counter": 8,
}

COLLECTIONS = ("list", "set", "map")


class _Unset:
    """The protocol v4 *unset* bind value (length -2): "leave this alone", never a null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Where a bound value was sent as unset; see the engine's binding for where it is allowed."""


class ValuesWithUnset(list[Any]):
    """Bound values of which at least one is :data:`UNSET`.

    Binding returns this type only then, so that the write paths test for unset values with
    one type check per statement instead of a scan per row.
    """


def canonical(t: ast.CqlType) -> ast.CqlType:
    """Normalise aliases (``varchar`` → ``text``) and make tuples frozen, as Scylla reports them."""
    name = "text" if t.name == "varchar" else t.name
    params = tuple(canonical(p) for p in t.params)
    if name == "tuple":
        return ast.CqlType("frozen", (ast.CqlType("tuple", params),))
    if name == "frozen" and params and params[0].name == "frozen":
        return params[0]
    return ast.CqlType(name, params)


def driver_type(t: ast.CqlType) -> Any:
    """The ``cassandra.cqltypes`` class for a CQL type (``frozen`` is a schema-only notion)."""
    if t.name == "frozen":
        if len(t.params) != 1:
            raise InvalidRequest(f"Invalid type {t}")
        return driver_type(t.params[0])
    if t.name in _SIMPLE:
        if t.params:
            raise InvalidRequest(f"Type {t.name} takes no parameters")
        return _SIMPLE[t.name]
    arity = {"list": 1, "set": 1, "map": 2}.get(t.name)
    if t.name == "tuple" and t.params:
        return parameterized(_ct.TupleType, tuple(driver_type(p) for p in t.params))
    if arity is not None and len(t.params) == arity:
        cls = {"list": _ct.ListType, "set": _ct.SetType, "map": _ct.MapType}[t.name]
        return parameterized(cls, tuple(driver_type(p) for p in t.params))
    raise InvalidRequest(f"Unknown type {t}")


_parameterized: dict[tuple[Any, tuple[Any, ...]], Any] = {}


def parameterized(cls: Any, subtypes: tuple[Any, ...]) -> Any:
    """``cls.apply_parameters(subtypes)``, one class per distinct type for the process's life.

    The driver builds a new class on every call, and a class is a reference cycle: created per
    DDL or PREPARE and dropped with a replaced table or evicted statement, each would be
    garbage only the cycle collector can free — which the server's collector policy
    (``gc_policy``) does not run over long-lived objects. The distinct types are few.
    """
    key = (cls, subtypes)
    found = _parameterized.get(key)
    if found is None:
        found = _parameterized[key] = cls.apply_parameters(list(subtypes))
    return found


def base_name(t: ast.CqlType) -> str:
    """``list`` for ``frozen<list<int>>``: the kind of value, frozen or not."""
    return t.params[0].name if t.name == "frozen" else t.name


# --------------------------------------------------------------------------------------------
# Tokens and partition keys.


def token_of(key: bytes) -> int:
    """Murmur3 token of a serialized partition key, as Scylla's Murmur3Partitioner computes it."""
    h = int(_murmur3(key))
    return MAX_LONG if h == MIN_LONG else h


def composite_key(parts: Sequence[bytes]) -> bytes:
    """The composite encoding of a multi-column partition key (length, bytes, 0x00 each)."""
    if len(parts) == 2:  # the common compound key, e.g. (event_id, bucket): no generator
        a, b = parts
        return _COMPOSITE_2 % (len(a) >> 8, len(a) & 0xFF, a, len(b) >> 8, len(b) & 0xFF, b)
    return b"".join([len(p).to_bytes(2, "big") + p + b"\x00" for p in parts])


_COMPOSITE_2 = b"%c%c%b\x00%c%c%b\x00"


def split_composite(key: bytes, arity: int) -> tuple[bytes, ...]:
    """The components of a composite partition key (:func:`composite_key` undone)."""
    out = []
    pos = 0
    for _ in range(arity):
        size = int.from_bytes(key[pos : pos + 2], "big")
        out.append(key[pos + 2 : pos + 2 + size])
        pos += size + 3
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Literals and functions in value positions.


def now_micros() -> int:
    return time.time_ns() // 1000


def _timeuuid_now() -> uuid.UUID:
    return uuid.uuid1()


def _uuid_millis(u: uuid.UUID) -> int:
    return (u.time - 0x01B21DD213814000) // 10000


def _constant_value(c: ast.Constant, t: ast.CqlType, column: str) -> Any:
    name = base_name(t)
    kind, text = c.kind, c.text
    if kind == "null":
        return None
    try:
        if name in ("ascii", "text", "varchar"):
            if kind != "string":
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            if name == "ascii" and not text.isascii():
                raise InvalidRequest(f"Invalid ASCII character in string literal {text!r}")
            return text
        if name in ("int", "bigint", "smallint", "tinyint", "varint", "counter"):
            if kind != "integer":
                raise InvalidRequest(
                    f'Invalid {_kind_name(kind)} constant ({text}) for "{column}" of type {t}'
                )
            return int(text)
        if name in ("float", "double"):
            if kind not in ("integer", "float"):
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            return float(text.replace("Infinity", "inf"))
        if name == "decimal":
            if kind not in ("integer", "float"):
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            number = Decimal(text)
            exponent = number.as_tuple().exponent
            if not isinstance(exponent, int) or not -(2**31) <= -exponent < 2**31:
                raise InvalidRequest(f"unable to make BigDecimal from '{text}'")
            return number
        if name == "boolean":
            if kind != "boolean":
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            return text.lower() == "true"
        if name == "timestamp":
            if kind == "integer":
                return int(text)
            if kind != "string":
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            return parse_timestamp(text)
        if name == "date":
            if kind not in ("integer", "string"):
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            return _cutil.Date(parse_date(text) - DATE_EPOCH)
        if name == "time":
            return _cutil.Time(int(text) if kind == "integer" else text)
        if name in ("uuid", "timeuuid"):
            return uuid.UUID(text)
        if name == "blob":
            if kind != "hex":
                raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')
            return bytes.fromhex(text[2:])
        if name == "inet":
            return str(ipaddress.ip_address(text))
        if name == "duration":
            raise InvalidRequest("duration literals are not supported by the embedded server")
    except InvalidRequest:
        raise
    except MarshalError as exc:
        raise InvalidRequest(f"marshaling error: {exc}") from exc
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise InvalidRequest(f'Invalid value ({text}) for "{column}" of type {t}: {exc}') from exc
    raise InvalidRequest(f'Invalid {kind} constant ({text}) for "{column}" of type {t}')


def _kind_name(kind: str) -> str:
    return {"string": "STRING", "float": "FLOAT", "boolean": "BOOLEAN", "uuid": "UUID"}.get(
        kind, kind
    )


def python_value(term: ast.Term, t: ast.CqlType, column: str, values: Values) -> Any:
    """A term as the driver-native Python value of type ``t`` (used for literals only)."""
    inner = t.params[0] if t.name == "frozen" else t
    if isinstance(term, ast.Constant):
        return _constant_value(term, t, column)
    if isinstance(term, ast.BindMarker):
        raw = values[term.index]
        if raw is UNSET:
            raise InvalidRequest(f"Invalid unset value for column {column}")
        return None if raw is None else driver_type(t).deserialize(raw, PROTOCOL)
    if isinstance(term, ast.FunctionCall):
        raw = call_function(term, t, column, values)
        return None if raw is None else driver_type(t).deserialize(raw, PROTOCOL)
    if isinstance(term, (ast.ListLiteral, ast.SetLiteral)) and inner.name in ("list", "set"):
        items = [python_value(i, inner.params[0], column, values) for i in term.items]
        if None in items:
            raise InvalidRequest("null is not supported inside collections")
        return items if inner.name == "list" else _cutil.sortedset(items)
    if isinstance(term, ast.MapLiteral) and inner.name == "set" and not term.entries:
        return []
    if isinstance(term, ast.MapLiteral) and inner.name == "map":
        kt, vt = inner.params
        entries = {
            python_value(k, kt, column, values): python_value(v, vt, column, values)
            for k, v in term.entries
        }
        if None in entries or None in entries.values():
            raise InvalidRequest("null is not supported inside collections")
        return entries
    if isinstance(term, ast.TupleLiteral) and inner.name == "tuple":
        if len(term.items) > len(inner.params):
            raise InvalidRequest(f"Invalid tuple literal for {column}: too many elements")
        return tuple(
            python_value(i, p, column, values)
            for i, p in zip(term.items, inner.params, strict=False)
        )
    raise InvalidRequest(f"Invalid value for column {column} of type {t}")


def serialize(term: ast.Term, t: ast.CqlType, column: str, values: Values) -> bytes | None:
    """A term as serialized bytes of type ``t``; bind markers pass through untouched (the
    engine validated them when binding; they may be :data:`UNSET`).

    Literals come out in ScyllaDB's normal form (sets and maps sorted, also nested).
    """
    if isinstance(term, ast.BindMarker):
        return values[term.index]
    if isinstance(term, ast.FunctionCall):
        return call_function(term, t, column, values)
    inner = t.params[0] if t.name == "frozen" else t
    raw: bytes | None
    if isinstance(term, (ast.ListLiteral, ast.SetLiteral, ast.MapLiteral)) and inner.name in (
        "list",
        "set",
        "map",
    ):
        raw = _collection_literal(term, inner, column, values)
    else:
        raw = _scalar_literal(term, t, column, values)
    check = check_for(t)
    if raw is None or check is None:
        return raw
    try:
        return check(raw)
    except MarshalError as exc:
        raise InvalidRequest(f"marshaling error: {exc}") from exc


def _collection_literal(
    term: ast.ListLiteral | ast.SetLiteral | ast.MapLiteral,
    t: ast.CqlType,
    column: str,
    values: Values,
) -> bytes:
    """A collection literal serialized element by element (elements may be collections)."""
    if isinstance(term, ast.MapLiteral) and t.name == "map":
        kt, vt = t.params
        entries = [
            (serialize(k, kt, column, values), serialize(v, vt, column, values))
            for k, v in term.entries
        ]
        pairs = [(k, v) for k, v in entries if k is not None and v is not None]
        if len(pairs) != len(entries) or any(k is UNSET or v is UNSET for k, v in pairs):
            raise InvalidRequest("null is not supported inside collections")
        return pack_entries(pairs)
    if isinstance(term, ast.MapLiteral):
        if term.entries:
            raise InvalidRequest(f"Invalid map literal for {column} of type {t}")
        return pack_elements([])
    if t.name == "map":
        raise InvalidRequest(f"Invalid list literal for {column} of type {t}")
    items = [serialize(i, t.params[0], column, values) for i in term.items]
    present = [i for i in items if i is not None and i is not UNSET]
    if len(present) != len(items):
        raise InvalidRequest("null is not supported inside collections")
    return pack_elements(present)


def _scalar_literal(term: ast.Term, t: ast.CqlType, column: str, values: Values) -> bytes | None:
    value = python_value(term, t, column, values)
    if value is None:
        return None
    try:
        return bytes(driver_type(t).serialize(value, PROTOCOL))
    except (TypeError, ValueError, struct.error, OverflowError) as exc:
        raise InvalidRequest(f"Invalid value for column {column} of type {t}: {exc}") from exc


def _millis_of(arg: ast.Term, column: str, values: Values) -> int:
    """Milliseconds since the epoch of a timeuuid/timestamp/date argument of a function."""
    if isinstance(arg, ast.FunctionCall) and arg.name in ("now",):
        return time.time_ns() // 1_000_000
    raw = serialize(arg, ast.CqlType("timeuuid"), column, values)
    if raw is None:
        raise InvalidRequest("Invalid null argument")
    return _uuid_millis(uuid.UUID(bytes=raw))


def call_function(f: ast.FunctionCall, t: ast.CqlType, column: str, values: Values) -> bytes | None:
    """The native time and uuid functions in value positions, serialized as type ``t``."""
    name = f.name
    target = base_name(t)
    if name == "now" and not f.args:
        if target not in ("timeuuid", "uuid"):
            raise InvalidRequest(
                f"Type error: cannot assign result of function system.now (type timeuuid) "
                f"to {column} (type {t})"
            )
        return _timeuuid_now().bytes
    if name == "uuid" and not f.args:
        return uuid.uuid4().bytes
    if name in ("currenttimestamp", "currenttime", "currentdate", "currenttimeuuid") and not f.args:
        ms = time.time_ns() // 1_000_000
        if name == "currenttimeuuid":
            return _timeuuid_now().bytes
        return _time_as(ms, name, target, column, t)
    if name in ("totimestamp", "dateof", "todate", "tounixtimestamp", "unixtimestampof"):
        if len(f.args) != 1:
            raise InvalidRequest(f"Invalid number of arguments in call to function system.{name}")
        return _time_as(_millis_of(f.args[0], column, values), name, target, column, t)
    if name in ("mintimeuuid", "maxtimeuuid") and len(f.args) == 1:
        raw = serialize(f.args[0], ast.CqlType("timestamp"), column, values)
        if raw is None:
            return None
        ms = int.from_bytes(raw, "big", signed=True)
        make = _cutil.min_uuid_from_time if name == "mintimeuuid" else _cutil.max_uuid_from_time
        return bytes(make(ms / 1000).bytes)
    raise InvalidRequest(f"Unknown function '{name}'")


def _time_as(ms: int, fname: str, target: str, column: str, t: ast.CqlType) -> bytes:
    if target in ("timestamp", "bigint"):
        return ms.to_bytes(8, "big", signed=True)
    if target == "date":
        return (ms // 86_400_000 + 2**31).to_bytes(4, "big")
    raise InvalidRequest(
        f"Type error: cannot assign result of function system.{fname} to {column} (type {t})"
    )


def getter_for(term: ast.Term, t: ast.CqlType, column: str) -> Getter:
    """A function of the bound values producing the serialized value of ``term``.

    Constants are serialized here, once (at PREPARE); bind markers become an index lookup.
    """
    if isinstance(term, ast.BindMarker):
        index = term.index
        return lambda values: values[index]
    if isinstance(term, ast.Constant) or (
        isinstance(term, (ast.ListLiteral, ast.SetLiteral, ast.MapLiteral, ast.TupleLiteral))
        and not _has_dynamic(term)
    ):
        const = serialize(term, t, column, ())
        return lambda values: const
    return lambda values: serialize(term, t, column, values)


def _has_dynamic(term: ast.Term) -> bool:
    if isinstance(term, (ast.BindMarker, ast.FunctionCall)):
        return True
    if isinstance(term, (ast.ListLiteral, ast.SetLiteral, ast.TupleLiteral)):
        return any(_has_dynamic(i) for i in term.items)
    if isinstance(term, ast.MapLiteral):
        return any(_has_dynamic(k) or _has_dynamic(v) for k, v in term.entries)
    return False


def int_getter(term: ast.Term | None, what: str) -> Callable[[Values], int | None]:
    """A getter for an ``int``/``bigint`` clause value (TTL, TIMESTAMP, LIMIT).

    None when the clause is absent or its marker is :data:`UNSET` (the table's default TTL,
    the current time, no limit); a null is an error, as in ScyllaDB.
    """
    if term is None:
        return lambda values: None
    if isinstance(term, ast.Constant):
        if term.kind != "integer":
            raise InvalidRequest(f"Invalid {what} value {term.text}")
        n = int(term.text)
        return lambda values: n
    if isinstance(term, ast.BindMarker):
        index = term.index

        def bound(values: Values) -> int | None:
            raw = values[index]
            if raw is UNSET:
                return None
            if raw is None:
                raise InvalidRequest(f"Invalid null value of {what}")
            return int.from_bytes(raw, "big", signed=True)

        return bound
    raise InvalidRequest(f"Invalid {what} value")
