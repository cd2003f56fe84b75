"""Values as ScyllaDB takes them, through the driver: validation, exact decimals, dates, times.

Written from ScyllaDB's documented behaviour (its cqlpy suite: test_validation.py,
test_decimal.py, test_type_timestamp.py, test_frozen_collection.py, test_null.py) and the
marshaling messages of its type validators.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from cassandra import InvalidRequest, cqltypes
from cassandra.cluster import Session
from cassandra.util import Date

from tests.cql.test_driver_statements import rows


@pytest.fixture
def patched_serializers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the driver send what ScyllaDB must refuse (it checks ascii itself)."""
    monkeypatch.setattr(
        cqltypes.AsciiType, "serialize", staticmethod(lambda v, _pv: v.encode("utf-8"))
    )
    monkeypatch.setattr(
        cqltypes.UTF8Type,
        "serialize",
        staticmethod(lambda v, _pv: v.encode("utf-8", errors="surrogateescape")),
    )


def test_non_ascii_is_refused_in_ascii_columns_bound_or_literal(
    ks_session: Session, patched_serializers: None
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, a ascii, t text)")
    insert = ks_session.prepare("INSERT INTO t (k, a) VALUES (1, ?)")
    ks_session.execute(insert, ["hello\x00"])
    with pytest.raises(
        InvalidRequest,
        match="Exception while binding column a: marshaling error: Validation failed - "
        "non-ASCII character in an ASCII string",
    ):
        ks_session.execute(insert, ["שלום"])
    with pytest.raises(InvalidRequest, match="Invalid ASCII character"):
        ks_session.execute("INSERT INTO t (k, a) VALUES (1, 'שלום')")
    assert rows(ks_session, "SELECT a FROM t") == [("hello\x00",)]


@pytest.mark.parametrize(
    "bad", [b"\xc0\x80", b"\xe0\x80\x80", b"\x80", b"\xc2", b"\xf4\x90\x80\x80", b"\xed\xa0\x80"]
)
def test_invalid_utf8_is_refused_in_text_columns(
    ks_session: Session, patched_serializers: None, bad: bytes
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, t text)")
    insert = ks_session.prepare("INSERT INTO t (k, t) VALUES (1, ?)")
    ks_session.execute(insert, ["שלום"])
    with pytest.raises(
        InvalidRequest, match="non-UTF8 character in a UTF8 string, at byte offset 0"
    ):
        ks_session.execute(insert, [bad.decode("utf-8", errors="surrogateescape")])
    assert rows(ks_session, "SELECT t FROM t") == [("שלום",)]


def test_null_inside_a_collection_is_refused(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int PRIMARY KEY, v list<text>)")
    with pytest.raises(InvalidRequest, match="null"):
        ks_session.execute("INSERT INTO t (p, v) VALUES (1, ['hi', null])")
    with pytest.raises(InvalidRequest, match="null"):
        ks_session.execute(ks_session.prepare("INSERT INTO t (p, v) VALUES (1, ?)"), [["a", None]])


def test_frozen_sets_and_maps_are_keys_whatever_order_they_are_sent_in(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE nested (k frozen<map<frozen<set<int>>, int>> PRIMARY KEY)")
    insert = ks_session.prepare("INSERT INTO nested (k) VALUES (?)")
    lookup = ks_session.prepare("SELECT * FROM nested WHERE k = ?")
    ks_session.execute(insert, [{(3, 1, 2): 1}])  # a tuple keeps the unsorted order on the wire
    assert len(rows(ks_session, lookup, [{(1, 2, 3): 1}])) == 1
    assert len(rows(ks_session, lookup, [{(2, 3, 1): 1}])) == 1
    assert len(rows(ks_session, "SELECT * FROM nested WHERE k = {{3, 2, 1}: 1}")) == 1
    ks_session.execute("CREATE TABLE s (k frozen<set<int>> PRIMARY KEY)")
    ks_session.execute(ks_session.prepare("INSERT INTO s (k) VALUES (?)"), [(5, 4, 6)])
    (row,) = rows(ks_session, "SELECT k FROM s")
    assert list(row[0]) == [4, 5, 6]
    assert len(rows(ks_session, "SELECT * FROM s WHERE k = {6, 5, 4}")) == 1


def test_frozen_collections_order_as_clustering_keys_element_by_element(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (a int, b frozen<list<int>>, PRIMARY KEY (a, b))")
    for value in ([5], [1, 2], [1], [-3, 9], [1, 2, 0]):
        ks_session.execute(ks_session.prepare("INSERT INTO t (a, b) VALUES (0, ?)"), [value])
    assert [r[0] for r in rows(ks_session, "SELECT b FROM t")] == [
        [-3, 9],
        [1],
        [1, 2],
        [1, 2, 0],
        [5],
    ]
    ks_session.execute(
        "CREATE TABLE r (a int, b frozen<set<int>>, PRIMARY KEY (a, b)) "
        "WITH CLUSTERING ORDER BY (b DESC)"
    )
    ks_session.execute("INSERT INTO r (a, b) VALUES (0, {1, 2, 3})")
    ks_session.execute(ks_session.prepare("INSERT INTO r (a, b) VALUES (?, ?)"), [0, {2, 3, 4}])
    assert rows(ks_session, "SELECT * FROM r") == [(0, {2, 3, 4}), (0, {1, 2, 3})]


def test_decimals_keep_their_digits_and_order_numerically(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c decimal, PRIMARY KEY (p, c))")
    inline = ["1e309", "19866597869857659876855e1000000000"]
    for n in inline:
        ks_session.execute(f"INSERT INTO t (p, c) VALUES (1, {n})")
    assert rows(ks_session, "SELECT c FROM t WHERE p = 1") == [(Decimal(n),) for n in inline]
    precise = [
        "3.14159265358979323846264338327950288419716939937510",
        "314159265358979323846264338327950288419716939937510",
    ]
    for n in precise:
        ks_session.execute(f"INSERT INTO t (p, c) VALUES (2, {n})")
    assert rows(ks_session, "SELECT c FROM t WHERE p = 2") == [(Decimal(n),) for n in precise]
    bound = [
        Decimal("-19866597869857659876855e1000000000"),
        Decimal("-19866597869857659876855e-1000000000"),
        Decimal("19866597869857659876855e-1000000000"),
        Decimal("19866597869857659876855e1000000000"),
    ]
    insert = ks_session.prepare("INSERT INTO t (p, c) VALUES (3, ?)")
    for d in reversed(bound):
        ks_session.execute(insert, [d])
    assert rows(ks_session, "SELECT c FROM t WHERE p = 3") == [(d,) for d in bound]
    for n in ("1e2147483649", "-1e-2147483648", "1.1e-2147483647"):
        with pytest.raises(InvalidRequest, match="BigDecimal"):
            ks_session.execute(f"INSERT INTO t (p, c) VALUES (4, {n})")


def test_equal_decimals_are_one_clustering_key_but_distinct_partition_keys(
    ks_session: Session,
) -> None:
    d1 = Decimal("1230")
    d2 = Decimal("1.23E+3")
    d3 = Decimal((0, (1, 2, 3, 0, 0), -1))
    ks_session.execute("CREATE TABLE t (p decimal, c decimal, v text, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
    ks_session.execute(insert, [d1, d1, "a"])
    ks_session.execute(insert, [d1, d2, "b"])  # same clustering value: overwrites
    ks_session.execute(insert, [d1, Decimal("456"), "c"])
    ks_session.execute(insert, [d2, d1, "d"])  # other bytes: another partition
    by_partition = ks_session.prepare("SELECT c, v FROM t WHERE p = ?")
    got = {r.v: r.c for r in ks_session.execute(by_partition, [d1])}
    assert set(got) == {"b", "c"}
    assert got["b"].as_tuple() == d1.as_tuple()  # the first writer's representation stays
    assert [r.v for r in ks_session.execute(by_partition, [d2])] == ["d"]
    assert list(ks_session.execute(by_partition, [d3])) == []
    cross = ks_session.prepare("SELECT v FROM t WHERE p = ? AND c = ?")
    assert [r.v for r in ks_session.execute(cross, [d2, d3])] == ["d"]
    ks_session.execute("CREATE TABLE f (p int PRIMARY KEY, v decimal)")
    ks_session.execute(ks_session.prepare("INSERT INTO f (p, v) VALUES (?, ?)"), [1, d1])
    ks_session.execute(ks_session.prepare("INSERT INTO f (p, v) VALUES (?, ?)"), [2, d2])
    select = ks_session.prepare("SELECT p FROM f WHERE v = ? ALLOW FILTERING")
    assert sorted(r.p for r in ks_session.execute(select, [d3])) == [1, 2]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2011-02-03 04:05+0000", datetime.datetime(2011, 2, 3, 4, 5)),
        ("2011-02-03 04:05:12+0000", datetime.datetime(2011, 2, 3, 4, 5, 12)),
        ("2011-02-03 04:05:12.345+0000", datetime.datetime(2011, 2, 3, 4, 5, 12, 345000)),
        ("2011-02-03T05:06:17.123+0000", datetime.datetime(2011, 2, 3, 5, 6, 17, 123000)),
        ("2011-02-03T05:06:17.1+02:00", datetime.datetime(2011, 2, 3, 3, 6, 17, 100000)),
        ("2011-02-03 04:05-0130", datetime.datetime(2011, 2, 3, 5, 35)),
        ("2011-02-03+0000", datetime.datetime(2011, 2, 3)),
        ("2011-02-03 UTC", datetime.datetime(2011, 2, 3)),
        ("2011-02-03 GMT", datetime.datetime(2011, 2, 3)),
        ("2011-02-03z", datetime.datetime(2011, 2, 3)),
        ("2011-02-03Z", datetime.datetime(2011, 2, 3)),
        ("2011-02-03  Z ", datetime.datetime(2011, 2, 3)),
    ],
)
def test_timestamp_literals_in_every_format_scylla_accepts(
    ks_session: Session, literal: str, expected: datetime.datetime
) -> None:
    ks_session.execute("CREATE TABLE IF NOT EXISTS ts (p int PRIMARY KEY, t timestamp)")
    ks_session.execute(f"INSERT INTO ts (p, t) VALUES (1, '{literal}')")
    assert rows(ks_session, "SELECT t FROM ts WHERE p = 1") == [(expected,)]


def test_timestamp_literals_scylla_refuses(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE ts (p int PRIMARY KEY, t timestamp)")
    ks_session.execute("INSERT INTO ts (p, t) VALUES (1, '2011-02-03 04:05:12.345')")  # local
    with pytest.raises(InvalidRequest, match=r"Milliseconds length exceeds expected \(6\)"):
        ks_session.execute("INSERT INTO ts (p, t) VALUES (1, '2011-02-03 04:05:12.345678+0000')")
    with pytest.raises(InvalidRequest, match="unable to parse date"):
        ks_session.execute("INSERT INTO ts (p, t) VALUES (1, 'an invalid timestamp')")
    with pytest.raises(InvalidRequest, match="Unable to parse timezone"):
        ks_session.execute("INSERT INTO ts (p, t) VALUES (1, '2011-02-03 04:05 Mars')")
    ks_session.execute("INSERT INTO ts (p, t) VALUES (2, 1667215862123)")
    assert rows(ks_session, "SELECT t FROM ts WHERE p = 2") == [
        (datetime.datetime(2022, 10, 31, 11, 31, 2, 123000),)
    ]


def test_date_literals_and_integers_within_scylla_s_range(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE d (p int PRIMARY KEY, d date)")
    ks_session.execute("INSERT INTO d (p, d) VALUES (1, '2020-02-29')")
    ks_session.execute("INSERT INTO d (p, d) VALUES (2, 2147483648)")  # the raw day number
    ks_session.execute("INSERT INTO d (p, d) VALUES (3, '-5877641-06-23')")
    ks_session.execute("INSERT INTO d (p, d) VALUES (4, '5881580-07-11')")
    got: dict[int, Any] = {r.p: r.d for r in ks_session.execute("SELECT p, d FROM d")}
    assert got[1] == Date(datetime.date(2020, 2, 29))
    assert got[2] == Date(0)
    assert got[3].days_from_epoch == -(2**31)
    assert got[4].days_from_epoch == 2**31 - 1
    with pytest.raises(InvalidRequest, match="greater than max supported date 5881580-07-11"):
        ks_session.execute("INSERT INTO d (p, d) VALUES (5, '5881580-07-12')")
    with pytest.raises(InvalidRequest, match="less than min supported date -5877641-06-23"):
        ks_session.execute("INSERT INTO d (p, d) VALUES (5, '-5877641-06-22')")
    for bad in ("4294967296", "-1"):
        with pytest.raises(InvalidRequest, match="out of bounds"):
            ks_session.execute(f"INSERT INTO d (p, d) VALUES (5, {bad})")
    with pytest.raises(InvalidRequest, match="to a formatted date"):
        ks_session.execute("INSERT INTO d (p, d) VALUES (5, '2021-02-29')")


def test_fixed_size_values_of_the_wrong_length_are_refused_with_scylla_s_message(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, i int, b bigint, s smallint, u uuid)")
    for column, size, message in (
        ("i", 3, "Validation failed for type org.apache.cassandra.db.marshal.Int32Type: got 3"),
        ("b", 4, "Validation failed for type org.apache.cassandra.db.marshal.LongType: got 4"),
        ("s", 3, r"Expected 2 bytes for a smallint \(3\)"),
        ("u", 15, "Validation failed for uuid - got 15 bytes"),
    ):
        insert = ks_session.prepare(f"INSERT INTO t (k, {column}) VALUES (1, ?)")
        insert.column_metadata[0] = insert.column_metadata[0]._replace(type=cqltypes.BytesType)
        with pytest.raises(
            InvalidRequest, match=f"Exception while binding column {column}: marshaling error: "
        ) as refused:
            ks_session.execute(insert, [b"\x00" * size])
        assert refused.match(message)
