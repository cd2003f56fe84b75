"""The CQL parser on its own: text in, AST or CqlSyntaxError out (no I/O, no engine)."""

from __future__ import annotations

import datetime

import cassandra.cluster
import cassandra.metadata
import pytest
from cassandra.util import maybe_add_timeout_to_query

from chat.embedded.cql.ast import (
    AlterTableAdd,
    Assignment,
    Batch,
    ColumnDef,
    Condition,
    Constant,
    CqlType,
    CreateKeyspace,
    CreateTable,
    Delete,
    DeleteTarget,
    DropKeyspace,
    DropTable,
    FunctionCall,
    Insert,
    ListLiteral,
    MapLiteral,
    Relation,
    Select,
    Selector,
    SetLiteral,
    TokenRelation,
    Truncate,
    TupleLiteral,
    Update,
    Use,
)
from chat.embedded.cql.errors import CqlSyntaxError, InvalidRequest
from chat.embedded.cql.parser import parse
from tests.cql.parsing import (
    const,
    error_of,
    parse_delete,
    parse_insert,
    parse_select,
    parse_table,
    parse_update,
    q,
)

# ---------------------------------------------------------------- SELECT


def test_select_star_has_no_selectors_and_qualified_table() -> None:
    assert parse("SELECT * FROM ks.events") == Select("ks", "events", ())


def test_select_unqualified_table_has_no_keyspace() -> None:
    assert parse_select("select * from events").keyspace is None


def test_select_column_list_with_aliases() -> None:
    statement = parse_select("SELECT a, b AS bee, c FROM t")
    assert statement.selectors == (
        Selector("column", "a"),
        Selector("column", "b", "bee"),
        Selector("column", "c"),
    )


@pytest.mark.parametrize("text", ["COUNT(*)", "count(*)", "count(1)", "Count(1)"])
def test_select_count_forms_become_count_selector(text: str) -> None:
    assert parse_select(f"SELECT {text} FROM t").selectors == (Selector("count", None),)


def test_count_of_a_column_stays_a_function_call_not_a_row_count() -> None:
    assert parse_select("SELECT count(body) FROM t").selectors == (
        Selector("function", "count", None, (Selector("column", "body"),)),
    )


def test_select_count_with_alias() -> None:
    statement = parse_select("SELECT COUNT(*) AS n FROM t WHERE a = 1")
    assert statement.selectors == (Selector("count", None, "n"),)


def test_select_writetime_and_ttl_name_their_column() -> None:
    statement = parse_select("SELECT writetime(body), TTL(body) AS left FROM t")
    assert statement.selectors == (
        Selector("writetime", "body"),
        Selector("ttl", "body", "left"),
    )


def test_select_nested_function_calls_keep_the_function_name_in_column() -> None:
    statement = parse_select("SELECT toTimestamp(now()), blobAsText(b) FROM t")
    assert statement.selectors == (
        Selector("function", "totimestamp", None, (Selector("function", "now"),)),
        Selector("function", "blobastext", None, (Selector("column", "b"),)),
    )


def test_select_distinct() -> None:
    statement = parse_select("SELECT DISTINCT a, b FROM t")
    assert statement.distinct
    assert not parse_select("SELECT a FROM t").distinct


def test_select_where_equality_and_ranges() -> None:
    statement = parse_select(
        "SELECT * FROM t WHERE a = 1 AND b < 2 AND c <= 3 AND d > 4 AND e >= 5 AND f != 6"
    )
    ops = [(r.columns, r.op) for r in statement.where if isinstance(r, Relation)]
    assert ops == [
        (("a",), "="),
        (("b",), "<"),
        (("c",), "<="),
        (("d",), ">"),
        (("e",), ">="),
        (("f",), "!="),
    ]


def test_select_in_list_and_in_marker() -> None:
    statement = parse_select("SELECT * FROM t WHERE a IN (1, 2, ?) AND b IN ? AND c IN ()")
    assert statement.where == (
        Relation(("a",), "IN", (const("integer", "1"), const("integer", "2"), q(0))),
        Relation(("b",), "IN", q(1)),
        Relation(("c",), "IN", ()),
    )


def test_select_tuple_relations_with_markers_and_literals() -> None:
    statement = parse_select(
        "SELECT * FROM t WHERE k = ? AND (a, b) > (?, ?) AND (a, b) <= (1, 'x')"
    )
    assert statement.where == (
        Relation(("k",), "=", q(0)),
        Relation(("a", "b"), ">", TupleLiteral((q(1), q(2)))),
        Relation(("a", "b"), "<=", TupleLiteral((const("integer", "1"), const("string", "x")))),
    )


def test_select_tuple_relation_against_one_marker_and_tuple_in() -> None:
    statement = parse_select("SELECT * FROM t WHERE (a, b) >= ? AND (a, b) IN ((1, 2), ?)")
    assert statement.where == (
        Relation(("a", "b"), ">=", q(0)),
        Relation(
            ("a", "b"),
            "IN",
            (TupleLiteral((const("integer", "1"), const("integer", "2"))), q(1)),
        ),
    )


def test_select_token_relation() -> None:
    statement = parse_select("SELECT * FROM t WHERE token(a, b) > ? AND TOKEN(a, b) <= 100")
    assert statement.where == (
        TokenRelation(("a", "b"), ">", q(0)),
        TokenRelation(("a", "b"), "<=", const("integer", "100")),
    )


def test_select_contains_and_contains_key() -> None:
    statement = parse_select(
        "SELECT * FROM t WHERE tags CONTAINS 'x' AND attrs CONTAINS KEY ? ALLOW FILTERING"
    )
    assert statement.where == (
        Relation(("tags",), "CONTAINS", const("string", "x")),
        Relation(("attrs",), "CONTAINS KEY", q(0)),
    )
    assert statement.allow_filtering


def test_select_order_by_defaults_to_asc() -> None:
    statement = parse_select("SELECT * FROM t WHERE a = 1 ORDER BY b DESC, c, d ASC")
    assert statement.order_by == (("b", "DESC"), ("c", "ASC"), ("d", "ASC"))


def test_select_limit_and_per_partition_limit_as_literals_or_markers() -> None:
    statement = parse_select("SELECT * FROM t PER PARTITION LIMIT 2 LIMIT 10")
    assert statement.per_partition_limit == const("integer", "2")
    assert statement.limit == const("integer", "10")
    statement = parse_select("SELECT * FROM t WHERE a = ? PER PARTITION LIMIT ? LIMIT ?")
    assert (statement.per_partition_limit, statement.limit) == (q(1), q(2))
    assert statement.bind_count == 3


def test_select_all_clauses_together() -> None:
    statement = parse_select(
        "SELECT a, b FROM ks.t WHERE a = ? AND b > ? ORDER BY b DESC "
        "PER PARTITION LIMIT 1 LIMIT 5 ALLOW FILTERING BYPASS CACHE USING TIMEOUT 10s;"
    )
    assert statement == Select(
        keyspace="ks",
        table="t",
        selectors=(Selector("column", "a"), Selector("column", "b")),
        where=(Relation(("a",), "=", q(0)), Relation(("b",), ">", q(1))),
        order_by=(("b", "DESC"),),
        limit=const("integer", "5"),
        per_partition_limit=const("integer", "1"),
        allow_filtering=True,
        bind_count=2,
    )


def test_select_limit_must_come_after_per_partition_limit() -> None:
    assert "mismatched input 'PER'" in error_of("SELECT * FROM t LIMIT 1 PER PARTITION LIMIT 1")


# ---------------------------------------------------------------- driver and cqlsh


def _driver_queries() -> list[str]:
    control = cassandra.cluster.ControlConnection
    queries = [
        control._SELECT_LOCAL,
        control._SELECT_LOCAL_NO_TOKENS,
        control._SELECT_LOCAL_NO_TOKENS_RPC_ADDRESS,
        control._SELECT_PEERS,
        control._SELECT_PEERS_V2,
        control._SELECT_PEERS_NO_TOKENS_V2,
        control._SELECT_SCHEMA_LOCAL,
        control._SELECT_SCHEMA_PEERS_V2,
    ]
    for column in ("rpc_address", "native_transport_address"):
        queries.append(control._SELECT_PEERS_NO_TOKENS_TEMPLATE.format(nt_col_name=column))
        queries.append(control._SELECT_SCHEMA_PEERS_TEMPLATE.format(nt_col_name=column))
    for parser in (
        cassandra.metadata.SchemaParserV22,
        cassandra.metadata.SchemaParserV3,
        cassandra.metadata.SchemaParserV4,
    ):
        queries += [
            value
            for name, value in vars(parser).items()
            if name.startswith("_SELECT") and isinstance(value, str)
        ]
    # What the schema parsers append for a single keyspace / table / function refresh.
    queries += [
        "SELECT * FROM system_schema.tables WHERE keyspace_name = 'ks' AND table_name = 't'",
        "SELECT * FROM system_schema.functions WHERE keyspace_name = 'ks' "
        "AND function_name = 'f' AND argument_types = ['int', 'text']",
        "SELECT * FROM system.schema_columnfamilies WHERE keyspace_name = 'ks' "
        "AND columnfamily_name = 't'",
        # cqlsh at connect time.
        "select * from system.local where key = 'local'",
        "SELECT * FROM system.versions WHERE key = 'local'",
    ]
    timeout = datetime.timedelta(milliseconds=2000)
    return queries + [maybe_add_timeout_to_query(query, timeout) for query in queries]


@pytest.mark.parametrize("query", _driver_queries())
def test_every_query_the_driver_and_cqlsh_send_parses_as_select(query: str) -> None:
    assert isinstance(parse(query), Select)


def test_driver_local_query_parses_to_expected_ast() -> None:
    statement = parse_select(cassandra.cluster.ControlConnection._SELECT_LOCAL)
    assert statement.keyspace == "system"
    assert statement.table == "local"
    assert [s.column for s in statement.selectors][-2:] == ["schema_version", "tokens"]
    assert statement.where == (Relation(("key",), "=", const("string", "local")),)


def test_using_timeout_from_scylla_mode_is_accepted_and_ignored() -> None:
    plain = parse("SELECT * FROM system.peers")
    assert parse("SELECT * FROM system.peers USING TIMEOUT 2000ms") == plain


@pytest.mark.parametrize(
    "text", ["DESCRIBE KEYSPACES", "DESC TABLE ks.t", "describe cluster;", "DESCRIBE FULL SCHEMA"]
)
def test_describe_is_a_syntax_error_so_cqlsh_falls_back_to_client_side_describe(
    text: str,
) -> None:
    assert "unsupported construct: DESC" in error_of(text)


# ---------------------------------------------------------------- INSERT


def test_insert_columns_values_and_markers() -> None:
    statement = parse("INSERT INTO ks.m (a, b, c) VALUES (?, 'x', ?)")
    assert statement == Insert(
        keyspace="ks",
        table="m",
        columns=("a", "b", "c"),
        values=(q(0), const("string", "x"), q(1)),
        bind_count=2,
    )


def test_insert_if_not_exists_and_using_ttl_and_timestamp() -> None:
    statement = parse_insert(
        "INSERT INTO t (a) VALUES (?) IF NOT EXISTS USING TTL ? AND TIMESTAMP 123"
    )
    assert statement.if_not_exists
    assert statement.ttl == q(1)
    assert statement.timestamp == const("integer", "123")
    assert statement.bind_count == 2


def test_insert_using_timestamp_then_ttl_in_either_order() -> None:
    statement = parse_insert("INSERT INTO t (a) VALUES (1) USING TIMESTAMP ? AND TTL ?")
    assert (statement.timestamp, statement.ttl) == (q(0), q(1))


def test_insert_with_function_calls_as_values() -> None:
    statement = parse_insert("INSERT INTO t (id, at, u) VALUES (now(), toTimestamp(now()), uuid())")
    assert statement.values == (
        FunctionCall("now", ()),
        FunctionCall("totimestamp", (FunctionCall("now", ()),)),
        FunctionCall("uuid", ()),
    )


def test_insert_json_is_refused_by_name() -> None:
    assert (
        error_of("INSERT INTO t JSON '{\"a\": 1}'")
        == "line 1:14 unsupported construct: INSERT JSON"
    )


def test_insert_with_mismatched_columns_and_values_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="Unmatched column names/values"):
        parse("INSERT INTO t (a, b) VALUES (1)")


def test_insert_twice_the_same_column_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        parse("INSERT INTO t (a, a) VALUES (1, 2)")


def test_using_ttl_twice_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="TTL"):
        parse("INSERT INTO t (a) VALUES (1) USING TTL 1 AND TTL 2")


# ---------------------------------------------------------------- UPDATE


def test_update_set_forms_map_to_assignment_ops() -> None:
    statement = parse_update(
        "UPDATE t SET a = ?, n = n + ?, m = m - 1, l = [1] + l, l2 = ? + l2, s = s + {'x'}, "
        "mp[?] = ? WHERE k = ?"
    )
    assert statement.assignments == (
        Assignment("a", "set", q(0)),
        Assignment("n", "add", q(1)),
        Assignment("m", "sub", const("integer", "1")),
        Assignment("l", "prepend", ListLiteral((const("integer", "1"),))),
        Assignment("l2", "prepend", q(2)),
        Assignment("s", "add", SetLiteral((const("string", "x"),))),
        Assignment("mp", "set", q(4), key=q(3)),
    )
    assert statement.where == (Relation(("k",), "=", q(5)),)
    assert statement.bind_count == 6


def test_update_counter_minus_one_without_space_adds_negative_one() -> None:
    statement = parse_update("UPDATE t SET c = c -1 WHERE k = 1")
    assert statement.assignments == (Assignment("c", "add", const("integer", "-1")),)


def test_update_map_merge_with_map_literal() -> None:
    statement = parse_update("UPDATE t SET m = m + {'a': 1, 'b': ?} WHERE k = 1")
    assert statement.assignments == (
        Assignment(
            "m",
            "add",
            MapLiteral(
                (
                    (const("string", "a"), const("integer", "1")),
                    (const("string", "b"), q(0)),
                )
            ),
        ),
    )


def test_update_adding_another_column_is_refused() -> None:
    assert "only expressions of the form c = c + <value>" in error_of(
        "UPDATE t SET c = d + 1 WHERE k = 1"
    )


def test_update_using_clause_comes_before_set() -> None:
    statement = parse_update("UPDATE ks.t USING TTL 60 AND TIMESTAMP ? SET a = ? WHERE k = ?")
    assert (statement.keyspace, statement.ttl, statement.timestamp) == (
        "ks",
        const("integer", "60"),
        q(0),
    )
    assert statement.bind_count == 3


def test_update_if_exists() -> None:
    statement = parse_update("UPDATE t SET a = 1 WHERE k = 1 IF EXISTS")
    assert statement.if_exists
    assert statement.conditions == ()


def test_update_if_conditions() -> None:
    statement = parse_update(
        "UPDATE t SET a = 1 WHERE k = 1 IF a = ? AND b != null AND c IN (1, 2) AND d > 3"
    )
    assert not statement.if_exists
    assert statement.conditions == (
        Condition("a", "=", q(0)),
        Condition("b", "!=", const("null", "null")),
        Condition("c", "IN", (const("integer", "1"), const("integer", "2"))),
        Condition("d", ">", const("integer", "3")),
    )


def test_update_without_where_is_a_syntax_error() -> None:
    assert "mismatched input '<EOF>'" in error_of("UPDATE t SET a = 1")


# ---------------------------------------------------------------- DELETE


def test_delete_whole_row() -> None:
    assert parse("DELETE FROM ks.t WHERE k = ?") == Delete(
        "ks", "t", (), (Relation(("k",), "=", q(0)),), bind_count=1
    )


def test_delete_columns_and_elements() -> None:
    statement = parse_delete("DELETE a, m[?], l[0] FROM t WHERE k = ?")
    assert statement.columns == (
        DeleteTarget("a"),
        DeleteTarget("m", q(0)),
        DeleteTarget("l", const("integer", "0")),
    )
    assert statement.where == (Relation(("k",), "=", q(1)),)


def test_delete_clustering_range_with_timestamp_and_conditions() -> None:
    statement = parse_delete(
        "DELETE FROM t USING TIMESTAMP 5 WHERE k = 1 AND c >= 2 AND c < 9 IF v = 3"
    )
    assert statement.timestamp == const("integer", "5")
    assert len(statement.where) == 3
    assert statement.conditions == (Condition("v", "=", const("integer", "3")),)


def test_delete_if_exists() -> None:
    assert parse_delete("DELETE FROM t WHERE k = 1 IF EXISTS").if_exists


def test_delete_using_ttl_is_a_syntax_error() -> None:
    assert "mismatched input 'TTL'" in error_of("DELETE FROM t USING TTL 5 WHERE k = 1")


# ---------------------------------------------------------------- BATCH


def test_batch_numbers_markers_across_statements_and_counts_each() -> None:
    statement = parse(
        "BEGIN BATCH USING TIMESTAMP ? "
        "INSERT INTO t (a, b) VALUES (?, ?); "
        "UPDATE t SET b = ? WHERE a = ?; "
        "DELETE FROM t WHERE a = ? "
        "APPLY BATCH;"
    )
    assert isinstance(statement, Batch)
    assert statement.kind == "LOGGED"
    assert statement.timestamp == q(0)
    assert statement.bind_count == 6
    insert, update, delete = statement.statements
    assert isinstance(insert, Insert)
    assert isinstance(update, Update)
    assert isinstance(delete, Delete)
    assert insert.values == (q(1), q(2))
    assert update.assignments[0].value == q(3)
    assert update.where[0] == Relation(("a",), "=", q(4))
    assert delete.where[0] == Relation(("a",), "=", q(5))
    assert [s.bind_count for s in statement.statements] == [2, 2, 1]


@pytest.mark.parametrize(("word", "kind"), [("UNLOGGED", "UNLOGGED"), ("counter", "COUNTER")])
def test_batch_kinds(word: str, kind: str) -> None:
    statement = parse(f"BEGIN {word} BATCH UPDATE c SET n = n + 1 WHERE k = 1 APPLY BATCH")
    assert isinstance(statement, Batch)
    assert statement.kind == kind


def test_empty_batch_parses() -> None:
    assert parse("BEGIN BATCH APPLY BATCH") == Batch("LOGGED", ())


def test_conditional_statements_inside_a_batch_keep_their_conditions() -> None:
    batch = parse(
        "BEGIN BATCH INSERT INTO t (a) VALUES (1) IF NOT EXISTS; "
        "UPDATE t SET b = 2 WHERE a = 1 IF b = 1; APPLY BATCH"
    )
    assert isinstance(batch, Batch)
    insert, update = batch.statements
    assert isinstance(insert, Insert)
    assert insert.if_not_exists
    assert isinstance(update, Update)
    assert update.conditions == (Condition("b", "=", Constant("integer", "1")),)


def test_select_inside_batch_is_a_syntax_error() -> None:
    assert "mismatched input 'SELECT'" in error_of("BEGIN BATCH SELECT * FROM t APPLY BATCH")


# ---------------------------------------------------------------- DDL


def test_create_keyspace_with_replication_and_durable_writes() -> None:
    statement = parse(
        "CREATE KEYSPACE IF NOT EXISTS chat WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1} AND durable_writes = false"
    )
    assert statement == CreateKeyspace(
        "chat",
        True,
        {"class": "SimpleStrategy", "replication_factor": "1"},
        durable_writes=False,
    )


def test_create_keyspace_without_replication_leaves_the_defaults_to_the_engine() -> None:
    statement = parse("CREATE KEYSPACE k WITH durable_writes = true")
    assert isinstance(statement, CreateKeyspace)
    assert statement.replication == {}
    assert statement.durable_writes is True


def test_create_keyspace_unknown_property_is_a_syntax_error() -> None:
    with pytest.raises(CqlSyntaxError, match="Unknown property 'colour'"):
        parse("CREATE KEYSPACE k WITH replication = {'class': 'X'} AND colour = 'red'")


def test_drop_keyspace() -> None:
    assert parse("DROP KEYSPACE IF EXISTS chat") == DropKeyspace("chat", True)
    assert parse("drop keyspace chat;") == DropKeyspace("chat", False)


def test_create_table_with_inline_primary_key() -> None:
    statement = parse("CREATE TABLE users (id uuid PRIMARY KEY, name text, age int)")
    assert statement == CreateTable(
        keyspace=None,
        name="users",
        if_not_exists=False,
        columns=(
            ColumnDef("id", CqlType("uuid")),
            ColumnDef("name", CqlType("text")),
            ColumnDef("age", CqlType("int")),
        ),
        partition_key=("id",),
        clustering=(),
        clustering_order=(),
        options={},
    )


def test_create_table_compound_key_clustering_order_and_options() -> None:
    statement = parse_table(
        "CREATE TABLE IF NOT EXISTS chat.messages ("
        "  event_id uuid, bucket int, sent timeuuid, seq bigint, body text, s text static,"
        "  PRIMARY KEY ((event_id, bucket), sent, seq)"
        ") WITH CLUSTERING ORDER BY (sent DESC) AND default_time_to_live = 86400"
        "  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_size': 1}"
        "  AND comment = 'chat' AND gc_grace_seconds = 0 AND crc_check_chance = 0.5"
        "  AND cdc = false"
    )
    assert statement.if_not_exists
    assert (statement.keyspace, statement.name) == ("chat", "messages")
    assert statement.partition_key == ("event_id", "bucket")
    assert statement.clustering == ("sent", "seq")
    assert statement.clustering_order == (("sent", "DESC"), ("seq", "ASC"))
    assert statement.columns[-1] == ColumnDef("s", CqlType("text"), static=True)
    assert statement.options == {
        "default_time_to_live": 86400,
        "compaction": {
            "class": "TimeWindowCompactionStrategy",
            "compaction_window_size": "1",
        },
        "comment": "chat",
        "gc_grace_seconds": 0,
        "crc_check_chance": 0.5,
        "cdc": False,
    }


def test_create_table_single_partition_key_in_primary_key_clause() -> None:
    statement = parse_table("CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a, b, c))")
    assert statement.partition_key == ("a",)
    assert statement.clustering == ("b", "c")
    assert statement.clustering_order == (("b", "ASC"), ("c", "ASC"))


def test_create_table_collection_types_have_canonical_text() -> None:
    statement = parse_table(
        "CREATE TABLE t (k int PRIMARY KEY, l list<text>, s SET<int>, "
        "m map<text, frozen<list<int>>>, f frozen<map<int, text>>, "
        "tu tuple<int, text, list<int>>, n frozen<list<set<int>>>, c counter)"
    )
    assert [str(column.type) for column in statement.columns] == [
        "int",
        "list<text>",
        "set<int>",
        "map<text, frozen<list<int>>>",
        "frozen<map<int, text>>",
        "tuple<int, text, list<int>>",
        "frozen<list<set<int>>>",
        "counter",
    ]


@pytest.mark.parametrize(
    "type_text",
    [
        "ascii",
        "text",
        "varchar",
        "int",
        "bigint",
        "smallint",
        "tinyint",
        "varint",
        "boolean",
        "float",
        "double",
        "decimal",
        "timestamp",
        "date",
        "time",
        "uuid",
        "timeuuid",
        "blob",
        "inet",
        "duration",
        "counter",
    ],
)
def test_every_native_type_is_accepted_case_insensitively(type_text: str) -> None:
    statement = parse_table(f"CREATE TABLE t (k int PRIMARY KEY, v {type_text.upper()})")
    assert statement.columns[1].type == CqlType(type_text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CREATE TABLE t (a int, b int)", "No PRIMARY KEY"),
        ("CREATE TABLE t (a int PRIMARY KEY, b int PRIMARY KEY)", "Multiple PRIMARY KEYs"),
        ("CREATE TABLE t (a int, PRIMARY KEY (a, z))", "Unknown definition z"),
        ("CREATE TABLE t (a int, a text, PRIMARY KEY (a))", "Multiple definition of identifier a"),
        ("CREATE TABLE t (a int PRIMARY KEY, s int static)", "Static column s"),
        (
            "CREATE TABLE t (a int, b int, PRIMARY KEY (a, b)) WITH CLUSTERING ORDER BY (a DESC)",
            "Only clustering key columns",
        ),
        (
            "CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a, b, c)) "
            "WITH CLUSTERING ORDER BY (c DESC, b ASC)",
            "order of columns in the CLUSTERING ORDER",
        ),
        ("CREATE TABLE t (a int PRIMARY KEY, b list<list<int>>)", "Non-frozen collections"),
        ("CREATE TABLE t (a int PRIMARY KEY, b frozen<int>)", "frozen<> is only allowed"),
        ("CREATE TABLE t (a int PRIMARY KEY, b set<counter>)", "Counters are not allowed"),
        ("CREATE TABLE t (a int PRIMARY KEY, b varchar2)", "Unknown type varchar2"),
    ],
)
def test_invalid_table_definitions_are_invalid_requests(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "CREATE TABLE t (a int PRIMARY KEY, b map<int>)",
        "CREATE TABLE t (a int PRIMARY KEY, b list<int, int>)",
        "CREATE TABLE t (a int PRIMARY KEY, b int<text>)",
    ],
)
def test_wrong_type_parameter_counts_are_syntax_errors(text: str) -> None:
    with pytest.raises(CqlSyntaxError):
        parse(text)


def test_compact_storage_is_refused_by_name() -> None:
    message = error_of("CREATE TABLE t (a int PRIMARY KEY, b int) WITH COMPACT STORAGE")
    assert message == "line 1:47 unsupported construct: COMPACT STORAGE"


def test_drop_table() -> None:
    assert parse("DROP TABLE IF EXISTS ks.t") == DropTable("ks", "t", True)
    assert parse("DROP TABLE t") == DropTable(None, "t", False)


def test_alter_table_add_one_or_several_columns() -> None:
    assert parse("ALTER TABLE ks.t ADD c text") == AlterTableAdd(
        "ks", "t", (ColumnDef("c", CqlType("text")),)
    )
    assert parse("ALTER TABLE t ADD (c text, d set<int> static)") == AlterTableAdd(
        None,
        "t",
        (ColumnDef("c", CqlType("text")), ColumnDef("d", CqlType("set", (CqlType("int"),)), True)),
    )


@pytest.mark.parametrize("verb", ["DROP", "RENAME", "ALTER", "WITH"])
def test_other_alter_table_forms_are_refused_by_name(verb: str) -> None:
    assert f"unsupported construct: ALTER TABLE {verb}" in error_of(f"ALTER TABLE t {verb} x")


@pytest.mark.parametrize("text", ["TRUNCATE ks.t", "TRUNCATE TABLE ks.t", "truncate table ks.t;"])
def test_truncate_with_or_without_table_keyword(text: str) -> None:
    assert parse(text) == Truncate("ks", "t")


def test_use_keeps_quoted_case() -> None:
    assert parse("USE chat") == Use("chat")
    assert parse('USE "Chat"') == Use("Chat")
    assert parse("USE Chat") == Use("chat")
