"""Request bodies decoded from frames the driver's own encoders wrote. No sockets."""

from __future__ import annotations

import struct

import pytest
from cassandra import ConsistencyLevel
from cassandra.protocol import (
    BatchMessage,
    ExecuteMessage,
    PrepareMessage,
    QueryMessage,
    RegisterMessage,
    StartupMessage,
)
from cassandra.query import BatchType

from chat.embedded.cql import frames, request_bodies
from chat.embedded.cql.errors import ProtocolError
from chat.embedded.cql.values import UNSET
from tests.cql.driver_codec import driver_request, single_frame


def test_startup_options_are_decoded() -> None:
    message = StartupMessage(cqlversion="3.0.0", options={"DRIVER_NAME": "x"})
    frame = single_frame(driver_request(message))
    assert frame.opcode == frames.OP_STARTUP
    assert request_bodies.decode_startup(frame) == {"CQL_VERSION": "3.0.0", "DRIVER_NAME": "x"}


def test_register_event_types_are_decoded() -> None:
    message = RegisterMessage(["SCHEMA_CHANGE", "STATUS_CHANGE"])
    assert request_bodies.decode_register(single_frame(driver_request(message))) == [
        "SCHEMA_CHANGE",
        "STATUS_CHANGE",
    ]


def test_query_with_every_parameter_is_decoded() -> None:
    message = QueryMessage(
        "SELECT * FROM ks.t",
        ConsistencyLevel.QUORUM,
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        fetch_size=100,
        paging_state=b"\x01\x02",
        timestamp=1_700_000_000_000_000,
        query_params=[b"abc", None],
    )
    request = request_bodies.decode_query(single_frame(driver_request(message)))
    assert request.query == "SELECT * FROM ks.t"
    params = request.params
    assert params.consistency == ConsistencyLevel.QUORUM
    assert params.values == [b"abc", None]
    assert params.page_size == 100
    assert params.paging_state == b"\x01\x02"
    assert params.serial_consistency == ConsistencyLevel.LOCAL_SERIAL
    assert params.timestamp == 1_700_000_000_000_000
    assert params.names is None


def test_execute_with_skip_metadata_and_values_is_decoded() -> None:
    message = ExecuteMessage(
        b"\xaa" * 16,
        [b"\x00\x00\x00\x01", b""],
        ConsistencyLevel.ONE,
        fetch_size=5000,
        timestamp=42,
        skip_meta=True,
    )
    body = driver_request(message)
    # The driver only sets SKIP_METADATA with Scylla's metadata-id extension; set it by hand.
    flags_at = 9 + 2 + 16 + 2
    body = (
        body[:flags_at] + bytes([body[flags_at] | frames.QF_SKIP_METADATA]) + body[flags_at + 1 :]
    )
    request = request_bodies.decode_execute(single_frame(body))
    assert request.statement_id == b"\xaa" * 16
    assert request.params.values == [b"\x00\x00\x00\x01", b""]
    assert request.params.skip_metadata
    assert request.params.page_size == 5000
    assert request.params.timestamp == 42


def test_named_values_are_decoded_with_their_names() -> None:
    body = (
        struct.pack(">HB", 1, frames.QF_VALUES | frames.QF_NAMES_FOR_VALUES)
        + struct.pack(">H", 2)
        + struct.pack(">H", 1)
        + b"a"
        + struct.pack(">i", 1)
        + b"x"
        + struct.pack(">H", 1)
        + b"b"
        + struct.pack(">i", -1)
    )
    frame = frames.Frame(4, 0, 1, frames.OP_EXECUTE, struct.pack(">H", 2) + b"id" + body)
    request = request_bodies.decode_execute(frame)
    assert request.params.names == ["a", "b"]
    assert request.params.values == [b"x", None]


def test_unset_and_null_values_decode_as_distinct_markers() -> None:
    body = struct.pack(">H", 2) + b"id" + struct.pack(">HBHii", 1, frames.QF_VALUES, 2, -2, -1)
    request = request_bodies.decode_execute(frames.Frame(4, 0, 1, frames.OP_EXECUTE, body))
    assert request.params.values == [UNSET, None]
    assert request.params.values[0] is UNSET


def test_a_value_length_below_minus_two_is_a_protocol_error() -> None:
    body = struct.pack(">H", 2) + b"id" + struct.pack(">HBHi", 1, frames.QF_VALUES, 1, -3)
    with pytest.raises(ProtocolError, match="invalid value length -3"):
        request_bodies.decode_execute(frames.Frame(4, 0, 1, frames.OP_EXECUTE, body))


def test_truncated_execute_is_a_protocol_error() -> None:
    data = driver_request(ExecuteMessage(b"id", [b"v" * 10], ConsistencyLevel.ONE))
    frame = single_frame(data)
    with pytest.raises(ProtocolError, match="truncated EXECUTE"):
        request_bodies.decode_execute(frame._replace(body=frame.body[:-3]))


def test_prepare_query_is_decoded() -> None:
    frame = single_frame(driver_request(PrepareMessage("INSERT INTO t (a) VALUES (?)")))
    assert request_bodies.decode_prepare(frame) == "INSERT INTO t (a) VALUES (?)"


def test_batch_of_prepared_and_unprepared_items_is_decoded() -> None:
    message = BatchMessage(
        BatchType.UNLOGGED,
        [(True, b"id1", [b"1", None]), (False, "INSERT INTO t (a) VALUES (1)", [])],
        ConsistencyLevel.ONE,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        timestamp=99,
    )
    request = request_bodies.decode_batch(single_frame(driver_request(message)))
    assert request.batch_type == 1
    assert request.items == [(b"id1", [b"1", None]), ("INSERT INTO t (a) VALUES (1)", [])]
    assert request.consistency == ConsistencyLevel.ONE
    assert request.serial_consistency == ConsistencyLevel.SERIAL
    assert request.timestamp == 99


def test_counter_batch_type_is_decoded() -> None:
    message = BatchMessage(BatchType.COUNTER, [(True, b"id", [])], ConsistencyLevel.ONE)
    assert request_bodies.decode_batch(single_frame(driver_request(message))).batch_type == 2
