"""The metadata a PREPARE answers with: the column of each bind marker, the routing key."""

from __future__ import annotations

import uuid

from cassandra import cqltypes

from chat.embedded.cql.bind_metadata import bind_specs
from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.parser import parse
from chat.embedded.cql.results import ColumnSpec
from chat.embedded.cql.schema import TableMeta

NODE = NodeInfo("127.0.0.1", 9042, uuid.UUID(int=1))


def engine_with_a_table() -> Engine:
    engine = Engine(None, NODE)
    for cql in (
        "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', "
        "'replication_factor': 1}",
        "CREATE TABLE ks.t (a int, b text, c bigint, v text, m map<text, int>,"
        " PRIMARY KEY ((a, b), c))",
    ):
        engine.query(cql, [], QueryOptions(), None)
    return engine


def specs_of(query: str) -> tuple[list[ColumnSpec], list[int], frozenset[int]]:
    engine = engine_with_a_table()

    def table(keyspace: str | None, name: str) -> TableMeta:
        return engine.executor.table(keyspace, name, "ks")

    return bind_specs(parse(query), table)


def test_each_marker_of_an_insert_is_described_by_its_column_and_the_routing_key_by_position() -> (
    None
):
    specs, pk_indexes, unset_ok = specs_of(
        "INSERT INTO t (c, b, a, v) VALUES (?, ?, ?, ?) USING TTL ?"
    )
    assert [(s.name, s.cql_type) for s in specs] == [
        ("c", cqltypes.LongType),
        ("b", cqltypes.UTF8Type),
        ("a", cqltypes.Int32Type),
        ("v", cqltypes.UTF8Type),
        ("[ttl]", cqltypes.Int32Type),
    ]
    assert pk_indexes == [2, 1]  # the partition key's columns, in its order
    assert unset_ok == {3, 4}  # values written and the TTL; never a key


def test_a_map_element_update_marks_its_key_and_value_types_and_keys_may_not_be_unset() -> None:
    specs, pk_indexes, unset_ok = specs_of("UPDATE t SET m[?] = ? WHERE a = ? AND b = ? AND c = ?")
    assert [(s.name, s.cql_type) for s in specs][2:] == [
        ("a", cqltypes.Int32Type),
        ("b", cqltypes.UTF8Type),
        ("c", cqltypes.LongType),
    ]
    assert specs[1].cql_type == cqltypes.Int32Type
    assert pk_indexes == [2, 3]
    assert not unset_ok & {2, 3, 4}


def test_a_select_without_the_whole_partition_key_bound_has_no_routing_key() -> None:
    specs, pk_indexes, unset_ok = specs_of("SELECT * FROM t WHERE a = ? AND b = 'x' LIMIT ?")
    assert [s.name for s in specs] == ["a", "[limit]"]
    assert pk_indexes == []
    assert unset_ok == {1}
