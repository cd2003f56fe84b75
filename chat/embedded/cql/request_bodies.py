"""Request bodies of the CQL native protocol (v3/v4) decoded from complete frames.

The server hands each :class:`~frames.Frame` to the ``decode_*`` function of its opcode. These
sit on the hot path of every INSERT: bodies are read with ``struct.unpack_from`` at offsets
into one ``bytes`` object, and the only copies made are the bound values the engine stores
anyway. A body that ends early or holds an impossible length is a ProtocolError naming what
was being read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from chat.embedded.cql.errors import ProtocolError
from chat.embedded.cql.frames import (
    FLAG_CUSTOM_PAYLOAD,
    INT,
    QF_NAMES_FOR_VALUES,
    QF_PAGE_SIZE,
    QF_PAGING_STATE,
    QF_SERIAL_CONSISTENCY,
    QF_SKIP_METADATA,
    QF_TIMESTAMP,
    QF_VALUES,
    SHORT,
    Frame,
)
from chat.embedded.cql.values import UNSET

_LONG = struct.Struct(">q")
_SHORT_SHORT_BYTE = struct.Struct(">HB")  # consistency + flags, the start of query parameters
_int_unpack = INT.unpack_from
_short_unpack = SHORT.unpack_from


@dataclass(slots=True)
class QueryParameters:
    """The parameters shared by QUERY, EXECUTE and (partly) BATCH.

    ``names`` is set only when the client sent named values; the server maps them onto
    positions with the prepared statement's bind columns.
    """

    consistency: int
    values: list[bytes | None]
    names: list[str] | None = None
    skip_metadata: bool = False
    page_size: int | None = None
    paging_state: bytes | None = None
    serial_consistency: int | None = None
    timestamp: int | None = None


@dataclass(slots=True)
class QueryRequest:
    query: str
    params: QueryParameters


@dataclass(slots=True)
class ExecuteRequest:
    statement_id: bytes
    params: QueryParameters


@dataclass(slots=True)
class BatchRequest:
    """``items`` hold either a query string or a prepared statement id, with positional values."""

    batch_type: int
    items: list[tuple[str | bytes, list[bytes | None]]]
    consistency: int
    serial_consistency: int | None
    timestamp: int | None
    value_bytes: int = 0  # bound values with their length prefixes (the batch-size check)


def _truncated(what: str) -> ProtocolError:
    return ProtocolError(f"truncated {what} message body")


def _read_string(body: bytes, pos: int) -> tuple[str, int]:
    (n,) = _short_unpack(body, pos)
    pos += 2
    end = pos + n
    if end > len(body):
        raise struct.error("string past end of body")
    return body[pos:end].decode(), end


def _read_long_string(body: bytes, pos: int) -> tuple[str, int]:
    (n,) = _int_unpack(body, pos)
    pos += 4
    end = pos + n
    if n < 0 or end > len(body):
        raise struct.error("long string past end of body")
    return body[pos:end].decode(), end


def _read_short_bytes(body: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = _short_unpack(body, pos)
    pos += 2
    end = pos + n
    if end > len(body):
        raise struct.error("short bytes past end of body")
    return body[pos:end], end


def _negative_value(n: int) -> bytes | None:
    """A [value] with a negative length: null (-1), unset (-2, protocol v4) or malformed."""
    if n == -1:
        return None
    if n == -2:
        return UNSET  # type: ignore[no-any-return]
    raise ProtocolError(f"invalid value length {n} (only -1, null, and -2, unset, are defined)")


def _read_values(body: bytes, pos: int, count: int) -> tuple[list[bytes | None], int]:
    """Read ``count`` [value]s: null (-1) becomes None, unset (-2) :data:`UNSET`."""
    values: list[bytes | None] = []
    append = values.append
    unpack = _int_unpack
    for _ in range(count):
        (n,) = unpack(body, pos)
        pos += 4
        if n < 0:
            append(_negative_value(n))
        else:
            end = pos + n
            append(body[pos:end])
            pos = end
    if pos > len(body):
        raise struct.error("value past end of body")
    return values, pos


def _read_query_parameters(body: bytes, pos: int) -> QueryParameters:
    consistency, flags = _SHORT_SHORT_BYTE.unpack_from(body, pos)
    pos += 3
    values: list[bytes | None]
    names: list[str] | None = None
    if flags & QF_VALUES:
        (count,) = _short_unpack(body, pos)
        pos += 2
        if flags & QF_NAMES_FOR_VALUES:
            names = []
            values = []
            for _ in range(count):
                name, pos = _read_string(body, pos)
                names.append(name)
                one, pos = _read_values(body, pos, 1)
                values.append(one[0])
        else:
            values, pos = _read_values(body, pos, count)
    else:
        values = []
    params = QueryParameters(consistency, values, names, bool(flags & QF_SKIP_METADATA))
    if flags & QF_PAGE_SIZE:
        (params.page_size,) = _int_unpack(body, pos)
        pos += 4
    if flags & QF_PAGING_STATE:
        (n,) = _int_unpack(body, pos)
        pos += 4
        if n >= 0:
            params.paging_state = body[pos : pos + n]
            pos += n
    if flags & QF_SERIAL_CONSISTENCY:
        (params.serial_consistency,) = _short_unpack(body, pos)
        pos += 2
    if flags & QF_TIMESTAMP:
        (params.timestamp,) = _LONG.unpack_from(body, pos)
        pos += 8
    if flags & 0x80:
        raise ProtocolError("the keyspace query flag (0x80) exists only in protocol v5")
    if pos > len(body):
        raise struct.error("query parameters past end of body")
    return params


def _skip_custom_payload(frame: Frame, pos: int) -> int:
    """Requests may start with a custom payload ([bytes map]); we accept and ignore it."""
    if not frame.flags & FLAG_CUSTOM_PAYLOAD:
        return pos
    (count,) = _short_unpack(frame.body, pos)
    pos += 2
    for _ in range(count):
        _, pos = _read_string(frame.body, pos)
        (n,) = _int_unpack(frame.body, pos)
        pos += 4 + max(n, 0)
    return pos


def decode_startup(frame: Frame) -> dict[str, str]:
    """STARTUP body: a [string map] (CQL_VERSION, COMPRESSION, DRIVER_NAME, ...)."""
    try:
        body = frame.body
        (count,) = _short_unpack(body, 0)
        pos = 2
        options: dict[str, str] = {}
        for _ in range(count):
            key, pos = _read_string(body, pos)
            value, pos = _read_string(body, pos)
            options[key] = value
    except (struct.error, UnicodeDecodeError) as exc:
        raise _truncated("STARTUP") from exc
    return options


def decode_auth_response(frame: Frame) -> bytes:
    """AUTH_RESPONSE body: the SASL token as [bytes] (null reads as empty)."""
    body = frame.body
    try:
        (n,) = _int_unpack(body, 0)
    except struct.error as exc:
        raise _truncated("AUTH_RESPONSE") from exc
    if n < 0:
        return b""
    if 4 + n > len(body):
        raise _truncated("AUTH_RESPONSE")
    return body[4 : 4 + n]


def decode_register(frame: Frame) -> list[str]:
    """REGISTER body: a [string list] of event types."""
    try:
        body = frame.body
        (count,) = _short_unpack(body, 0)
        pos = 2
        events: list[str] = []
        for _ in range(count):
            event, pos = _read_string(body, pos)
            events.append(event)
    except (struct.error, UnicodeDecodeError) as exc:
        raise _truncated("REGISTER") from exc
    return events


def decode_query(frame: Frame) -> QueryRequest:
    try:
        pos = _skip_custom_payload(frame, 0)
        query, pos = _read_long_string(frame.body, pos)
        return QueryRequest(query, _read_query_parameters(frame.body, pos))
    except (struct.error, UnicodeDecodeError) as exc:
        raise _truncated("QUERY") from exc


def decode_prepare(frame: Frame) -> str:
    """PREPARE body in v3/v4: just the [long string] query (flags arrived in v5)."""
    try:
        pos = _skip_custom_payload(frame, 0)
        query, _ = _read_long_string(frame.body, pos)
    except (struct.error, UnicodeDecodeError) as exc:
        raise _truncated("PREPARE") from exc
    return query


def decode_execute(frame: Frame) -> ExecuteRequest:
    """EXECUTE body: [short bytes] statement id, then query parameters. The hot path."""
    body = frame.body
    try:
        pos = _skip_custom_payload(frame, 0) if frame.flags & FLAG_CUSTOM_PAYLOAD else 0
        (n,) = _short_unpack(body, pos)
        pos += 2
        statement_id = body[pos : pos + n]
        return ExecuteRequest(statement_id, _read_query_parameters(body, pos + n))
    except (struct.error, UnicodeDecodeError) as exc:
        raise _truncated("EXECUTE") from exc


def decode_batch(frame: Frame) -> BatchRequest:
    """BATCH body: type, then per item a query string or prepared id with positional values."""
    body = frame.body
    try:
        pos = _skip_custom_payload(frame, 0) if frame.flags & FLAG_CUSTOM_PAYLOAD else 0
        batch_type, count = body[pos], _short_unpack(body, pos + 1)[0]
        pos += 3
        value_bytes = 0
        items: list[tuple[str | bytes, list[bytes | None]]] = []
        append = items.append
        short_unpack = _short_unpack
        int_unpack = _int_unpack
        for _ in range(count):
            kind = body[pos]
            query: str | bytes
            if kind == 1:
                (n,) = short_unpack(body, pos + 1)
                pos += 3
                query = body[pos : pos + n]
                pos += n
            elif kind == 0:
                query, pos = _read_long_string(body, pos + 1)
            else:
                raise ProtocolError(f"invalid BATCH item kind {kind} (expected 0 or 1)")
            (nvalues,) = short_unpack(body, pos)
            pos += 2
            # _read_values, inlined: this loop runs once per bound value of every batched row.
            values: list[bytes | None] = []
            add = values.append
            start = pos
            for _ in range(nvalues):
                (size,) = int_unpack(body, pos)
                pos += 4
                if size < 0:
                    add(_negative_value(size))
                else:
                    end = pos + size
                    add(body[pos:end])
                    pos = end
            value_bytes += pos - start
            append((query, values))
        if pos > len(body):
            raise struct.error("value past end of body")
        consistency, flags = _SHORT_SHORT_BYTE.unpack_from(body, pos)
        pos += 3
        serial: int | None = None
        timestamp: int | None = None
        if flags & QF_SERIAL_CONSISTENCY:
            (serial,) = _short_unpack(body, pos)
            pos += 2
        if flags & QF_TIMESTAMP:
            (timestamp,) = _LONG.unpack_from(body, pos)
        if flags & QF_NAMES_FOR_VALUES:
            raise ProtocolError("named values in BATCH are not supported by the protocol")
        if flags & 0x80:
            raise ProtocolError("the keyspace batch flag (0x80) exists only in protocol v5")
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise _truncated("BATCH") from exc
    if batch_type not in (0, 1, 2):
        raise ProtocolError(f"invalid BATCH type {batch_type} (expected 0, 1 or 2)")
    return BatchRequest(batch_type, items, consistency, serial, timestamp, value_bytes)
