"""Every statement form of the supported subset, end to end through the scylla-driver."""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid
from typing import Any

import pytest
from cassandra import AlreadyExists, InvalidRequest
from cassandra.cluster import Session
from cassandra.cqltypes import Int32Type
from cassandra.metadata import Murmur3Token
from cassandra.protocol import SyntaxException
from cassandra.query import BatchStatement, BatchType, SimpleStatement
from cassandra.util import uuid_from_time


def rows(session: Session, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in session.execute(query, params)]


def test_create_table_with_compound_keys_and_clustering_order(ks_session: Session) -> None:
    ks_session.execute(
        "CREATE TABLE msgs (room text, day int, at timeuuid, body text, "
        "PRIMARY KEY ((room, day), at)) WITH CLUSTERING ORDER BY (at DESC) "
        "AND comment = 'chat messages'"
    )
    first, second = uuid_from_time(1_700_000_000), uuid_from_time(1_700_000_001)
    insert = ks_session.prepare("INSERT INTO msgs (room, day, at, body) VALUES (?, ?, ?, ?)")
    ks_session.execute(insert, ["r", 1, first, "one"])
    ks_session.execute(insert, ["r", 1, second, "two"])
    got = rows(ks_session, "SELECT body FROM msgs WHERE room = 'r' AND day = 1")
    assert got == [("two",), ("one",)]


def test_if_not_exists_and_if_exists_ddl_are_idempotent(ks_session: Session, keyspace: str) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    ks_session.execute("CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY, v text)")
    ks_session.execute("DROP TABLE t")
    ks_session.execute("DROP TABLE IF EXISTS t")
    ks_session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )


def test_alter_table_add_and_truncate(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    ks_session.execute("INSERT INTO t (k, v) VALUES (1, 'a')")
    ks_session.execute("ALTER TABLE t ADD extra bigint")
    ks_session.execute("UPDATE t SET extra = 7 WHERE k = 1")
    assert rows(ks_session, "SELECT k, v, extra FROM t") == [(1, "a", 7)]
    ks_session.execute("TRUNCATE t")
    assert rows(ks_session, "SELECT * FROM t") == []


def test_use_switches_the_connection_keyspace(session: Session, keyspace: str) -> None:
    session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY)")
    session.execute(f"INSERT INTO {keyspace}.t (k) VALUES (5)")
    other = session.cluster.connect()
    try:
        other.execute(f"USE {keyspace}")
        assert rows(other, "SELECT k FROM t") == [(5,)]
    finally:
        other.shutdown()


def test_every_scalar_and_collection_type_round_trips(ks_session: Session) -> None:
    ks_session.execute(
        "CREATE TABLE types (k int PRIMARY KEY, a ascii, t text, vc varchar, b bigint, "
        "s smallint, bo boolean, f float, d double, de decimal, ts timestamp, dt date, "
        "u uuid, tu timeuuid, bl blob, ip inet, l list<int>, st set<text>, "
        "m map<text, int>, fl frozen<list<text>>)"
    )
    values = [
        1,
        "ascii",
        "text ü",
        "varchar",
        2**40,
        12,
        True,
        1.5,
        2.25,
        decimal.Decimal("3.14"),
        datetime.datetime(2024, 5, 1, 12, 30),
        datetime.date(2024, 5, 1),
        uuid.uuid4(),
        uuid_from_time(1_700_000_000),
        b"\x00\x01",
        ipaddress.ip_address("10.0.0.1"),
        [1, 2, 2],
        {"x", "y"},
        {"a": 1},
        ["f"],
    ]
    columns = "k, a, t, vc, b, s, bo, f, d, de, ts, dt, u, tu, bl, ip, l, st, m, fl"
    marks = ", ".join("?" * len(values))
    ks_session.execute(
        ks_session.prepare(f"INSERT INTO types ({columns}) VALUES ({marks})"), values
    )
    (row,) = rows(ks_session, f"SELECT {columns} FROM types WHERE k = 1")
    expected = list(values)
    expected[11] = row[11]  # the driver returns cassandra.util.Date for `date`
    expected[15] = "10.0.0.1"
    assert str(row[11]) == "2024-05-01"
    assert list(row[:17]) == expected[:17]
    assert set(row[17]) == {"x", "y"}
    assert dict(row[18]) == {"a": 1}
    assert list(row[19]) == ["f"]


def test_insert_using_ttl_and_timestamp_and_writetime_ttl_functions(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    ks_session.execute("INSERT INTO t (k, v) VALUES (1, 'a') USING TTL 1000 AND TIMESTAMP 123")
    ((writetime, ttl),) = rows(ks_session, "SELECT writetime(v), ttl(v) FROM t WHERE k = 1")
    assert writetime == 123
    assert 990 < ttl <= 1000
    # An older timestamp loses: last write wins per cell.
    ks_session.execute("INSERT INTO t (k, v) VALUES (1, 'old') USING TIMESTAMP 100")
    assert rows(ks_session, "SELECT v FROM t WHERE k = 1") == [("a",)]


def test_insert_if_not_exists_reports_applied(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    first = ks_session.execute("INSERT INTO t (k, v) VALUES (1, 'a') IF NOT EXISTS")
    assert first.was_applied
    second = ks_session.execute("INSERT INTO t (k, v) VALUES (1, 'b') IF NOT EXISTS")
    assert not second.was_applied
    assert rows(ks_session, "SELECT v FROM t WHERE k = 1") == [("a",)]


def test_update_forms_set_counter_list_map_and_conditions(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text, l list<int>, m map<text, int>)")
    ks_session.execute("CREATE TABLE c (k int PRIMARY KEY, n counter)")
    ks_session.execute("UPDATE t USING TTL 100 SET v = 'a', l = [1] WHERE k = 1")
    ks_session.execute("UPDATE t SET l = l + [2], m['x'] = 5 WHERE k = 1")
    assert rows(ks_session, "SELECT v, l, m FROM t WHERE k = 1") == [("a", [1, 2], {"x": 5})]
    counter = ks_session.prepare("UPDATE c SET n = n + ? WHERE k = ?")
    ks_session.execute(counter, [5, 1])
    ks_session.execute("UPDATE c SET n = n - 2 WHERE k = 1")
    assert rows(ks_session, "SELECT n FROM c WHERE k = 1") == [(3,)]
    assert ks_session.execute("UPDATE t SET v = 'b' WHERE k = 1 IF v = 'a'").was_applied
    assert not ks_session.execute("UPDATE t SET v = 'c' WHERE k = 1 IF v = 'a'").was_applied
    assert not ks_session.execute("UPDATE t SET v = 'x' WHERE k = 9 IF EXISTS").was_applied
    assert ks_session.execute("UPDATE t SET v = 'd' WHERE k = 1 IF EXISTS").was_applied
    assert rows(ks_session, "SELECT v FROM t WHERE k = 1") == [("d",)]


def test_delete_row_columns_and_clustering_range(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v text, w text, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c, v, w) VALUES (?, ?, ?, ?)")
    for c in range(6):
        ks_session.execute(insert, [1, c, f"v{c}", f"w{c}"])
    ks_session.execute("DELETE w FROM t WHERE p = 1 AND c = 0")
    ks_session.execute("DELETE FROM t WHERE p = 1 AND c = 1")
    ks_session.execute("DELETE FROM t WHERE p = 1 AND c >= 3 AND c < 5")
    assert rows(ks_session, "SELECT c, v, w FROM t WHERE p = 1") == [
        (0, "v0", None),
        (2, "v2", "w2"),
        (5, "v5", "w5"),
    ]


@pytest.mark.parametrize("batch_type", [BatchType.LOGGED, BatchType.UNLOGGED])
def test_batches_of_prepared_and_simple_statements(
    ks_session: Session, batch_type: BatchType
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    insert = ks_session.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
    batch = BatchStatement(batch_type=batch_type)
    for k in range(16):
        batch.add(insert, (k, f"v{k}"))
    # Statements of a batch share one timestamp, so they must not touch the same cells.
    batch.add(SimpleStatement("UPDATE t SET v = 'updated' WHERE k = 100"))
    batch.add(SimpleStatement("DELETE FROM t WHERE k = %s"), (101,))
    ks_session.execute(batch)
    got = dict(rows(ks_session, "SELECT k, v FROM t"))
    assert got == {**{k: f"v{k}" for k in range(16)}, 100: "updated"}


def test_counter_batch(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE c (k int PRIMARY KEY, n counter)")
    add = ks_session.prepare("UPDATE c SET n = n + ? WHERE k = ?")
    batch = BatchStatement(batch_type=BatchType.COUNTER)
    for _ in range(3):
        batch.add(add, (2, 1))
    ks_session.execute(batch)
    assert rows(ks_session, "SELECT n FROM c WHERE k = 1") == [(6,)]


def test_select_forms(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, a int, b int, v int, PRIMARY KEY (p, a, b))")
    insert = ks_session.prepare("INSERT INTO t (p, a, b, v) VALUES (?, ?, ?, ?)")
    for p in range(3):
        for a in range(3):
            for b in range(2):
                ks_session.execute(insert, [p, a, b, p * 100 + a * 10 + b])
    assert rows(ks_session, "SELECT COUNT(*) FROM t") == [(18,)]
    assert rows(ks_session, "SELECT v FROM t WHERE p IN (0, 2) AND a = 1 AND b = 1") == [
        (11,),
        (211,),
    ]
    assert rows(ks_session, "SELECT v FROM t WHERE p = 1 AND a >= 1 AND a < 2") == [(110,), (111,)]
    tuple_query = ks_session.prepare("SELECT v FROM t WHERE p = ? AND (a, b) > (?, ?)")
    assert rows(ks_session, tuple_query, [0, 1, 1]) == [(20,), (21,)]
    assert rows(ks_session, "SELECT v FROM t WHERE p = 0 ORDER BY a DESC LIMIT 2") == [
        (21,),
        (20,),
    ]
    assert len(rows(ks_session, "SELECT v FROM t PER PARTITION LIMIT 1")) == 3
    assert rows(ks_session, "SELECT p, a, b FROM t WHERE v = 121 ALLOW FILTERING") == [(1, 2, 1)]
    assert rows(ks_session, "SELECT * FROM t WHERE p = 2 AND a = 0 AND b = 0") == [(2, 0, 0, 200)]


def test_full_scan_returns_partitions_in_murmur3_token_order(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY)")
    insert = ks_session.prepare("INSERT INTO t (k) VALUES (?)")
    for k in range(50):
        ks_session.execute(insert, [k])
    expected = sorted(range(50), key=lambda k: Murmur3Token.hash_fn(Int32Type.serialize(k, 4)))
    assert [k for (k,) in rows(ks_session, "SELECT k FROM t")] == expected


def test_functions_now_uuid_and_timestamps(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k uuid PRIMARY KEY, at timeuuid, ts timestamp)")
    ks_session.execute("INSERT INTO t (k, at, ts) VALUES (uuid(), now(), currentTimestamp())")
    ks_session.execute("INSERT INTO t (k, at, ts) VALUES (uuid(), now(), toTimestamp(now()))")
    got = rows(ks_session, "SELECT k, at, ts FROM t")
    assert len(got) == 2
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    for k, at, ts in got:
        assert k.version == 4
        assert at.version == 1
        assert abs((now - ts).total_seconds()) < 60


def test_named_bind_markers(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")
    insert = ks_session.prepare("INSERT INTO t (k, v) VALUES (:key, :value)")
    ks_session.execute(insert, {"value": "named", "key": 3})
    assert rows(ks_session, "SELECT v FROM t WHERE k = 3") == [("named",)]


def test_errors_surface_as_driver_exception_types(ks_session: Session, keyspace: str) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY)")
    with pytest.raises(AlreadyExists) as exists:
        ks_session.execute("CREATE TABLE t (k int PRIMARY KEY)")
    assert (exists.value.keyspace, exists.value.table) == (keyspace, "t")
    with pytest.raises(InvalidRequest, match="nope"):
        ks_session.execute("SELECT * FROM nope")
    with pytest.raises(SyntaxException):
        ks_session.execute("SELEKT * FROM t")
    with pytest.raises((SyntaxException, InvalidRequest), match=r"(?i)index"):
        ks_session.execute("CREATE INDEX ON t (k)")
