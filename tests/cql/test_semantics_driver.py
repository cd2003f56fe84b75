"""Scylla semantics, checked through the real scylla-driver against the embedded server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.metadata import Murmur3Token
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from tests.polling import wait_for


def test_client_timestamps_decide_last_write_wins(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE lww (k int PRIMARY KEY, v text)")
    s.execute("INSERT INTO lww (k, v) VALUES (1, 'newer') USING TIMESTAMP 2000")
    s.execute("INSERT INTO lww (k, v) VALUES (1, 'older') USING TIMESTAMP 1000")
    assert s.execute("SELECT v, writetime(v) FROM lww WHERE k = 1").one() == ("newer", 2000)
    s.execute("DELETE FROM lww USING TIMESTAMP 1500 WHERE k = 1")
    assert s.execute("SELECT v FROM lww WHERE k = 1").one() == ("newer",)
    s.execute("DELETE FROM lww USING TIMESTAMP 3000 WHERE k = 1")
    assert s.execute("SELECT v FROM lww WHERE k = 1").one() is None


def test_ttl_cells_expire_and_update_only_rows_vanish(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE ttl (k int PRIMARY KEY, a text, b text)")
    s.execute("INSERT INTO ttl (k, a) VALUES (1, 'stays')")
    s.execute("UPDATE ttl USING TTL 1 SET b = 'goes' WHERE k = 1")
    s.execute("UPDATE ttl USING TTL 1 SET a = 'whole row goes' WHERE k = 2")
    assert s.execute("SELECT ttl(b) FROM ttl WHERE k = 1").one()[0] in (0, 1)
    wait_for(lambda: s.execute("SELECT b FROM ttl WHERE k = 1").one() == (None,), within=5.0)
    wait_for(lambda: s.execute("SELECT k FROM ttl WHERE k = 2").one() is None, within=5.0)
    assert s.execute("SELECT a FROM ttl WHERE k = 1").one() == ("stays",)


def test_concurrent_counter_increments_all_count(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE hits (page text PRIMARY KEY, n counter)")
    inc = s.prepare("UPDATE hits SET n = n + ? WHERE page = ?")
    results = execute_concurrent_with_args(s, inc, [(i % 3 + 1, "home") for i in range(90)])
    assert all(ok for ok, _ in results)
    assert s.execute("SELECT n FROM hits WHERE page = 'home'").one() == (180,)
    batch = BatchStatement(batch_type=BatchType.COUNTER)
    batch.add(inc, (5, "home"))
    batch.add(inc, (1, "about"))
    s.execute(batch)
    assert dict(s.execute("SELECT page, n FROM hits").all()) == {"home": 185, "about": 1}


def test_conditional_writes_expose_applied_and_current_values(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE acct (id int PRIMARY KEY, owner text, balance int)")
    insert = s.prepare("INSERT INTO acct (id, owner, balance) VALUES (?, ?, ?) IF NOT EXISTS")
    assert s.execute(insert, (1, "ann", 10)).was_applied
    rejected = s.execute(insert, (1, "bob", 99))
    assert not rejected.was_applied
    assert rejected.one()._asdict() == {
        "applied": False,  # the driver renames "[applied]" in its named tuples
        "id": 1,
        "balance": 10,
        "owner": "ann",
    }
    cas = s.prepare("UPDATE acct SET balance = ? WHERE id = ? IF balance = ?")
    assert not s.execute(cas, (5, 1, 7)).was_applied
    assert s.execute(cas, (5, 1, 10)).was_applied
    assert not s.execute("UPDATE acct SET balance = 1 WHERE id = 2 IF EXISTS").was_applied
    assert s.execute("SELECT balance FROM acct WHERE id = 1").one() == (5,)


def test_clustering_order_and_order_by_both_ways(ks_session: Session) -> None:
    s = ks_session
    s.execute(
        "CREATE TABLE feed (ch int, at timeuuid, seq int, body text, PRIMARY KEY (ch, at, seq))"
        " WITH CLUSTERING ORDER BY (at DESC, seq ASC)"
    )
    ins = s.prepare("INSERT INTO feed (ch, at, seq, body) VALUES (0, ?, ?, ?)")
    stamps = [uuid.uuid1() for _ in range(5)]
    for i, at in enumerate(stamps):
        for seq in (2, 1):
            s.execute(ins, (at, seq, f"{i}.{seq}"))
    newest_first = [f"{i}.{seq}" for i in reversed(range(5)) for seq in (1, 2)]
    rows = s.execute("SELECT body FROM feed WHERE ch = 0")
    assert [r.body for r in rows] == newest_first
    rows = s.execute("SELECT body FROM feed WHERE ch = 0 ORDER BY at ASC, seq DESC")
    assert [r.body for r in rows] == newest_first[::-1]
    rows = s.execute(
        s.prepare("SELECT body FROM feed WHERE ch = 0 AND at < ? LIMIT 3"), (stamps[3],)
    )
    assert [r.body for r in rows] == ["2.1", "2.2", "1.1"]


def test_tuple_relations_with_bound_tuples(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE grid (p int, a int, b int, PRIMARY KEY (p, a, b))")
    for a in range(4):
        for b in range(4):
            s.execute("INSERT INTO grid (p, a, b) VALUES (0, %s, %s)", (a, b))
    page = s.prepare("SELECT a, b FROM grid WHERE p = 0 AND (a, b) > (?, ?) LIMIT 3")
    assert list(s.execute(page, (1, 2))) == [(1, 3), (2, 0), (2, 1)]
    rows = s.execute("SELECT a, b FROM grid WHERE p = 0 AND (a, b) >= (2, 2) AND (a, b) < (3, 1)")
    assert list(rows) == [(2, 2), (2, 3), (3, 0)]


def test_paging_across_many_pages_matches_an_unpaged_read(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE big (p int, c int, v text, PRIMARY KEY (p, c))")
    ins = s.prepare("INSERT INTO big (p, c, v) VALUES (?, ?, ?)")
    args = [(p, c, f"{p}:{c}") for p in range(25) for c in range(20)]
    assert all(ok for ok, _ in execute_concurrent_with_args(s, ins, args))
    unpaged = [tuple(r) for r in s.execute(SimpleStatement("SELECT * FROM big", fetch_size=None))]
    assert len(unpaged) == 500
    paged = s.execute(SimpleStatement("SELECT * FROM big", fetch_size=7))
    assert [tuple(r) for r in paged] == unpaged
    one_partition = s.execute(SimpleStatement("SELECT c FROM big WHERE p = 3", fetch_size=6))
    first_page = one_partition.current_rows
    resumed = s.execute(
        SimpleStatement("SELECT c FROM big WHERE p = 3", fetch_size=6),
        paging_state=one_partition.paging_state,
    )
    assert [r.c for r in first_page] + [r.c for r in resumed.current_rows] == list(range(12))


def test_full_scan_follows_the_drivers_murmur3_tokens(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE users (org text, id int, name text, PRIMARY KEY ((org, id)))")
    ins = s.prepare("INSERT INTO users (org, id, name) VALUES (?, ?, ?)")
    keys = [(org, i) for org in ("a", "b", "c") for i in range(10)]
    for org, i in keys:
        s.execute(ins, (org, i, "x"))
    routing = {k: ins.bind((k[0], k[1], "x")).routing_key for k in keys}
    expected = sorted(keys, key=lambda k: Murmur3Token.hash_fn(routing[k]))
    got = [(r.org, r.id) for r in s.execute("SELECT org, id FROM users")]
    assert got == expected
    tokens = [t[0] for t in s.execute("SELECT token(org, id) FROM users")]
    assert tokens == sorted(Murmur3Token.hash_fn(routing[k]) for k in keys)
    middle = Murmur3Token.hash_fn(routing[expected[14]])
    after = s.execute("SELECT org, id FROM users WHERE token(org, id) > %s", (middle,))
    assert [(r.org, r.id) for r in after] == expected[15:]


def test_driver_schema_metadata_round_trips_the_table(
    cluster: Any, ks_session: Session, keyspace: str
) -> None:
    ks_session.execute(
        "CREATE TABLE described (a int, b text, c timeuuid, tags set<text>, n bigint,"
        " PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC)"
        " AND default_time_to_live = 3600 AND comment = 'for the driver'"
    )
    cluster.refresh_table_metadata(keyspace, "described")
    table = cluster.metadata.keyspaces[keyspace].tables["described"]
    assert [c.name for c in table.partition_key] == ["a", "b"]
    assert [c.name for c in table.clustering_key] == ["c"]
    assert table.columns["tags"].cql_type == "set<text>"
    cql = table.export_as_string()
    assert "PRIMARY KEY ((a, b), c)" in cql
    assert "CLUSTERING ORDER BY (c DESC)" in cql
    assert "default_time_to_live = 3600" in cql
    assert "'for the driver'" in cql


def test_logged_batch_applies_every_statement_with_one_timestamp(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE pair (k int PRIMARY KEY, v text)")
    ins = s.prepare("INSERT INTO pair (k, v) VALUES (?, ?)")
    batch = BatchStatement()
    for k in range(16):
        batch.add(ins, (k, str(k)))
    batch.add(SimpleStatement("DELETE FROM pair WHERE k = 3"))
    s.execute(batch)
    stamps = {r[1] for r in s.execute("SELECT k, writetime(v) FROM pair")}
    assert len(stamps) == 1
    assert s.execute("SELECT COUNT(*) FROM pair").one() == (15,)


def test_filtering_needs_allow_filtering(ks_session: Session) -> None:
    s = ks_session
    s.execute("CREATE TABLE f (k int PRIMARY KEY, v int)")
    for k in range(10):
        s.execute("INSERT INTO f (k, v) VALUES (%s, %s)", (k, k % 3))
    with pytest.raises(InvalidRequest, match="ALLOW FILTERING"):
        s.execute("SELECT k FROM f WHERE v = 1")
    rows = s.execute("SELECT k FROM f WHERE v = 1 ALLOW FILTERING")
    assert sorted(r.k for r in rows) == [1, 4, 7]
