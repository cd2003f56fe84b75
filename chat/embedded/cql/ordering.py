"""Ordering keys: byte strings whose plain ``bytes`` order is the CQL order of a type.

Clustering values are stored under their ordering key, so the storage's sorted containers
compare in C and a whole clustering prefix is one ``bytes`` value. Every key is *prefix-free*
(no key is a prefix of another of the same type), so the keys of consecutive clustering
columns concatenate without ambiguity, and inverting every byte reverses the order (DESC).

Equal values have equal keys even when their serialized forms differ, as ScyllaDB compares
them: a decimal ``1230`` and ``1.23E+3`` are the same clustering key (the row keeps the bytes
it was first written with), and frozen sets and maps order element by element.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cache

from chat.embedded.cql import ast
from chat.embedded.cql.errors import InvalidRequest
from chat.embedded.cql.marshal import MarshalError, split_collection

Encoder = Callable[[bytes], bytes]

INVERT = bytes(0xFF - i for i in range(256))
_FLIP_SIGN = bytes(i ^ 0x80 for i in range(256))

MAX_DECIMAL_KEY_DIGITS = 2048
"""Unscaled bytes a decimal clustering key may have (ordering it must expand its digits)."""


def _enc_signed(b: bytes) -> bytes:
    return bytes((b[0] ^ 0x80,)) + b[1:] if b else b""


def _enc_raw(b: bytes) -> bytes:
    return b


def _enc_bytes(b: bytes) -> bytes:
    return b.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _enc_float(b: bytes) -> bytes:
    if not b:
        return b
    if b[0] & 0x80:
        return b.translate(INVERT)
    return bytes((b[0] | 0x80,)) + b[1:]


def _enc_timeuuid(b: bytes) -> bytes:
    if len(b) != 16:
        return b
    return bytes((b[6] & 0x0F, b[7], b[4], b[5], b[0], b[1], b[2], b[3])) + b[8:].translate(
        _FLIP_SIGN
    )


def _enc_uuid(b: bytes) -> bytes:
    if len(b) != 16:
        return b
    version = b[6] >> 4
    if version == 1:
        return b"\x01" + _enc_timeuuid(b)
    return bytes((version,)) + b[:8] + b[8:].translate(_FLIP_SIGN)


def _enc_varint(b: bytes) -> bytes:
    v = int.from_bytes(b, "big", signed=True)
    mag = abs(v).to_bytes((abs(v).bit_length() + 7) // 8, "big")
    if v >= 0:
        return b"\x01" + len(mag).to_bytes(4, "big") + mag
    return b"\x00" + (0xFFFFFFFF - len(mag)).to_bytes(4, "big") + mag.translate(INVERT)


def _enc_decimal(b: bytes) -> bytes:
    """Numeric order, equal values equal keys, without expanding an exponent into digits.

    A value is ``0.d1d2...dn x 10^E`` with d1 != 0 and dn != 0 (trailing zeros stripped, which
    is what makes ``1230`` and ``1.23E+3`` the same key). Key: a sign byte (zero sorts between
    the signs), then the exponent as an offset 8-byte integer, the digits as ASCII and a 0x00
    terminator — all inverted for negative values, so a larger magnitude sorts first.
    """
    if len(b) < 5:
        return b"\x80"  # empty value: sorts with zero
    if len(b) - 4 > MAX_DECIMAL_KEY_DIGITS:
        raise InvalidRequest(
            f"decimal clustering key values are limited to {MAX_DECIMAL_KEY_DIGITS} bytes of "
            "unscaled value by the embedded server"
        )
    scale = int.from_bytes(b[:4], "big", signed=True)
    unscaled = int.from_bytes(b[4:], "big", signed=True)
    if unscaled == 0:
        return b"\x80"
    sign, digits, _ = Decimal(unscaled).as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    exponent = len(digits) - scale  # value = 0.digits x 10^exponent
    body = (exponent + 2**63).to_bytes(8, "big") + text.encode() + b"\x00"
    if sign:
        return b"\x7f" + body.translate(INVERT)
    return b"\x81" + body


def _enc_elements(pairs: bool, item: Callable[[bytes, bytes], bytes]) -> Encoder:
    """Element by element, a shorter collection before its extensions (frozen collections)."""

    def encode(b: bytes) -> bytes:
        if not b:
            return b"\x00"
        try:
            elements = split_collection(b, pairs)
        except MarshalError:
            return b"\x00" + _enc_bytes(b)
        return b"".join(b"\x01" + item(k or b"", v or b"") for k, v in elements) + b"\x00"

    return encode


def _enc_listlike(element: Encoder) -> Encoder:
    return _enc_elements(False, lambda item, _unused: element(item))


def _enc_map(key: Encoder, value: Encoder) -> Encoder:
    return _enc_elements(True, lambda k, v: key(k) + value(v))


def _enc_tuple(elements: list[Encoder]) -> Encoder:
    """Element by element; a null element sorts first, a missing tail before any element."""

    def encode(b: bytes) -> bytes:
        out = []
        pos = 0
        for element in elements:
            if pos >= len(b):
                break
            size = int.from_bytes(b[pos : pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                out.append(b"\x01")
                continue
            out.append(b"\x02" + element(b[pos : pos + size]))
            pos += size
        return b"".join(out) + b"\x00"

    return encode


_ENCODERS: dict[str, Encoder] = {
    "int": _enc_signed,
    "bigint": _enc_signed,
    "smallint": _enc_signed,
    "tinyint": _enc_signed,
    "timestamp": _enc_signed,
    "counter": _enc_signed,
    "time": _enc_signed,
    "date": _enc_raw,
    "boolean": _enc_raw,
    "float": _enc_float,
    "double": _enc_float,
    "timeuuid": _enc_timeuuid,
    "uuid": _enc_uuid,
    "varint": _enc_varint,
    "decimal": _enc_decimal,
}


@cache
def _ascending(t: ast.CqlType) -> Encoder:
    if t.name == "frozen":
        return _ascending(t.params[0])
    if t.name in ("list", "set") and t.params:
        return _enc_listlike(_ascending(t.params[0]))
    if t.name == "map" and len(t.params) == 2:
        return _enc_map(_ascending(t.params[0]), _ascending(t.params[1]))
    if t.name == "tuple":
        return _enc_tuple([_ascending(p) for p in t.params])
    return _ENCODERS.get(t.name, _enc_bytes)


def ordering_encoder(t: ast.CqlType, descending: bool = False) -> Encoder:
    """An encoder from serialized bytes to an ordering key (prefix-free, so keys concatenate)."""
    enc = _ascending(t)
    if not descending:
        return enc

    def inverted(b: bytes) -> bytes:
        return enc(b).translate(INVERT)

    return inverted


def increment(key: bytes) -> bytes | None:
    """The smallest bytes value greater than every key having ``key`` as a prefix.

    None when there is none (``key`` is all 0xFF): the range above is unbounded.
    """
    stripped = key.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))
