"""Response frames of the CQL native protocol (v3/v4) encoded from the engine's results.

The server writes what the ``encode_*`` functions return. The common answers of the write
path (Void, READY) are single ``struct.pack`` calls; result metadata (column specs and type
options) is cached per column list, since a prepared statement answers with the same one
every time.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from cassandra import cqltypes

from chat.embedded.cql.errors import AlreadyExists, CqlError, Unavailable, Unprepared, WriteFailure
from chat.embedded.cql.frames import (
    COMPRESSIONS,
    CONSISTENCY_ONE,
    CQL_VERSION,
    ERR_UNAVAILABLE,
    ERR_WRITE_TIMEOUT,
    HEADER,
    INT,
    MAX_VERSION,
    MF_GLOBAL_TABLES_SPEC,
    MF_HAS_MORE_PAGES,
    MF_NO_METADATA,
    NULL_VALUE,
    OP_AUTH_SUCCESS,
    OP_AUTHENTICATE,
    OP_ERROR,
    OP_EVENT,
    OP_READY,
    OP_RESULT,
    OP_SUPPORTED,
    PASSWORD_AUTHENTICATOR,
    RESULT_PREPARED,
    RESULT_ROWS,
    RESULT_SCHEMA_CHANGE,
    RESULT_SET_KEYSPACE,
    RESULT_VOID,
    SHORT,
)
from chat.embedded.cql.results import ColumnSpec, Prepared, Rows, SchemaChange

_VOID = struct.Struct(">BBhBii")  # header + [int] kind: a whole Void RESULT frame in one pack
_int_pack = INT.pack
_short_pack = SHORT.pack


def _string(value: str) -> bytes:
    raw = value.encode()
    return _short_pack(len(raw)) + raw


def _long_bytes(value: bytes) -> bytes:
    return _int_pack(len(value)) + value


def encode_frame(stream: int, opcode: int, body: bytes, version: int = MAX_VERSION) -> bytes:
    """A response frame: the direction bit set on the version byte, no flags."""
    return HEADER.pack(0x80 | version, 0, stream, opcode, len(body)) + body


def encode_ready(stream: int, version: int = MAX_VERSION) -> bytes:
    return HEADER.pack(0x80 | version, 0, stream, OP_READY, 0)


def encode_void(stream: int, version: int = MAX_VERSION) -> bytes:
    """RESULT Void, the answer to every successful write: one pack, no allocation beyond it."""
    return _VOID.pack(0x80 | version, 0, stream, OP_RESULT, 4, RESULT_VOID)


def encode_authenticate(stream: int, version: int = MAX_VERSION) -> bytes:
    """AUTHENTICATE: the answer to STARTUP when credentials are required."""
    return encode_frame(stream, OP_AUTHENTICATE, _string(PASSWORD_AUTHENTICATOR), version)


def encode_auth_success(stream: int, version: int = MAX_VERSION) -> bytes:
    """AUTH_SUCCESS with a null final token (PLAIN has no last server message)."""
    return encode_frame(stream, OP_AUTH_SUCCESS, NULL_VALUE, version)


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
        extra = SHORT.pack(error.consistency) + _int_pack(error.required) + _int_pack(error.alive)
    elif isinstance(error, WriteFailure):
        # v4 layout: consistency, received, block_for, failures, write type. One replica
        # (this node) was required and it failed.
        extra = (
            SHORT.pack(CONSISTENCY_ONE)
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
    extra = SHORT.pack(consistency) + _int_pack(required) + _int_pack(alive)
    return encode_error(stream, ERR_UNAVAILABLE, message, extra)


def encode_write_timeout(
    stream: int, message: str, consistency: int, received: int, block_for: int, write_type: str
) -> bytes:
    """Write_timeout (0x1100): consistency, received, block_for, write type (e.g. SIMPLE)."""
    extra = (
        SHORT.pack(consistency) + _int_pack(received) + _int_pack(block_for) + _string(write_type)
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
    null = NULL_VALUE
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
