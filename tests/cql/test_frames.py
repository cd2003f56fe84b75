"""The frame codec, checked against the driver's own message encoders and decoders.

Requests are encoded by ``cassandra.protocol`` exactly as the driver sends them and fed to
our decoder; our responses are decoded by the driver's ``ProtocolHandler``. No sockets.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from cassandra import ConsistencyLevel, cqltypes
from cassandra.protocol import (
    AlreadyExistsException,
    BatchMessage,
    ErrorMessage,
    EventMessage,
    ExecuteMessage,
    InvalidRequestException,
    OptionsMessage,
    PreparedQueryNotFound,
    PrepareMessage,
    ProtocolHandler,
    QueryMessage,
    ReadyMessage,
    RegisterMessage,
    ResultMessage,
    StartupMessage,
    SupportedMessage,
    UnavailableErrorMessage,
)
from cassandra.protocol_features import ProtocolFeatures
from cassandra.query import BatchType

from chat.embedded.cql import frames
from chat.embedded.cql.errors import AlreadyExists, InvalidRequest, ProtocolError, Unprepared
from chat.embedded.cql.results import ColumnSpec, Prepared, Rows, SchemaChange
from chat.embedded.cql.values import UNSET

FEATURES = ProtocolFeatures()


def driver_request(message: Any, stream: int = 1, version: int = 4) -> bytes:
    """Encode a request exactly as the driver would put it on the wire."""
    encoded: bytes = ProtocolHandler.encode_message(message, stream, version, None, False, FEATURES)
    return encoded


def single_frame(data: bytes) -> frames.Frame:
    decoded = frames.FrameDecoder().feed(data)
    assert len(decoded) == 1
    assert isinstance(decoded[0], frames.Frame)
    return decoded[0]


def driver_decode(data: bytes, result_metadata: Any = None) -> Any:
    """Decode one response frame with the driver's protocol handler; returns the message."""
    version, flags, stream, opcode, length = struct.unpack_from(">BBhBi", data)
    assert version & 0x80, "responses carry the direction bit"
    assert length == len(data) - 9
    message = ProtocolHandler.decode_message(
        version & 0x7F, FEATURES, {}, stream, flags, opcode, data[9:], None, result_metadata
    )
    message.stream_id_for_test = stream
    return message


def test_decoder_yields_frames_split_at_every_byte_boundary() -> None:
    data = driver_request(OptionsMessage(), stream=3) + driver_request(OptionsMessage(), stream=4)
    for cut in range(len(data) + 1):
        decoder = frames.FrameDecoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert [(f.stream, f.opcode) for f in got if isinstance(f, frames.Frame)] == [
            (3, frames.OP_OPTIONS),
            (4, frames.OP_OPTIONS),
        ]


def test_decoder_reassembles_a_large_frame_from_many_small_reads() -> None:
    query = "SELECT * FROM t WHERE k = '" + "x" * 100_000 + "'"
    data = driver_request(QueryMessage(query, ConsistencyLevel.ONE), stream=9)
    decoder = frames.FrameDecoder()
    got: list[frames.Frame | frames.FrameTooLarge] = []
    for start in range(0, len(data), 1000):
        got += decoder.feed(data[start : start + 1000])
    assert len(got) == 1
    assert isinstance(got[0], frames.Frame)
    assert frames.decode_query(got[0]).query == query


def test_decoder_skips_the_body_of_a_frame_over_the_limit_and_resumes_after_it() -> None:
    big = driver_request(QueryMessage("SELECT * FROM t WHERE k = '" + "x" * 5000 + "'", 1), 2)
    after = driver_request(OptionsMessage(), stream=3)
    data = big + after
    for cut in (5, 9, 100, len(big) - 1, len(big), len(big) + 4):
        decoder = frames.FrameDecoder(max_frame=1000)
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert got[0] == frames.FrameTooLarge(4, 2, len(big) - 9)
        assert isinstance(got[1], frames.Frame)
        assert (got[1].stream, got[1].opcode) == (3, frames.OP_OPTIONS)
        assert not decoder.pending


def test_decoder_rejects_negative_body_length() -> None:
    with pytest.raises(ProtocolError, match="invalid frame body length"):
        frames.FrameDecoder().feed(struct.pack(">BBhBi", 4, 0, 1, 5, -1))


@pytest.mark.parametrize("version", [1, 2, 5, 6])
def test_unsupported_versions_are_refused_with_the_phrase_the_driver_downgrades_on(
    version: int,
) -> None:
    frame = single_frame(struct.pack(">BBhBi", version, 0, 7, frames.OP_OPTIONS, 0))
    with pytest.raises(ProtocolError) as info:
        frames.check_version(frame)
    reply = frames.encode_cql_error(frame.stream, info.value)
    assert reply[0] == 0x84
    message = driver_decode(reply)
    assert message.stream_id_for_test == 7
    assert "unsupported protocol version" in message.message


@pytest.mark.parametrize("version", [3, 4])
def test_versions_three_and_four_are_accepted(version: int) -> None:
    frames.check_version(single_frame(driver_request(OptionsMessage(), version=version)))


def test_startup_options_are_decoded() -> None:
    message = StartupMessage(cqlversion="3.0.0", options={"DRIVER_NAME": "x"})
    frame = single_frame(driver_request(message))
    assert frame.opcode == frames.OP_STARTUP
    assert frames.decode_startup(frame) == {"CQL_VERSION": "3.0.0", "DRIVER_NAME": "x"}


def test_register_event_types_are_decoded() -> None:
    message = RegisterMessage(["SCHEMA_CHANGE", "STATUS_CHANGE"])
    assert frames.decode_register(single_frame(driver_request(message))) == [
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
    request = frames.decode_query(single_frame(driver_request(message)))
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
    request = frames.decode_execute(single_frame(body))
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
    request = frames.decode_execute(frame)
    assert request.params.names == ["a", "b"]
    assert request.params.values == [b"x", None]


def test_unset_and_null_values_decode_as_distinct_markers() -> None:
    body = struct.pack(">H", 2) + b"id" + struct.pack(">HBHii", 1, frames.QF_VALUES, 2, -2, -1)
    request = frames.decode_execute(frames.Frame(4, 0, 1, frames.OP_EXECUTE, body))
    assert request.params.values == [UNSET, None]
    assert request.params.values[0] is UNSET


def test_a_value_length_below_minus_two_is_a_protocol_error() -> None:
    body = struct.pack(">H", 2) + b"id" + struct.pack(">HBHi", 1, frames.QF_VALUES, 1, -3)
    with pytest.raises(ProtocolError, match="invalid value length -3"):
        frames.decode_execute(frames.Frame(4, 0, 1, frames.OP_EXECUTE, body))


def test_truncated_execute_is_a_protocol_error() -> None:
    data = driver_request(ExecuteMessage(b"id", [b"v" * 10], ConsistencyLevel.ONE))
    frame = single_frame(data)
    with pytest.raises(ProtocolError, match="truncated EXECUTE"):
        frames.decode_execute(frame._replace(body=frame.body[:-3]))


def test_prepare_query_is_decoded() -> None:
    frame = single_frame(driver_request(PrepareMessage("INSERT INTO t (a) VALUES (?)")))
    assert frames.decode_prepare(frame) == "INSERT INTO t (a) VALUES (?)"


def test_batch_of_prepared_and_unprepared_items_is_decoded() -> None:
    message = BatchMessage(
        BatchType.UNLOGGED,
        [(True, b"id1", [b"1", None]), (False, "INSERT INTO t (a) VALUES (1)", [])],
        ConsistencyLevel.ONE,
        serial_consistency_level=ConsistencyLevel.SERIAL,
        timestamp=99,
    )
    request = frames.decode_batch(single_frame(driver_request(message)))
    assert request.batch_type == 1
    assert request.items == [(b"id1", [b"1", None]), ("INSERT INTO t (a) VALUES (1)", [])]
    assert request.consistency == ConsistencyLevel.ONE
    assert request.serial_consistency == ConsistencyLevel.SERIAL
    assert request.timestamp == 99


def test_counter_batch_type_is_decoded() -> None:
    message = BatchMessage(BatchType.COUNTER, [(True, b"id", [])], ConsistencyLevel.ONE)
    assert frames.decode_batch(single_frame(driver_request(message))).batch_type == 2


def test_ready_and_void_decode_in_the_driver() -> None:
    assert isinstance(driver_decode(frames.encode_ready(5)), ReadyMessage)
    void = driver_decode(frames.encode_void(-300 + 400))
    assert isinstance(void, ResultMessage)
    assert void.kind == frames.RESULT_VOID
    assert void.stream_id_for_test == 100


def test_supported_carries_cql_version_and_lz4_compression_and_no_scylla_keys() -> None:
    message = driver_decode(frames.encode_supported(1))
    assert isinstance(message, SupportedMessage)
    assert message.cql_versions == [frames.CQL_VERSION]
    assert message.options["COMPRESSION"] == ["lz4"]
    assert not [key for key in message.options if key.startswith("SCYLLA")]


def test_error_codes_surface_as_the_driver_exception_types() -> None:
    invalid = driver_decode(frames.encode_cql_error(1, InvalidRequest("unconfigured table x")))
    assert isinstance(invalid, InvalidRequestException)
    assert invalid.message == "unconfigured table x"
    exists = driver_decode(frames.encode_cql_error(1, AlreadyExists("exists", "ks", "t")))
    assert isinstance(exists, AlreadyExistsException)
    assert exists.info == {"keyspace": "ks", "table": "t"}
    unprepared = driver_decode(frames.encode_cql_error(1, Unprepared("unknown id", b"\x01\x02")))
    assert isinstance(unprepared, PreparedQueryNotFound)
    assert unprepared.info == b"\x01\x02"
    unavailable = driver_decode(frames.encode_unavailable(1, "down", 1, 3, 1))
    assert isinstance(unavailable, UnavailableErrorMessage)
    assert unavailable.info == {"consistency": 1, "required_replicas": 3, "alive_replicas": 1}
    assert isinstance(driver_decode(frames.encode_error(1, 0x0000, "boom")), ErrorMessage)


INT = cqltypes.Int32Type
TEXT = cqltypes.UTF8Type
COLUMNS = [ColumnSpec("ks", "t", "k", INT), ColumnSpec("ks", "t", "v", TEXT)]


def test_rows_with_metadata_and_paging_state_decode_in_the_driver() -> None:
    rows = Rows(COLUMNS, [[INT.serialize(1, 4), b"one"], [INT.serialize(2, 4), None]], b"page2")
    message = driver_decode(frames.encode_rows(3, rows))
    assert message.kind == frames.RESULT_ROWS
    assert message.column_names == ["k", "v"]
    assert message.parsed_rows == [(1, "one"), (2, None)]
    assert message.paging_state == b"page2"


def test_rows_without_metadata_use_the_prepared_metadata() -> None:
    rows = Rows(COLUMNS, [[INT.serialize(7, 4), b"seven"]])
    data = frames.encode_rows(3, rows, skip_metadata=True)
    result_metadata = [("ks", "t", "k", INT), ("ks", "t", "v", TEXT)]
    message = driver_decode(data, result_metadata)
    assert message.parsed_rows == [(7, "seven")]
    assert message.paging_state is None


def test_rows_from_several_tables_carry_per_column_table_specs() -> None:
    columns = [ColumnSpec("ks", "a", "x", INT), ColumnSpec("other", "b", "y", INT)]
    rows = Rows(columns, [[INT.serialize(1, 4), INT.serialize(2, 4)]])
    message = driver_decode(frames.encode_rows(1, rows))
    assert [c[:3] for c in message.column_metadata] == [("ks", "a", "x"), ("other", "b", "y")]


@pytest.mark.parametrize(
    "cql_type",
    [
        cqltypes.AsciiType,
        cqltypes.LongType,
        cqltypes.BytesType,
        cqltypes.BooleanType,
        cqltypes.CounterColumnType,
        cqltypes.DecimalType,
        cqltypes.DoubleType,
        cqltypes.FloatType,
        cqltypes.Int32Type,
        cqltypes.UTF8Type,
        cqltypes.DateType,
        cqltypes.UUIDType,
        cqltypes.VarcharType,
        cqltypes.IntegerType,
        cqltypes.TimeUUIDType,
        cqltypes.InetAddressType,
        cqltypes.SimpleDateType,
        cqltypes.TimeType,
        cqltypes.ShortType,
        cqltypes.ByteType,
        cqltypes.DurationType,
        cqltypes.ListType.apply_parameters([TEXT]),
        cqltypes.SetType.apply_parameters([cqltypes.UUIDType]),
        cqltypes.MapType.apply_parameters([TEXT, cqltypes.LongType]),
        cqltypes.TupleType.apply_parameters([INT, TEXT]),
        cqltypes.UserType.make_udt_class("ks", "addr", ("street", "no"), (TEXT, INT)),
    ],
)
def test_types_round_trip_through_the_driver_type_reader(cql_type: Any) -> None:
    rows = Rows([ColumnSpec("ks", "t", "c", cql_type)], [])
    message = driver_decode(frames.encode_rows(1, rows))
    decoded = message.column_types[0]
    assert decoded.cql_parameterized_type() == cql_type.cql_parameterized_type()


def test_frozen_and_reversed_wrappers_are_not_on_the_wire() -> None:
    frozen = cqltypes.lookup_casstype(
        "org.apache.cassandra.db.marshal.FrozenType("
        "org.apache.cassandra.db.marshal.ListType(org.apache.cassandra.db.marshal.Int32Type))"
    )
    reversed_int = cqltypes.lookup_casstype(
        "org.apache.cassandra.db.marshal.ReversedType(org.apache.cassandra.db.marshal.Int32Type)"
    )
    assert frames.encode_type(frozen) == struct.pack(">HH", 0x20, 0x09)
    assert frames.encode_type(reversed_int) == struct.pack(">H", 0x09)


def test_unknown_types_are_sent_as_custom_with_their_class_name() -> None:
    empty = cqltypes.lookup_casstype("org.apache.cassandra.db.marshal.EmptyType")
    encoded = frames.encode_type(empty)
    assert encoded[:2] == b"\x00\x00"
    assert encoded[4:] == b"org.apache.cassandra.db.marshal.EmptyType"


def test_prepared_carries_bind_metadata_pk_indexes_and_result_metadata() -> None:
    prepared = Prepared(
        statement_id=uuid.uuid4().bytes,
        query="SELECT k, v FROM ks.t WHERE k = ?",
        keyspace="ks",
        bind_columns=[ColumnSpec("ks", "t", "k", INT)],
        pk_indexes=[0],
        result_columns=COLUMNS,
    )
    message = driver_decode(frames.encode_prepared(2, prepared))
    assert message.kind == frames.RESULT_PREPARED
    assert message.query_id == prepared.statement_id
    assert message.pk_indexes == [0]
    assert [(c.keyspace_name, c.table_name, c.name) for c in message.bind_metadata] == [
        ("ks", "t", "k")
    ]
    assert [c[2] for c in message.column_metadata] == ["k", "v"]


def test_prepared_write_has_no_result_metadata() -> None:
    prepared = Prepared(b"id", "INSERT", "ks", COLUMNS, [0], None, is_write=True)
    message = driver_decode(frames.encode_prepared(2, prepared))
    assert message.column_metadata is None
    assert message.pk_indexes == [0]


def test_prepared_in_v3_has_no_pk_indexes() -> None:
    prepared = Prepared(b"id", "INSERT", "ks", COLUMNS, [0], None, is_write=True)
    message = driver_decode(frames.encode_prepared(2, prepared, version=3))
    assert message.pk_indexes is None
    assert len(message.bind_metadata) == 2


def test_set_keyspace_and_schema_change_results_decode_in_the_driver() -> None:
    assert driver_decode(frames.encode_set_keyspace(1, "ks")).new_keyspace == "ks"
    change = SchemaChange("CREATED", "TABLE", "ks", "t")
    event = driver_decode(frames.encode_schema_change(1, change)).schema_change_event
    assert event == {
        "target_type": "TABLE",
        "change_type": "CREATED",
        "keyspace": "ks",
        "table": "t",
    }


def test_schema_change_event_is_pushed_on_stream_minus_one() -> None:
    data = frames.encode_schema_change_event(SchemaChange("DROPPED", "KEYSPACE", "ks"))
    message = driver_decode(data)
    assert isinstance(message, EventMessage)
    assert message.stream_id_for_test == -1
    assert message.event_type == "SCHEMA_CHANGE"
    assert message.event_args == {
        "target_type": "KEYSPACE",
        "change_type": "DROPPED",
        "keyspace": "ks",
    }


def test_lz4_request_bodies_are_inflated_like_the_driver_deflates_them() -> None:
    from cassandra.connection import locally_supported_compressions

    compressor, _ = locally_supported_compressions["lz4"]
    message = QueryMessage("SELECT * FROM t", ConsistencyLevel.ONE)
    data = ProtocolHandler.encode_message(message, 3, 4, compressor, False, FEATURES)
    frame = single_frame(data)
    assert frame.flags & frames.FLAG_COMPRESSED
    assert frames.decode_query(frames.decompress(frame)).query == "SELECT * FROM t"


def test_large_responses_are_lz4_compressed_and_small_ones_left_alone() -> None:
    from cassandra.connection import locally_supported_compressions

    _, decompressor = locally_supported_compressions["lz4"]
    rows = Rows(COLUMNS, [[INT.serialize(i, 4), b"v" * 100] for i in range(100)])
    data = frames.compress(frames.encode_rows(3, rows))
    _, flags, stream, opcode, _ = struct.unpack_from(">BBhBi", data)
    assert flags & frames.FLAG_COMPRESSED
    message = ProtocolHandler.decode_message(
        4, FEATURES, {}, stream, flags, opcode, data[9:], decompressor, None
    )
    assert len(message.parsed_rows) == 100
    assert frames.compress(frames.encode_void(1)) == frames.encode_void(1)
