"""Serialized values checked as ScyllaDB checks them, with bounded work, before anything uses them.

Every bound value of a statement is validated against the type of what it binds to (the
marker's column, element, TTL...) when the statement executes, as ScyllaDB's
``abstract_type::validate`` does: fixed-size types must have their size (or be empty), text must
be UTF-8, ascii ASCII, a timeuuid a version-1 UUID, and collections and tuples must be
well-formed all the way down. A failure is ScyllaDB's ``marshal_exception`` text, which the
engine wraps as "Exception while binding column X: marshaling error: ...".

Decoding is bounded by the bytes at hand: a count is never trusted to size anything, each
element costs at least its 4-byte length prefix, so a value of *n* bytes costs O(*n*) work
whatever it claims (a 4-byte list claiming 2^32-1 elements fails at once).

Sets and maps are *normalised* here too (also nested in frozen values): elements sorted in
the element type's order and duplicates dropped, as ScyllaDB stores them, so that a frozen set
sent in any order is the same key and compares equal.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from chat.embedded.cql import ast

MarshalCheck = Callable[[bytes], bytes]
"""Validates a serialized value; returns it, or its normalised form (sets and maps)."""

_INT = struct.Struct(">i")
_int_unpack = _INT.unpack_from
_int_pack = _INT.pack

# Type names as ScyllaDB's messages spell them.
_INTEGER_CLASS = {
    "int": "org.apache.cassandra.db.marshal.Int32Type",
    "bigint": "org.apache.cassandra.db.marshal.LongType",
    "counter": "org.apache.cassandra.db.marshal.LongType",
}


class MarshalError(ValueError):
    """A serialized value that is not a valid value of its type (ScyllaDB's wording)."""


def _read_int(raw: bytes, pos: int) -> int:
    if len(raw) - pos < 4:
        raise MarshalError(f"read_simple - not enough bytes (expected 4, got {len(raw) - pos})")
    value: int = _int_unpack(raw, pos)[0]
    return value


def _read_element(raw: bytes, pos: int) -> tuple[bytes | None, int]:
    """One [int length][bytes] element; None for a negative (null) length."""
    size = _read_int(raw, pos)
    pos += 4
    if size < 0:
        return None, pos
    end = pos + size
    if end > len(raw):
        raise MarshalError(
            f"read_simple_bytes - not enough bytes (requested {size}, got {len(raw) - pos})"
        )
    return raw[pos:end], end


def split_collection(raw: bytes, pairs: bool) -> list[tuple[bytes | None, bytes | None]]:
    """The elements of a serialized list/set (``pairs`` False) or map, bounded by ``raw``.

    A count larger than the bytes can hold fails at the first element that is not there; a
    negative one never ends ScyllaDB's loop over it, so it fails the same way.
    """
    count = _read_int(raw, 0)
    pos = 4
    out: list[tuple[bytes | None, bytes | None]] = []
    append = out.append
    end = len(raw)
    while count < 0 or len(out) < count:
        if pos >= end:
            raise MarshalError(f"read_simple - not enough bytes (expected 4, got {end - pos})")
        key, pos = _read_element(raw, pos)
        value: bytes | None = None
        if pairs:
            value, pos = _read_element(raw, pos)
        append((key, value))
    if pos != end:
        kind = "map" if pairs else "collection"
        raise MarshalError(
            f"Validation failed for {kind}: bytes remaining after reading all {len(out)} "
            f"elements -> [{raw[pos : pos + 16].hex()}]"
        )
    return out


def pack_elements(items: Sequence[bytes]) -> bytes:
    """A list/set serialized from already-serialized elements (protocol v3+ layout)."""
    out = [_int_pack(len(items))]
    for item in items:
        out.append(_int_pack(len(item)))
        out.append(item)
    return b"".join(out)


def pack_entries(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    out = [_int_pack(len(entries))]
    for k, v in entries:
        out += (_int_pack(len(k)), k, _int_pack(len(v)), v)
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Per-type checks.


def _fixed(size: int, message: Callable[[int], str]) -> MarshalCheck:
    def check(raw: bytes) -> bytes:
        if raw and len(raw) != size:
            raise MarshalError(message(len(raw)))
        return raw

    return check


def _utf8(raw: bytes) -> bytes:
    if raw.isascii():
        return raw
    try:
        raw.decode("utf-8")  # strict: overlong forms, surrogates and >U+10FFFF all fail
    except UnicodeDecodeError as exc:
        raise MarshalError(
            f"Validation failed - non-UTF8 character in a UTF8 string, at byte offset {exc.start}"
        ) from None
    return raw


def _ascii(raw: bytes) -> bytes:
    if not raw.isascii():
        raise MarshalError("Validation failed - non-ASCII character in an ASCII string")
    return raw


def _timeuuid(raw: bytes) -> bytes:
    if not raw:
        return raw
    if len(raw) != 16:
        raise MarshalError(f"Validation failed for timeuuid - got {len(raw)} bytes")
    version = raw[6] >> 4
    if version != 1:
        raise MarshalError(f"Unsupported UUID version ({version})")
    return raw


def _inet(raw: bytes) -> bytes:
    if raw and len(raw) not in (4, 16):
        raise MarshalError(f"Validation failed for inet_addr - got {len(raw)} bytes")
    return raw


def _decimal(raw: bytes) -> bytes:
    if raw and len(raw) < 5:
        raise MarshalError(
            f"Validation failed for decimal: got {len(raw)} bytes (a 4-byte scale and at "
            "least one byte of unscaled value are needed)"
        )
    return raw


def _vint(raw: bytes, pos: int) -> tuple[int, int]:
    """One unsigned vint (the duration encoding): leading ones count the extra bytes."""
    if pos >= len(raw):
        raise MarshalError("Cannot deserialize duration")
    first = raw[pos]
    extra = 0
    while extra < 8 and first & (0x80 >> extra):
        extra += 1
    if pos + 1 + extra > len(raw):
        raise MarshalError("Cannot deserialize duration")
    value = first & (0xFF >> extra) if extra < 8 else 0
    for byte in raw[pos + 1 : pos + 1 + extra]:
        value = (value << 8) | byte
    return value, pos + 1 + extra


def _duration(raw: bytes) -> bytes:
    if len(raw) < 3:
        raise MarshalError(f"Expected at least 3 bytes for a duration, got {len(raw)}")
    pos = 0
    parts: list[int] = []
    for _ in range(3):
        value, pos = _vint(raw, pos)
        parts.append((value >> 1) ^ -(value & 1))  # zigzag
    if pos != len(raw):
        raise MarshalError("Cannot deserialize duration: bytes remaining")
    months, days, nanos = parts
    for name, value, bits in (
        ("months", months, 32),
        ("days", days, 32),
        ("nanoseconds", nanos, 64),
    ):
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise MarshalError(f"The duration {name} ({value}) must be a {bits} bit integer")
    if not (all(p <= 0 for p in parts) or all(p >= 0 for p in parts)):
        raise MarshalError(
            "The duration months, days, and nanoseconds must be all of the same sign "
            f"({months}, {days}, {nanos})"
        )
    return raw


_SIMPLE_CHECKS: dict[str, MarshalCheck] = {
    "text": _utf8,
    "varchar": _utf8,
    "ascii": _ascii,
    "timeuuid": _timeuuid,
    "inet": _inet,
    "decimal": _decimal,
    "duration": _duration,
    "tinyint": _fixed(1, lambda n: f"Expected 1 byte for a tinyint ({n})"),
    "smallint": _fixed(2, lambda n: f"Expected 2 bytes for a smallint ({n})"),
    "boolean": _fixed(1, lambda n: f"Validation failed for boolean, got {n} bytes"),
    "timestamp": _fixed(8, lambda n: f"Validation failed for timestamp - got {n} bytes"),
    "float": _fixed(4, lambda n: f"Expected 4 bytes for a floating type, got {n}"),
    "double": _fixed(8, lambda n: f"Expected 8 bytes for a floating type, got {n}"),
    "date": _fixed(4, lambda n: f"Expected 4 byte long for date ({n})"),
    "time": _fixed(8, lambda n: f"Expected 8 byte long for time ({n})"),
    "uuid": _fixed(16, lambda n: f"Validation failed for uuid - got {n} bytes"),
}


def _integer(name: str) -> MarshalCheck:
    cls = _INTEGER_CLASS[name]
    return _fixed(
        4 if name == "int" else 8, lambda n: f"Validation failed for type {cls}: got {n} bytes"
    )


for _name in _INTEGER_CLASS:
    _SIMPLE_CHECKS[_name] = _integer(_name)


def _unfrozen(t: ast.CqlType) -> ast.CqlType:
    return t.params[0] if t.name == "frozen" else t


@cache
def check_for(t: ast.CqlType) -> MarshalCheck | None:
    """The validator of serialized values of ``t``; None when every byte string is valid
    (blob, varint). Sets and maps come back normalised; see the module docstring."""
    t = _unfrozen(t)
    simple = _SIMPLE_CHECKS.get(t.name)
    if simple is not None or not t.params:
        return simple
    if t.name == "list":
        return _listlike(check_for(t.params[0]), None)
    if t.name == "set":
        return _listlike(check_for(t.params[0]), _order_of(t.params[0]))
    if t.name == "map":
        return _map(check_for(t.params[0]), check_for(t.params[1]), _order_of(t.params[0]))
    if t.name == "tuple":
        return _tuple([check_for(p) for p in t.params])
    return None


def _order_of(t: ast.CqlType) -> Callable[[bytes], bytes]:
    from chat.embedded.cql.ordering import ordering_encoder  # it orders by these checks' parts

    return ordering_encoder(t)


def _listlike(element: MarshalCheck | None, order: Callable[[bytes], bytes] | None) -> MarshalCheck:
    """Lists keep their order; sets (``order`` given) are sorted and de-duplicated."""

    def check(raw: bytes) -> bytes:
        values: list[bytes] = []
        changed = False
        for item, _ in split_collection(raw, False):
            if item is None:
                raise MarshalError("null is not supported inside collections")
            if element is not None:
                fixed = element(item)
                changed = changed or fixed is not item
                item = fixed
            values.append(item)
        if order is not None:
            unique = {order(v): v for v in values}
            values = [unique[k] for k in sorted(unique)]
            changed = True
        if not changed:
            return raw
        normalised = pack_elements(values)
        return raw if normalised == raw else normalised

    return check


def _map(
    key: MarshalCheck | None, value: MarshalCheck | None, order: Callable[[bytes], bytes]
) -> MarshalCheck:
    def check(raw: bytes) -> bytes:
        entries: dict[bytes, tuple[bytes, bytes]] = {}
        for k, v in split_collection(raw, True):
            if k is None or v is None:
                raise MarshalError("null is not supported inside collections")
            if key is not None:
                k = key(k)
            if value is not None:
                v = value(v)
            entries[order(k)] = (k, v)
        normalised = pack_entries([entries[o] for o in sorted(entries)])
        return raw if normalised == raw else normalised

    return check


def _tuple(elements: Sequence[MarshalCheck | None]) -> MarshalCheck:
    def check(raw: bytes) -> bytes:
        pos = 0
        out: list[bytes | None] = []
        changed = False
        for element in elements:
            if pos >= len(raw):
                break  # a tuple may omit trailing elements
            item, pos = _read_element(raw, pos)
            if item is not None and element is not None:
                fixed = element(item)
                changed = changed or fixed is not item
                item = fixed
            out.append(item)
        if pos != len(raw):
            raise MarshalError(
                f"Validation failed for tuple: bytes remaining after reading all "
                f"{len(elements)} elements"
            )
        if not changed:
            return raw
        return b"".join(_int_pack(-1) if v is None else _int_pack(len(v)) + v for v in out)

    return check


def elements(raw: bytes, pairs: bool) -> list[tuple[bytes, Any]]:
    """Elements of an already validated collection (nulls were refused by its check)."""
    return [(k or b"", v) for k, v in split_collection(raw, pairs)]
