"""Malformed input never hangs the server: random and truncated bytes, over a real socket.

Bound values of every supported type (keys and regular columns, collections nested in frozen
ones, tuples) are sent as random bytes and as valid serializations cut short; whole frames
with random headers and bodies are sent too. Every request must be answered at once, on its
stream — a result or ScyllaDB's error — and the server must still serve a well-formed query
afterwards.
"""

from __future__ import annotations

import decimal
import itertools
import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.cql.schema import parse_type_text
from chat.embedded.cql.values import canonical, driver_type
from tests.cql import wire

ANSWER_WITHIN = 2.0  # seconds: bounded work means an answer well within this
INVALID = 0x2200
PROTOCOL = 0x000A

# Column type -> a valid value, serialized by the driver (to cut short).
TYPES: dict[str, Any] = {
    "int": 7,
    "bigint": 2**40,
    "smallint": 3,
    "tinyint": 1,
    "boolean": True,
    "float": 1.5,
    "double": 2.5,
    "decimal": decimal.Decimal("123.4500"),
    "varint": 10**30,
    "text": "héllo",
    "ascii": "hello",
    "timestamp": 1_700_000_000_000,
    "date": 2**31 + 19_000,
    "time": 3_600_000_000_000,
    "uuid": uuid.UUID("12345678-1234-4234-8234-123456789012"),
    "timeuuid": uuid.UUID("e7d6b2a0-1dd1-11b2-8080-808080808080"),
    "blob": b"\x00\x01",
    "inet": "10.0.0.1",
    "list<int>": [1, 2, 3],
    "set<text>": {"a", "b"},
    "map<text, int>": {"a": 1},
    "frozen<list<frozen<set<int>>>>": [{1, 2}, {3}],
    "frozen<map<int, frozen<list<text>>>>": {1: ["x", "y"]},
    "tuple<int, text>": (1, "x"),
}
COLUMNS = {f"v{i}": t for i, t in enumerate(TYPES)}


def serialized(cql_type: str, value: Any) -> bytes:
    """``value`` as the driver serializes it for ``cql_type``."""
    driver = driver_type(canonical(parse_type_text(cql_type)))
    if cql_type == "date":
        return struct.pack(">I", value)
    out: bytes = driver.serialize(value, 4)
    return out


@pytest.fixture(scope="module")
def fuzz(cql_server: EmbeddedCqlServer) -> Iterator[tuple[wire.WireClient, dict[str, bytes]]]:
    """A started raw connection and the statement ids, one per column under test."""
    with wire.WireClient(cql_server.host, cql_server.port, timeout=ANSWER_WITHIN) as client:
        assert client.startup().opcode == wire.OP_READY
        ddl = [
            "CREATE KEYSPACE fuzz WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            "CREATE TABLE fuzz.v (k int, c int, "
            + ", ".join(f"{name} {t}" for name, t in COLUMNS.items())
            + ", PRIMARY KEY (k, c))",
            "CREATE TABLE fuzz.keys (p text, c1 frozen<set<int>>, c2 decimal, c3 timeuuid, "
            "v int, PRIMARY KEY (p, c1, c2, c3))",
        ]
        for statement in ddl:
            assert client.request(wire.OP_QUERY, wire.query_body(statement)).opcode == 0x08
        ids = {
            name: client.prepare(f"INSERT INTO fuzz.v (k, c, {name}) VALUES (1, 1, ?)")
            for name in COLUMNS
        }
        ids["keys"] = client.prepare(
            "INSERT INTO fuzz.keys (p, c1, c2, c3, v) VALUES (?, ?, ?, ?, 1)"
        )
        ids["select"] = client.prepare("SELECT * FROM fuzz.v WHERE k = ? AND c IN ?")
        for name in COLUMNS:
            ids[f"batch {name}"] = client.prepare(
                f"INSERT INTO fuzz.v (k, c, {name}) VALUES (?, ?, ?)"
            )
        try:
            yield client, ids
        finally:
            client.request(wire.OP_QUERY, wire.query_body("DROP KEYSPACE fuzz"))


def answered(client: wire.WireClient, stream: int) -> wire.Reply:
    reply = answered_or_closed(client, stream)
    assert reply is not None, "the server closed the connection"
    return reply


def answered_or_closed(client: wire.WireClient, stream: int) -> wire.Reply | None:
    """The answer to ``stream``, promptly; None if the server closed the connection instead."""
    started = time.monotonic()
    reply = client.read_or_closed()
    assert time.monotonic() - started < ANSWER_WITHIN
    assert reply is None or reply.stream == stream
    return reply


def assert_served(server: EmbeddedCqlServer) -> None:
    with wire.WireClient(server.host, server.port, timeout=ANSWER_WITHIN) as client:
        assert client.startup().opcode == wire.OP_READY
        reply = client.request(wire.OP_QUERY, wire.query_body("SELECT key FROM system.local"))
        assert reply.opcode == wire.OP_RESULT


def _truncations(name: str) -> st.SearchStrategy[bytes]:
    full = serialized(COLUMNS[name], TYPES[COLUMNS[name]])
    return st.integers(0, len(full)).map(lambda n: full[:n])


values = st.one_of(
    st.binary(max_size=48),
    st.sampled_from(list(COLUMNS)).flatmap(_truncations),
    st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x02\x00\x00"]),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(column=st.sampled_from(list(COLUMNS)), raw=values, stream=st.integers(1, 3000))
def test_random_and_truncated_bound_values_of_every_type_are_answered_at_once(
    fuzz: tuple[wire.WireClient, dict[str, bytes]], column: str, raw: bytes, stream: int
) -> None:
    client, ids = fuzz
    client.send(wire.frame(wire.OP_EXECUTE, wire.execute_body(ids[column], [raw]), stream))
    reply = answered(client, stream)
    if reply.opcode == wire.OP_ERROR:
        assert reply.error_code == INVALID, reply.error_message
        assert "marshaling error" in reply.error_message or "null" in reply.error_message


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raws=st.lists(values, min_size=6, max_size=6), stream=st.integers(1, 3000))
def test_random_key_values_are_answered_at_once(
    fuzz: tuple[wire.WireClient, dict[str, bytes]], raws: list[bytes], stream: int
) -> None:
    client, ids = fuzz
    client.send(wire.frame(wire.OP_EXECUTE, wire.execute_body(ids["keys"], raws[:4]), stream))
    reply = answered(client, stream)
    assert reply.opcode in (wire.OP_RESULT, wire.OP_ERROR)
    if reply.opcode == wire.OP_ERROR:
        assert reply.error_code == INVALID, reply.error_message
    client.send(wire.frame(wire.OP_EXECUTE, wire.execute_body(ids["select"], raws[4:]), stream))
    reply = answered(client, stream)
    if reply.opcode == wire.OP_ERROR:
        assert reply.error_code == INVALID, reply.error_message


BATCH_PARTITIONS = itertools.count(1000)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    column=st.sampled_from(list(COLUMNS)),
    raw=values,
    position=st.integers(0, 5),
    stream=st.integers(1, 3000),
)
def test_a_random_value_in_a_batch_is_answered_at_once_and_the_batch_is_all_or_nothing(
    fuzz: tuple[wire.WireClient, dict[str, bytes]],
    column: str,
    raw: bytes,
    position: int,
    stream: int,
) -> None:
    client, ids = fuzz
    k = next(BATCH_PARTITIONS)
    valid = serialized(COLUMNS[column], TYPES[COLUMNS[column]])
    rows = [
        [struct.pack(">i", k), struct.pack(">i", c), raw if c == position else valid]
        for c in range(6)
    ]
    client.send(wire.frame(wire.OP_BATCH, wire.batch_body(ids[f"batch {column}"], rows), stream))
    reply = answered(client, stream)
    if reply.opcode == wire.OP_ERROR:
        assert reply.error_code == INVALID, reply.error_message
        assert "marshaling error" in reply.error_message
    count = client.request(
        wire.OP_QUERY, wire.query_body(f"SELECT COUNT(*) FROM fuzz.v WHERE k = {k}")
    )
    assert wire.single_bigint(count) == (0 if reply.opcode == wire.OP_ERROR else 6)


def test_a_list_claiming_more_elements_than_its_bytes_is_refused_at_once(
    fuzz: tuple[wire.WireClient, dict[str, bytes]], cql_server: EmbeddedCqlServer
) -> None:
    client, ids = fuzz
    list_column = next(name for name, t in COLUMNS.items() if t == "list<int>")
    for raw, detail in (
        (b"\xff\xff\xff\xff", "read_simple - not enough bytes (expected 4, got 0)"),
        (b"\x7f\xff\xff\xff", "read_simple - not enough bytes (expected 4, got 0)"),
        (b"", "read_simple - not enough bytes (expected 4, got 0)"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x08\x00", "read_simple_bytes - not enough bytes"),
    ):
        reply = client.execute(ids[list_column], [raw], stream=9)
        assert reply.error_code == INVALID
        assert reply.error_message.startswith(
            f"Exception while binding column {list_column}: marshaling error: {detail}"
        )
    assert_served(cql_server)


frames = st.builds(
    lambda version, flags, stream, opcode, body: (
        wire.HEADER.pack(version, flags, stream, opcode, len(body)) + body
    ),
    version=st.sampled_from([3, 4, 4, 4, 5, 0x84, 1]),
    flags=st.integers(0, 255),
    stream=st.integers(0, 32767),
    opcode=st.sampled_from([0x01, 0x05, 0x07, 0x09, 0x0A, 0x0B, 0x0D, 0x0F, 0x02, 0x99]),
    body=st.binary(max_size=200),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=frames)
def test_whole_random_frames_are_answered_on_their_stream_or_the_connection_is_closed(
    cql_server: EmbeddedCqlServer, data: bytes
) -> None:
    stream = struct.unpack_from(">h", data, 2)[0]
    with wire.WireClient(cql_server.host, cql_server.port, timeout=ANSWER_WITHIN) as client:
        assert client.startup().opcode == wire.OP_READY
        client.send(data)
        reply = answered_or_closed(client, stream)
        if reply is None:  # a header it cannot resynchronise after (negative length)
            assert_served(cql_server)
            return
        if reply.opcode == wire.OP_ERROR:
            assert reply.error_code in (INVALID, PROTOCOL, 0x2000, 0x0100), reply
        assert client.request(wire.OP_OPTIONS, b"", stream=1).opcode == wire.OP_SUPPORTED


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=frames, cut=st.integers(1, 64))
def test_frames_cut_short_by_a_closing_client_leave_the_server_serving(
    cql_server: EmbeddedCqlServer, data: bytes, cut: int
) -> None:
    with wire.WireClient(cql_server.host, cql_server.port, timeout=ANSWER_WITHIN) as client:
        assert client.startup().opcode == wire.OP_READY
        client.send(data[: max(len(data) - cut, 1)])
    assert_served(cql_server)
