"""The CQL parser's lexical side and its failures: identifiers, literals, comments, bind
markers, error messages, and property tests over random input. Statement forms are in
``test_parser.py``."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.embedded.cql.ast import (
    Assignment,
    Condition,
    FunctionCall,
    ListLiteral,
    MapLiteral,
    Relation,
    Selector,
    SetLiteral,
    TupleLiteral,
)
from chat.embedded.cql.errors import CqlError, CqlSyntaxError
from chat.embedded.cql.parser import parse
from tests.cql.parsing import (
    const,
    error_of,
    parse_insert,
    parse_select,
    parse_table,
    parse_update,
    q,
)


def value_of(text: str) -> object:
    """The AST of one value, parsed in an INSERT."""
    return parse_insert(f"INSERT INTO t (c) VALUES ({text})").values[0]


# ---------------------------------------------------------------- unsupported statements


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("CREATE INDEX ON t (a)", "CREATE INDEX"),
        ("create custom index i on t (a) using 'x'", "CREATE CUSTOM INDEX"),
        ("CREATE MATERIALIZED VIEW v AS SELECT * FROM t", "CREATE MATERIALIZED VIEW"),
        ("CREATE TYPE addr (street text)", "CREATE TYPE"),
        ("CREATE FUNCTION f() RETURNS NULL ON NULL INPUT", "CREATE FUNCTION"),
        ("CREATE OR REPLACE FUNCTION f()", "CREATE OR REPLACE FUNCTION"),
        ("CREATE AGGREGATE a", "CREATE AGGREGATE"),
        ("CREATE ROLE r", "CREATE ROLE"),
        ("CREATE USER u", "CREATE USER"),
        ("CREATE TRIGGER tr ON t USING 'x'", "CREATE TRIGGER"),
        ("DROP INDEX i", "DROP INDEX"),
        ("DROP MATERIALIZED VIEW v", "DROP MATERIALIZED VIEW"),
        ("DROP TYPE addr", "DROP TYPE"),
        ("ALTER KEYSPACE k WITH durable_writes = false", "ALTER KEYSPACE"),
        ("ALTER TYPE addr ADD zip text", "ALTER TYPE"),
        ("GRANT SELECT ON ks.t TO r", "GRANT"),
        ("REVOKE SELECT ON ks.t FROM r", "REVOKE"),
        ("LIST ROLES", "LIST"),
        ("SELECT JSON a FROM t", "SELECT JSON"),
    ],
)
def test_unsupported_statements_name_the_construct_and_position(text: str, construct: str) -> None:
    assert error_of(text) == f"line 1:0 unsupported construct: {construct}"


@pytest.mark.parametrize(
    ("text", "construct"),
    [
        ("SELECT a, count(*) FROM t GROUP BY a", "GROUP BY"),
        ("SELECT * FROM t WHERE a LIKE 'x%'", "LIKE"),
        ("SELECT * FROM t WHERE a IS NOT NULL", "IS NOT NULL"),
        ("SELECT * FROM t WHERE a = 1 AND m['k'] = 1", None),
    ],
)
def test_unsupported_clauses_are_syntax_errors(text: str, construct: str | None) -> None:
    message = error_of(text)
    if construct is not None:
        assert message.endswith(f"unsupported construct: {construct}")


def test_a_column_named_json_is_not_taken_for_select_json() -> None:
    assert "mismatched input 'FORM'" in error_of("SELECT json, a FORM t")
    assert parse_select("SELECT json AS j FROM t").selectors == (Selector("column", "json", "j"),)


def test_unsupported_construct_on_a_later_line_reports_that_line() -> None:
    assert error_of("SELECT a\nFROM t\n  GROUP BY a") == "line 3:2 unsupported construct: GROUP BY"


def test_only_count_takes_a_star() -> None:
    assert "only COUNT accepts '*'" in error_of("SELECT max(*) FROM t")


def test_literal_selectors_are_refused() -> None:
    assert "unsupported construct: literal 2" in error_of("SELECT count(2) FROM t")


def test_writetime_needs_exactly_one_column() -> None:
    assert "writetime() takes exactly one column name" in error_of("SELECT writetime(a, b) FROM t")


def test_function_other_than_token_on_left_of_relation_is_refused() -> None:
    assert "unsupported construct: function foo() in a relation" in error_of(
        "SELECT * FROM t WHERE foo(a) > 1"
    )


# ---------------------------------------------------------------- malformed input


def test_misspelled_keyword_names_the_token_and_position() -> None:
    assert error_of("SELECT * FORM t") == "line 1:9 mismatched input 'FORM' expecting FROM"


def test_unexpected_end_of_input_is_reported_at_the_end() -> None:
    assert error_of("SELECT * FROM t\nWHERE") == (
        "line 2:5 mismatched input '<EOF>' expecting '(', identifier"
    )


def test_stray_character_is_reported_with_its_position() -> None:
    assert error_of("SELECT # FROM t") == "line 1:7 no viable alternative at character '#'"


def test_unterminated_string_is_a_syntax_error() -> None:
    assert "no viable alternative at character" in error_of("SELECT * FROM t WHERE a = 'abc")


def test_bare_word_where_a_value_is_expected_is_refused() -> None:
    assert error_of("SELECT * FROM t WHERE a = b") == (
        "line 1:26 no viable alternative at input 'b' (a value was expected)"
    )


@pytest.mark.parametrize("text", ["", "   ", ";", "-- only a comment", "/* nothing */"])
def test_empty_statement_is_a_syntax_error(text: str) -> None:
    assert "mismatched input" in error_of(text)


def test_two_statements_are_refused() -> None:
    assert "mismatched input 'SELECT'" in error_of("SELECT * FROM t; SELECT * FROM u")


def test_syntax_errors_carry_the_protocol_syntax_code() -> None:
    with pytest.raises(CqlSyntaxError) as caught:
        parse("SELEKT")
    assert caught.value.code == 0x2000


# ---------------------------------------------------------------- identifiers


def test_unquoted_identifiers_are_lower_cased_everywhere() -> None:
    statement = parse_select("SELECT Body FROM Chat.Messages WHERE EventId = 1 ORDER BY SentAt")
    assert (statement.keyspace, statement.table) == ("chat", "messages")
    assert statement.selectors == (Selector("column", "body"),)
    assert statement.where[0].columns == ("eventid",)
    assert statement.order_by == (("sentat", "ASC"),)


def test_quoted_identifiers_keep_case_and_unescape_double_quotes() -> None:
    statement = parse_insert(
        'INSERT INTO "Ks"."My Table" ("Col", "we""ird", "select") VALUES (1, 2, 3)'
    )
    assert (statement.keyspace, statement.table) == ("Ks", "My Table")
    assert statement.columns == ("Col", 'we"ird', "select")


def test_keywords_are_case_insensitive() -> None:
    assert parse("sElEcT * fRoM t wHeRe a = 1 LiMiT 2") == parse(
        "SELECT * FROM t WHERE a = 1 LIMIT 2"
    )


@pytest.mark.parametrize(
    "column",
    [
        "key",
        "ttl",
        "timestamp",
        "type",
        "value",
        "values",
        "count",
        "token",
        "writetime",
        "json",
        "static",
        "filtering",
        "limit",
        "order",
        "keyspace",
        "table",
        "set",
        "list",
        "map",
        "frozen",
        "text",
        "date",
        "time",
        "exists",
        "in",
        "contains",
        "by",
        "batch",
    ],
)
def test_keywords_can_be_column_names_where_no_keyword_is_expected(column: str) -> None:
    insert = parse_insert(f"INSERT INTO t (k, {column}) VALUES (1, 2)")
    assert insert.columns == ("k", column)
    statement = parse_select(f"SELECT {column} FROM t WHERE {column} = 1")
    assert statement.where == (Relation((column,), "=", const("integer", "1")),)


def test_the_driver_key_column_is_not_mistaken_for_a_keyword() -> None:
    statement = parse_select("SELECT key, tokens FROM system.local WHERE key = 'local'")
    assert statement.selectors[0] == Selector("column", "key")


# ---------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'hello'", const("string", "hello")),
        ("'it''s'", const("string", "it's")),
        ("''", const("string", "")),
        ("'multi\nline'", const("string", "multi\nline")),
        ("$$it's $ fine$$", const("string", "it's $ fine")),
        ("42", const("integer", "42")),
        ("-42", const("integer", "-42")),
        ("3.25", const("float", "3.25")),
        ("-1.5e10", const("float", "-1.5e10")),
        ("2E-3", const("float", "2E-3")),
        ("NaN", const("float", "NaN")),
        ("Infinity", const("float", "Infinity")),
        ("-infinity", const("float", "-Infinity")),
        ("true", const("boolean", "true")),
        ("FALSE", const("boolean", "false")),
        ("null", const("null", "null")),
        (
            "62C36092-82A1-3A00-93D1-46196EE77204",
            const("uuid", "62c36092-82a1-3a00-93d1-46196ee77204"),
        ),
        ("0xCAFEbabe", const("hex", "0xCAFEbabe")),
        ("0x", const("hex", "0x")),
        ("1h30m", const("duration", "1h30m")),
        ("2000ms", const("duration", "2000ms")),
        ("3mo2w1d", const("duration", "3mo2w1d")),
        ("?", q(0)),
        (":name", q(0, "name")),
        (':"Name"', q(0, "Name")),
        ("[1, 2]", ListLiteral((const("integer", "1"), const("integer", "2")))),
        ("[]", ListLiteral(())),
        ("{1, 2}", SetLiteral((const("integer", "1"), const("integer", "2")))),
        ("{}", MapLiteral(())),
        ("{'a': 1}", MapLiteral(((const("string", "a"), const("integer", "1")),))),
        ("{?: :v}", MapLiteral(((q(0), q(1, "v")),))),
        ("(1, 'x')", TupleLiteral((const("integer", "1"), const("string", "x")))),
        (
            "[{1: [2]}]",
            ListLiteral(
                (MapLiteral(((const("integer", "1"), ListLiteral((const("integer", "2"),))),)),)
            ),
        ),
        ("now()", FunctionCall("now", ())),
        ("currentTimestamp()", FunctionCall("currenttimestamp", ())),
        ("toTimestamp(?)", FunctionCall("totimestamp", (q(0),))),
    ],
)
def test_literal_forms(text: str, expected: object) -> None:
    assert value_of(text) == expected


def test_negative_nan_is_refused() -> None:
    assert "no viable alternative at input '-NaN'" in error_of("INSERT INTO t (c) VALUES (-NaN)")


# ---------------------------------------------------------------- comments


def test_comments_of_every_kind_are_ignored() -> None:
    statement = parse(
        "-- leading comment\n"
        "SELECT a, /* inline\n comment */ b // trailing\n"
        "FROM t -- another\n"
        "WHERE a = 1;"
    )
    assert statement == parse("SELECT a, b FROM t WHERE a = 1")


def test_positions_count_lines_after_multiline_strings_and_comments() -> None:
    message = error_of("/* one\ntwo */ INSERT INTO t (a) VALUES ('x\ny', foo)")
    assert message == "line 3:4 no viable alternative at input 'foo' (a value was expected)"


# ---------------------------------------------------------------- bind markers


def test_bind_markers_are_numbered_in_text_order_across_clauses() -> None:
    statement = parse_update(
        "UPDATE t USING TTL ? SET a = ?, m[?] = ? WHERE k = ? AND c IN ? IF v = :old"
    )
    assert statement.ttl == q(0)
    assert statement.assignments[0].value == q(1)
    assert statement.assignments[1] == Assignment("m", "set", q(3), key=q(2))
    assert statement.where == (Relation(("k",), "=", q(4)), Relation(("c",), "IN", q(5)))
    assert statement.conditions == (Condition("v", "=", q(6, "old")),)
    assert statement.bind_count == 7


def test_bind_count_is_zero_for_statements_without_markers() -> None:
    for text in ["SELECT * FROM t", "USE k", "TRUNCATE t", "DROP TABLE t"]:
        assert parse(text).bind_count == 0


def test_each_parse_numbers_markers_from_zero() -> None:
    parse("SELECT * FROM t WHERE a = ? AND b = ?")
    assert parse_select("SELECT * FROM t WHERE a = ?").where[0] == Relation(("a",), "=", q(0))


@given(st.integers(min_value=1, max_value=40))
def test_insert_markers_are_numbered_zero_to_n(count: int) -> None:
    columns = ", ".join(f"c{i}" for i in range(count))
    markers = ", ".join("?" for _ in range(count))
    statement = parse_insert(f"INSERT INTO t ({columns}) VALUES ({markers})")
    assert statement.values == tuple(q(i) for i in range(count))
    assert statement.bind_count == count


# ---------------------------------------------------------------- properties

_unquoted = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True)
_quoted_name = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=20,
)


@given(_unquoted, _unquoted)
def test_unquoted_identifiers_round_trip_lower_cased(table: str, column: str) -> None:
    statement = parse_insert(f"INSERT INTO {table} ({column}) VALUES (1)")
    assert statement.table == table.lower()
    assert statement.columns == (column.lower(),)


@given(_quoted_name)
def test_quoted_identifiers_round_trip_exactly(name: str) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    statement = parse_select(f"SELECT {quoted} FROM {quoted} WHERE {quoted} = 1")
    assert statement.table == name
    assert statement.selectors == (Selector("column", name),)
    assert statement.where[0].columns == (name,)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_string_literals_round_trip(text: str) -> None:
    assert value_of("'" + text.replace("'", "''") + "'") == const("string", text)


@given(st.integers())
def test_integer_literals_round_trip(number: int) -> None:
    assert value_of(str(number)) == const("integer", str(number))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_literals_round_trip(number: float) -> None:
    text = repr(number)
    expected_kind = "float" if ("." in text or "e" in text) else "integer"
    assert value_of(text) == const(expected_kind, text)


@given(st.uuids())
def test_uuid_literals_round_trip(value: object) -> None:
    assert value_of(str(value)) == const("uuid", str(value))


@given(st.binary(max_size=32))
def test_blob_literals_round_trip(data: bytes) -> None:
    assert value_of("0x" + data.hex()) == const("hex", "0x" + data.hex())


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_arbitrary_text_never_raises_anything_but_a_syntax_error(text: str) -> None:
    with contextlib.suppress(CqlSyntaxError):
        parse(text)


_SOUP = (
    "SELECT INSERT UPDATE DELETE BEGIN BATCH APPLY CREATE DROP ALTER TABLE KEYSPACE FROM WHERE "
    "AND IN INTO VALUES SET IF NOT EXISTS USING TTL TIMESTAMP PRIMARY KEY WITH ORDER BY ASC "
    "DESC LIMIT ALLOW FILTERING token count a b c t ks ? :x 1 -1 2.5 'x' true null now ( ) , "
    "; . = < > <= >= != + - * [ ] { } : int text list map frozen < >"
)
_CQL_WORDS = tuple(_SOUP.split())


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_CQL_WORDS), max_size=25))
def test_random_cql_token_soup_raises_only_cql_errors(words: list[str]) -> None:
    with contextlib.suppress(CqlError):
        parse(" ".join(words))


@given(st.lists(st.sampled_from(string.ascii_lowercase), min_size=1, max_size=6, unique=True))
def test_create_table_partition_key_order_is_kept(names: list[str]) -> None:
    columns = ", ".join(f"{name} int" for name in names)
    statement = parse_table(f"CREATE TABLE t ({columns}, PRIMARY KEY (({', '.join(names)})))")
    assert statement.partition_key == tuple(names)
    assert statement.clustering == ()
