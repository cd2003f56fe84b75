"""Response frames, decoded by the driver's own ``ProtocolHandler``. No sockets."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from cassandra import cqltypes
from cassandra.protocol import (
    AlreadyExistsException,
    ErrorMessage,
    EventMessage,
    InvalidRequestException,
    PreparedQueryNotFound,
    ReadyMessage,
    ResultMessage,
    SupportedMessage,
    UnavailableErrorMessage,
)

from chat.embedded.cql import frames, responses
from chat.embedded.cql.errors import AlreadyExists, InvalidRequest, Unprepared
from chat.embedded.cql.results import ColumnSpec, Prepared, Rows, SchemaChange
from tests.cql.driver_codec import driver_decode


def test_ready_and_void_decode_in_the_driver() -> None:
    assert isinstance(driver_decode(responses.encode_ready(5)), ReadyMessage)
    void = driver_decode(responses.encode_void(-300 + 400))
    assert isinstance(void, ResultMessage)
    assert void.kind == frames.RESULT_VOID
    assert void.stream_id_for_test == 100


def test_supported_carries_cql_version_and_lz4_compression_and_no_scylla_keys() -> None:
    message = driver_decode(responses.encode_supported(1))
    assert isinstance(message, SupportedMessage)
    assert message.cql_versions == [frames.CQL_VERSION]
    assert message.options["COMPRESSION"] == ["lz4"]
    assert not [key for key in message.options if key.startswith("SCYLLA")]


def test_error_codes_surface_as_the_driver_exception_types() -> None:
    invalid = driver_decode(responses.encode_cql_error(1, InvalidRequest("unconfigured table x")))
    assert isinstance(invalid, InvalidRequestException)
    assert invalid.message == "unconfigured table x"
    exists = driver_decode(responses.encode_cql_error(1, AlreadyExists("exists", "ks", "t")))
    assert isinstance(exists, AlreadyExistsException)
    assert exists.info == {"keyspace": "ks", "table": "t"}
    unprepared = driver_decode(responses.encode_cql_error(1, Unprepared("unknown id", b"\x01\x02")))
    assert isinstance(unprepared, PreparedQueryNotFound)
    assert unprepared.info == b"\x01\x02"
    unavailable = driver_decode(responses.encode_unavailable(1, "down", 1, 3, 1))
    assert isinstance(unavailable, UnavailableErrorMessage)
    assert unavailable.info == {"consistency": 1, "required_replicas": 3, "alive_replicas": 1}
    assert isinstance(driver_decode(responses.encode_error(1, 0x0000, "boom")), ErrorMessage)


INT = cqltypes.Int32Type
TEXT = cqltypes.UTF8Type
COLUMNS = [ColumnSpec("ks", "t", "k", INT), ColumnSpec("ks", "t", "v", TEXT)]


def test_rows_with_metadata_and_paging_state_decode_in_the_driver() -> None:
    rows = Rows(COLUMNS, [[INT.serialize(1, 4), b"one"], [INT.serialize(2, 4), None]], b"page2")
    message = driver_decode(responses.encode_rows(3, rows))
    assert message.kind == frames.RESULT_ROWS
    assert message.column_names == ["k", "v"]
    assert message.parsed_rows == [(1, "one"), (2, None)]
    assert message.paging_state == b"page2"


def test_rows_without_metadata_use_the_prepared_metadata() -> None:
    rows = Rows(COLUMNS, [[INT.serialize(7, 4), b"seven"]])
    data = responses.encode_rows(3, rows, skip_metadata=True)
    result_metadata = [("ks", "t", "k", INT), ("ks", "t", "v", TEXT)]
    message = driver_decode(data, result_metadata)
    assert message.parsed_rows == [(7, "seven")]
    assert message.paging_state is None


def test_rows_from_several_tables_carry_per_column_table_specs() -> None:
    columns = [ColumnSpec("ks", "a", "x", INT), ColumnSpec("other", "b", "y", INT)]
    rows = Rows(columns, [[INT.serialize(1, 4), INT.serialize(2, 4)]])
    message = driver_decode(responses.encode_rows(1, rows))
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
    message = driver_decode(responses.encode_rows(1, rows))
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
    assert responses.encode_type(frozen) == struct.pack(">HH", 0x20, 0x09)
    assert responses.encode_type(reversed_int) == struct.pack(">H", 0x09)


def test_unknown_types_are_sent_as_custom_with_their_class_name() -> None:
    empty = cqltypes.lookup_casstype("org.apache.cassandra.db.marshal.EmptyType")
    encoded = responses.encode_type(empty)
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
    message = driver_decode(responses.encode_prepared(2, prepared))
    assert message.kind == frames.RESULT_PREPARED
    assert message.query_id == prepared.statement_id
    assert message.pk_indexes == [0]
    assert [(c.keyspace_name, c.table_name, c.name) for c in message.bind_metadata] == [
        ("ks", "t", "k")
    ]
    assert [c[2] for c in message.column_metadata] == ["k", "v"]


def test_prepared_write_has_no_result_metadata() -> None:
    prepared = Prepared(b"id", "INSERT", "ks", COLUMNS, [0], None, is_write=True)
    message = driver_decode(responses.encode_prepared(2, prepared))
    assert message.column_metadata is None
    assert message.pk_indexes == [0]


def test_prepared_in_v3_has_no_pk_indexes() -> None:
    prepared = Prepared(b"id", "INSERT", "ks", COLUMNS, [0], None, is_write=True)
    message = driver_decode(responses.encode_prepared(2, prepared, version=3))
    assert message.pk_indexes is None
    assert len(message.bind_metadata) == 2


def test_set_keyspace_and_schema_change_results_decode_in_the_driver() -> None:
    assert driver_decode(responses.encode_set_keyspace(1, "ks")).new_keyspace == "ks"
    change = SchemaChange("CREATED", "TABLE", "ks", "t")
    event = driver_decode(responses.encode_schema_change(1, change)).schema_change_event
    assert event == {
        "target_type": "TABLE",
        "change_type": "CREATED",
        "keyspace": "ks",
        "table": "t",
    }


def test_schema_change_event_is_pushed_on_stream_minus_one() -> None:
    data = responses.encode_schema_change_event(SchemaChange("DROPPED", "KEYSPACE", "ks"))
    message = driver_decode(data)
    assert isinstance(message, EventMessage)
    assert message.stream_id_for_test == -1
    assert message.event_type == "SCHEMA_CHANGE"
    assert message.event_args == {
        "target_type": "KEYSPACE",
        "change_type": "DROPPED",
        "keyspace": "ks",
    }
