"""The CQL native protocol (v3/v4) frame codec: bytes in, requests out; results in, bytes out.

No I/O happens here, in the manner of ``websockets.frames``: the server feeds what the socket
delivered to a :class:`FrameDecoder`, dispatches the complete :class:`Frame` objects through the
``decode_*`` functions and writes what the ``encode_*`` functions return. That keeps the codec
testable by feeding bytes, and keeps the per-request cost visible: this module sits on the hot
path of every INSERT, so request bodies are read with ``struct.unpack_from`` at offsets into one
``bytes`` object (the only copies made are the bound values the engine stores anyway) and the
common responses (Void, READY) are single ``struct.pack`` calls.

Compression: LZ4 is offered when the ``lz4`` package is importable — exactly when the driver
itself can use it, so a default ``Cluster`` neither logs "no compression in common" nor finds
the server unable to read its frames. Requests are decompressed when flagged; responses are
compressed only above :data:`COMPRESS_MIN_BYTES`, since the per-frame flag lets small answers
(Void, most of the write path) go out as they are. Snappy is not offered; a client that asks
for an unoffered algorithm gets a ProtocolError naming it.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cassandra import cqltypes

from chat.embedded.cql.errors import (
    AlreadyExists,
    CqlError,
    InvalidRequest,
    ProtocolError,
    Unavailable,
    Unprepared,
    WriteFailure,
)
from chat.embedded.cql.results import ColumnSpec, Prepared, Rows, SchemaChange
from chat.embedded.cql.values import UNSET

_lz4: Any
try:
    _lz4 = importlib.import_module("lz4.block")
except ImportError:  # pragma: no cover - lz4 comes with the dev extras and cqlsh
    _lz4 = None

# Opcodes (native protocol spec, section 2.4).
OP_ERROR = 0x00
OP_STARTUP = 0x01
OP_READY = 0x02
OP_AUTHENTICATE = 0x03
OP_OPTIONS = 0x05
OP_SUPPORTED = 0x06
OP_QUERY = 0x07
OP_RESULT = 0x08
OP_PREPARE = 0x09
OP_EXECUTE = 0x0A
OP_REGISTER = 0x0B
OP_EVENT = 0x0C
OP_BATCH = 0x0D
OP_AUTH_CHALLENGE = 0x0E
OP_AUTH_RESPONSE = 0x0F
OP_AUTH_SUCCESS = 0x10

PASSWORD_AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"

# Frame header flags.
FLAG_COMPRESSED = 0x01
FLAG_TRACING = 0x02
FLAG_CUSTOM_PAYLOAD = 0x04
FLAG_WARNING = 0x08

# Query parameter flags (one byte in v3/v4).
QF_VALUES = 0x01
QF_SKIP_METADATA = 0x02
QF_PAGE_SIZE = 0x04
QF_PAGING_STATE = 0x08
QF_SERIAL_CONSISTENCY = 0x10
QF_TIMESTAMP = 0x20
QF_NAMES_FOR_VALUES = 0x40

# RESULT kinds.
RESULT_VOID = 0x0001
RESULT_ROWS = 0x0002
RESULT_SET_KEYSPACE = 0x0003
RESULT_PREPARED = 0x0004
RESULT_SCHEMA_CHANGE = 0x0005

# Rows metadata flags.
MF_GLOBAL_TABLES_SPEC = 0x0001
MF_HAS_MORE_PAGES = 0x0002
MF_NO_METADATA = 0x0004

# Error codes that carry extra fields and have no class in errors.py (never produced by the
# engine today, but encodable so that the server could report them with the right layout).
ERR_UNAVAILABLE = 0x1000
ERR_WRITE_TIMEOUT = 0x1100
ERR_READ_TIMEOUT = 0x1200

CONSISTENCY_ONE = 0x0001

MIN_VERSION = 3
MAX_VERSION = 4
HEADER_SIZE = 9
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest request body accepted, compressed or not (Cassandra 4's default)."""

CQL_VERSION = "3.4.5"
COMPRESSIONS: tuple[str, ...] = ("lz4",) if _lz4 is not None else ()
COMPRESS_MIN_BYTES = 2048

_HEADER = struct.Struct(">BBhBi")
_VOID = struct.Struct(">BBhBii")  # header + [int] kind: a whole Void RESULT frame in one pack
_INT = struct.Struct(">i")
_SHORT = struct.Struct(">H")
_LONG = struct.Struct(">q")
_BYTE = struct.Struct(">B")
_SHORT_SHORT_BYTE = struct.Struct(">HB")  # consistency + flags, the start of query parameters
_NULL_VALUE = b"\xff\xff\xff\xff"

_int_unpack = _INT.unpack_from
_short_unpack = _SHORT.unpack_from
_int_pack = _INT.pack
_short_pack = _SHORT.pack


class Frame(NamedTuple):
    """One complete request frame; ``version`` is without the direction bit."""

    version: int
    flags: int
    stream: int
    opcode: int
    body: bytes


class FrameTooLarge(NamedTuple):
    """A request whose header announced a body over :data:`MAX_FRAME_BYTES`.

    Its body is skipped as it arrives (never buffered), and only once it is all skipped does
    the decoder yield this, so that the client has finished sending it when the server answers
    the stream with an Invalid error (as Cassandra does); the connection stays usable.
    """

    version: int
    stream: int
    length: int


class FrameDecoder:
    """Accumulates received bytes and yields complete frames.

    Bytes that belong to an incomplete frame are kept as a list of chunks and joined only once
    the frame is complete, so a large frame arriving in many reads is not copied repeatedly.
    What it holds is bounded by the largest frame it accepts, ``max_frame`` bytes of body.
    """

    __slots__ = ("_buffered", "_chunks", "_discard", "_needed", "_refused", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._needed = HEADER_SIZE
        self._discard = 0  # body bytes of a refused frame still to skip
        self._refused: FrameTooLarge | None = None  # yielded once its body is skipped
        self.max_frame = max_frame

    @property
    def pending(self) -> bool:
        """Whether part of a frame has arrived and the rest has not (header or body)."""
        return self._buffered > 0 or self._discard > 0

    def feed(self, data: bytes) -> list[Frame | FrameTooLarge]:
        """Add received bytes; return the frames they complete (possibly none).

        Raises ProtocolError for a frame whose header announces a negative body length; the
        connection cannot be resynchronised after that and should be closed.
        """
        frames: list[Frame | FrameTooLarge] = []
        if self._discard:
            if len(data) < self._discard:
                self._discard -= len(data)
                return frames
            data = data[self._discard :]
            self._discard = 0
            assert self._refused is not None
            frames.append(self._refused)
            self._refused = None
        if self._chunks:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered < self._needed:
                return frames
            data = b"".join(self._chunks)
            self._chunks.clear()
        pos = 0
        end = len(data)
        unpack = _HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            version, flags, stream, opcode, length = unpack(data, pos)
            if length < 0:
                raise ProtocolError(f"invalid frame body length {length}")
            if length > self.max_frame:
                refused = FrameTooLarge(version & 0x7F, stream, length)
                skip = pos + HEADER_SIZE + length
                if skip > end:
                    self._discard = skip - end
                    self._refused = refused
                    pos = end
                    break
                frames.append(refused)
                pos = skip
                continue
            body_end = pos + HEADER_SIZE + length
            if body_end > end:
                self._needed = body_end - pos
                break
            frames.append(
                Frame(version & 0x7F, flags, stream, opcode, data[pos + HEADER_SIZE : body_end])
            )
            pos = body_end
        else:
            self._needed = HEADER_SIZE
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks.append(rest)
            self._buffered = len(rest)
        else:
            self._buffered = 0
            self._needed = HEADER_SIZE
        return frames


def too_large_message(length: int, limit: int = MAX_FRAME_BYTES) -> str:
    """ScyllaDB's answer to an oversized request (an Invalid error on that stream)."""
    return f"request size too large (frame size {length + HEADER_SIZE}; allowed {limit})"


def check_version(frame: Frame) -> None:
    """Refuse frames in a protocol version this server does not speak.

    The driver starts at v5 and retries one version lower when the ERROR message contains
    "unsupported protocol version"; any other wording makes it give up.
    """
    if not MIN_VERSION <= frame.version <= MAX_VERSION:
        raise ProtocolError(
            f"Invalid or unsupported protocol version ({frame.version}); "
            f"supported versions are {MIN_VERSION}/v{MIN_VERSION}-{MAX_VERSION}/v{MAX_VERSION}"
        )


def decompress(frame: Frame, limit: int = MAX_FRAME_BYTES) -> Frame:
    """The frame with its LZ4 body inflated (big-endian length prefix, then an LZ4 block).

    The length prefix is what the client claims; the buffer for it is allocated up front, so
    a claim over ``limit`` (or below zero) is refused before anything is allocated.
    """
    if _lz4 is None:
        raise ProtocolError("compressed frame received but no compression was negotiated")
    body = frame.body
    if len(body) < 4:
        raise ProtocolError("compressed frame body shorter than its length prefix")
    (claimed,) = _int_unpack(body, 0)
    if claimed < 0:
        raise ProtocolError(f"LZ4 frame body claims a negative length ({claimed})")
    if claimed > limit:
        # The same answer as for an uncompressed request that size.
        raise InvalidRequest(too_large_message(claimed, limit))
    try:
        inflated: bytes = _lz4.decompress(body[4:], uncompressed_size=claimed)
    except Exception as exc:
        raise ProtocolError(f"cannot decompress LZ4 frame body: {exc}") from exc
    return frame._replace(body=inflated, flags=frame.flags & ~FLAG_COMPRESSED)


def compress(data: bytes) -> bytes:
    """An encoded response frame with its body LZ4-compressed, if it is worth it."""
    if _lz4 is None or len(data) < COMPRESS_MIN_BYTES + HEADER_SIZE:
        return data
    version, flags, stream, opcode, length = _HEADER.unpack_from(data)
    packed: bytes = _lz4.compress(data[HEADER_SIZE:], store_size=False)
    body = _int_pack(length) + packed
    return _HEADER.pack(version, flags | FLAG_COMPRESSED, stream, opcode, len(body)) + body


# --------------------------------------------------------------------------- request bodies


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


# --------------------------------------------------------------------------- response encoding


def _string(value: str) -> bytes:
    raw = value.encode()
    return _short_pack(len(raw)) + raw


def _long_bytes(value: bytes) -> bytes:
    return _int_pack(len(value)) + value


def encode_frame(stream: int, opcode: int, body: bytes, version: int = MAX_VERSION) -> bytes:
    """A response frame: the direction bit set on the version byte, no flags."""
    return _HEADER.pack(0x80 | version, 0, stream, opcode, len(body)) + body


def encode_ready(stream: int, version: int = MAX_VERSION) -> bytes:
    return _HEADER.pack(0x80 | version, 0, stream, OP_READY, 0)


def encode_void(stream: int, version: int = MAX_VERSION) -> bytes:
    """RESULT Void, the answer to every successful write: one pack, no allocation beyond it."""
    return _VOID.pack(0x80 | version, 0, stream, OP_RESULT, 4, RESULT_VOID)


def encode_authenticate(stream: int, version: int = MAX_VERSION) -> bytes:
    """AUTHENTICATE: the answer to STARTUP when credentials are required."""
    return encode_frame(stream, OP_AUTHENTICATE, _string(PASSWORD_AUTHENTICATOR), version)


def encode_auth_success(stream: int, version: int = MAX_VERSION) -> bytes:
    """AUTH_SUCCESS with a null final token (PLAIN has no last server message)."""
    return encode_frame(stream, OP_AUTH_SUCCESS, _NULL_VALUE, version)


def encode_supported(stream: int, version: int = MAX_VERSION) -> bytes:
    """SUPPORTED: CQL_VERSION and an empty COMPRESSION list, never a ``SCYLLA_*`` key.

    Any ``SCYLLA_*`` option switches the driver into shard-aware Scylla mode, which this
    single-shard server is not.
    """
    options = {
        "CQL_VERSION": [CQL_VERSION],
        "COMPRESSION": list(COMPRESSIONS),
        "PROTOCOL_VERSIONS": ["3/v3", "4/v4"],
    }
    parts = [_short_pack(len(options))]
    for key, values in options.items():
        parts.append(_string(key))
        parts.append(_short_pack(len(values)))
        parts.extend(_string(v) for v in values)
    return encode_frame(stream, OP_SUPPORTED, b"".join(parts), version)


def encode_error(
    stream: int, code: int, message: str, extra: bytes = b"", version: int = MAX_VERSION
) -> bytes:
    """An ERROR frame with a raw code; ``extra`` is the code-specific tail, already encoded."""
    return encode_frame(stream, OP_ERROR, _int_pack(code) + _string(message) + extra, version)


def encode_cql_error(stream: int, error: CqlError, version: int = MAX_VERSION) -> bytes:
    """An ERROR frame for an engine error, with the per-code fields the spec requires."""
    extra = b""
    if isinstance(error, Unprepared):
        extra = _short_pack(len(error.statement_id)) + error.statement_id
    elif isinstance(error, AlreadyExists):
        extra = _string(error.keyspace) + _string(error.table)
    elif isinstance(error, Unavailable):
        extra = _SHORT.pack(error.consistency) + _int_pack(error.required) + _int_pack(error.alive)
    elif isinstance(error, WriteFailure):
        # v4 layout: consistency, received, block_for, failures, write type. One replica
        # (this node) was required and it failed.
        extra = (
            _SHORT.pack(CONSISTENCY_ONE)
            + _int_pack(0)
            + _int_pack(1)
            + _int_pack(1)
            + _string(error.write_type)
        )
    return encode_error(stream, error.code, error.message, extra, version)


def encode_unavailable(
    stream: int, message: str, consistency: int, required: int, alive: int
) -> bytes:
    """Unavailable (0x1000): consistency, required replicas, alive replicas."""
    extra = _SHORT.pack(consistency) + _int_pack(required) + _int_pack(alive)
    return encode_error(stream, ERR_UNAVAILABLE, message, extra)


def encode_write_timeout(
    stream: int, message: str, consistency: int, received: int, block_for: int, write_type: str
) -> bytes:
    """Write_timeout (0x1100): consistency, received, block_for, write type (e.g. SIMPLE)."""
    extra = (
        _SHORT.pack(consistency) + _int_pack(received) + _int_pack(block_for) + _string(write_type)
    )
    return encode_error(stream, ERR_WRITE_TIMEOUT, message, extra)


# Types as [option]: the option id per cqltypes ``typename``.
_SIMPLE_TYPE_IDS: dict[str, int] = {
    "ascii": 0x0001,
    "bigint": 0x0002,
    "blob": 0x0003,
    "boolean": 0x0004,
    "counter": 0x0005,
    "decimal": 0x0006,
    "double": 0x0007,
    "float": 0x0008,
    "int": 0x0009,
    "text": 0x000A,
    "timestamp": 0x000B,
    "uuid": 0x000C,
    "varchar": 0x000D,
    "varint": 0x000E,
    "timeuuid": 0x000F,
    "inet": 0x0010,
    "date": 0x0011,
    "time": 0x0012,
    "smallint": 0x0013,
    "tinyint": 0x0014,
    "duration": 0x0015,
}
_type_option_cache: dict[Any, bytes] = {}


def _is_udt(cql_type: Any) -> bool:
    return isinstance(cql_type, type) and issubclass(cql_type, cqltypes.UserType)


def encode_type(cql_type: Any) -> bytes:
    """A ``cassandra.cqltypes`` class as a protocol [option] (cached per class).

    ``frozen<...>`` and clustering ``ReversedType`` wrappers do not exist on the wire and are
    unwrapped; a type with no option id goes out as a custom type with its Java class name.
    """
    cached = _type_option_cache.get(cql_type)
    if cached is not None:
        return cached
    typename: str = cql_type.typename
    subtypes: Sequence[Any] = getattr(cql_type, "subtypes", ())
    if typename in ("frozen", "org.apache.cassandra.db.marshal.ReversedType"):
        encoded = encode_type(subtypes[0])
    elif typename in _SIMPLE_TYPE_IDS:
        encoded = _short_pack(_SIMPLE_TYPE_IDS[typename])
    elif typename == "list":
        encoded = _short_pack(0x0020) + encode_type(subtypes[0])
    elif typename == "set":
        encoded = _short_pack(0x0022) + encode_type(subtypes[0])
    elif typename == "map":
        encoded = _short_pack(0x0021) + encode_type(subtypes[0]) + encode_type(subtypes[1])
    elif typename == "tuple":
        encoded = _short_pack(0x0031) + _short_pack(len(subtypes))
        encoded += b"".join(encode_type(t) for t in subtypes)
    elif _is_udt(cql_type):
        fields = zip(cql_type.fieldnames, subtypes, strict=True)
        encoded = (
            _short_pack(0x0030)
            + _string(cql_type.keyspace)
            + _string(cql_type.typename)
            + _short_pack(len(subtypes))
            + b"".join(_string(name) + encode_type(t) for name, t in fields)
        )
    else:
        encoded = _short_pack(0x0000) + _string(cql_type.cass_parameterized_type(True))
    _type_option_cache[cql_type] = encoded
    return encoded


def _column_specs(columns: Sequence[ColumnSpec]) -> tuple[int, bytes]:
    """Column specs with the global_tables_spec flag when every column shares one table."""
    if not columns:
        return 0, b""
    first = columns[0]
    if all(c.keyspace == first.keyspace and c.table == first.table for c in columns):
        head = _string(first.keyspace) + _string(first.table)
        return MF_GLOBAL_TABLES_SPEC, head + b"".join(
            _string(c.name) + encode_type(c.cql_type) for c in columns
        )
    return 0, b"".join(
        _string(c.keyspace) + _string(c.table) + _string(c.name) + encode_type(c.cql_type)
        for c in columns
    )


_metadata_cache: dict[tuple[ColumnSpec, ...], tuple[int, bytes]] = {}
_METADATA_CACHE_LIMIT = 4096


def _cached_column_specs(columns: Sequence[ColumnSpec]) -> tuple[int, bytes]:
    key = tuple(columns)
    cached = _metadata_cache.get(key)
    if cached is None:
        if len(_metadata_cache) >= _METADATA_CACHE_LIMIT:
            _metadata_cache.clear()
        cached = _metadata_cache[key] = _column_specs(columns)
    return cached


def _rows_metadata(
    columns: Sequence[ColumnSpec], paging_state: bytes | None, skip_metadata: bool
) -> bytes:
    flags = 0
    tail = b""
    if skip_metadata:
        flags |= MF_NO_METADATA
    else:
        flags, tail = _cached_column_specs(columns)
    head = b""
    if paging_state is not None:
        flags |= MF_HAS_MORE_PAGES
        head = _long_bytes(paging_state)
    return _int_pack(flags) + _int_pack(len(columns)) + head + tail


def encode_rows(
    stream: int, rows: Rows, skip_metadata: bool = False, version: int = MAX_VERSION
) -> bytes:
    """RESULT Rows; with ``skip_metadata`` the column specs are left out (NO_METADATA)."""
    parts = [
        _int_pack(RESULT_ROWS),
        _rows_metadata(rows.columns, rows.paging_state, skip_metadata),
        _int_pack(len(rows.rows)),
    ]
    append = parts.append
    null = _NULL_VALUE
    for row in rows.rows:
        for value in row:
            if value is None:
                append(null)
            else:
                append(_int_pack(len(value)))
                append(value)
    return encode_frame(stream, OP_RESULT, b"".join(parts), version)


def encode_set_keyspace(stream: int, keyspace: str, version: int = MAX_VERSION) -> bytes:
    return encode_frame(
        stream, OP_RESULT, _int_pack(RESULT_SET_KEYSPACE) + _string(keyspace), version
    )


def encode_prepared(stream: int, prepared: Prepared, version: int = MAX_VERSION) -> bytes:
    """RESULT Prepared: id, bind metadata (with partition-key indexes from v4), result metadata.

    The pk indexes are what lets a token-aware driver compute the token of a bound statement
    and route it; without them it falls back to round-robin.
    """
    bind = prepared.bind_columns
    bind_flags, bind_specs = _column_specs(bind)
    parts = [
        _int_pack(RESULT_PREPARED),
        _short_pack(len(prepared.statement_id)),
        prepared.statement_id,
        _int_pack(bind_flags),
        _int_pack(len(bind)),
    ]
    if version >= 4:
        parts.append(_int_pack(len(prepared.pk_indexes)))
        parts.extend(_short_pack(i) for i in prepared.pk_indexes)
    parts.append(bind_specs)
    if prepared.result_columns is None:
        parts.append(_int_pack(MF_NO_METADATA) + _int_pack(0))
    else:
        parts.append(_rows_metadata(prepared.result_columns, None, False))
    return encode_frame(stream, OP_RESULT, b"".join(parts), version)


def _schema_change_body(change: SchemaChange) -> bytes:
    body = _string(change.change) + _string(change.target) + _string(change.keyspace)
    if change.target != "KEYSPACE":
        body += _string(change.name)
    return body


def encode_schema_change(stream: int, change: SchemaChange, version: int = MAX_VERSION) -> bytes:
    body = _int_pack(RESULT_SCHEMA_CHANGE) + _schema_change_body(change)
    return encode_frame(stream, OP_RESULT, body, version)


def encode_schema_change_event(change: SchemaChange, version: int = MAX_VERSION) -> bytes:
    """EVENT SCHEMA_CHANGE, pushed on stream -1 to connections that REGISTERed for it."""
    body = _string("SCHEMA_CHANGE") + _schema_change_body(change)
    return encode_frame(-1, OP_EVENT, body, version)
