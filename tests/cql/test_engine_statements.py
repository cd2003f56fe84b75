"""The engine on its own (no sockets): statements in, Python values out via the driver's codecs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.errors import AlreadyExists, CqlError, InvalidRequest, Unprepared
from chat.embedded.cql.results import Rows, SchemaChange, SetKeyspace, Void
from chat.embedded.cql.values import composite_key, token_of

PROTO = 4


class Db:
    """A thin client: binds Python values with the prepared metadata, decodes result rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keyspace: str | None = "ks"

    def run(
        self,
        cql: str,
        *params: Any,
        ts: int | None = None,
        page_size: int | None = None,
        paging_state: bytes | None = None,
        now: int | None = None,
    ) -> Any:
        prepared = self.engine.prepare(cql, self.keyspace)
        values = [
            None if p is None else spec.cql_type.serialize(p, PROTO)
            for p, spec in zip(params, prepared.bind_columns, strict=True)
        ]
        options = QueryOptions(
            timestamp=ts, page_size=page_size, paging_state=paging_state, now_in_seconds=now
        )
        return self.engine.execute(prepared, values, options, self.keyspace)

    def rows(self, cql: str, *params: Any, **kw: Any) -> list[tuple[Any, ...]]:
        result = self.run(cql, *params, **kw)
        assert isinstance(result, Rows)
        return decode(result)


def decode(result: Rows) -> list[tuple[Any, ...]]:
    return [
        tuple(
            None if v is None else spec.cql_type.deserialize(v, PROTO)
            for v, spec in zip(row, result.columns, strict=True)
        )
        for row in result.rows
    ]


@pytest.fixture
def db() -> Db:
    engine = Engine(None, NodeInfo("127.0.0.1", 9042, uuid.uuid4()))
    d = Db(engine)
    d.run(
        "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    return d


def test_ddl_reports_schema_changes_and_bumps_schema_version(db: Db) -> None:
    before = db.engine.schema_version
    result = db.run("CREATE TABLE t (k int PRIMARY KEY, v text)")
    assert result == SchemaChange("CREATED", "TABLE", "ks", "t")
    assert db.engine.schema_version != before
    assert isinstance(db.run("CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY)"), Void)
    with pytest.raises(AlreadyExists):
        db.run("CREATE TABLE t (k int PRIMARY KEY)")
    with pytest.raises(AlreadyExists):
        db.run("CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy'}")
    assert db.run("USE ks") == SetKeyspace("ks")
    with pytest.raises(InvalidRequest, match="Keyspace 'nope' does not exist"):
        db.run("USE nope")
    with pytest.raises(InvalidRequest, match="unconfigured table missing"):
        db.run("SELECT * FROM missing")
    assert db.run("DROP TABLE t") == SchemaChange("DROPPED", "TABLE", "ks", "t")
    assert isinstance(db.run("DROP TABLE IF EXISTS t"), Void)


def test_counter_and_regular_columns_cannot_mix(db: Db) -> None:
    with pytest.raises(InvalidRequest, match="Cannot mix counter and non counter"):
        db.run("CREATE TABLE c (k int PRIMARY KEY, n counter, v text)")


def test_insert_requires_every_key_part(db: Db) -> None:
    db.run("CREATE TABLE t (a int, b int, c int, v text, PRIMARY KEY ((a, b), c))")
    with pytest.raises(InvalidRequest, match="Some partition key parts are missing: b"):
        db.run("INSERT INTO t (a, c, v) VALUES (1, 2, 'x')")
    with pytest.raises(InvalidRequest, match="Some clustering keys are missing: c"):
        db.run("INSERT INTO t (a, b, v) VALUES (1, 2, 'x')")
    with pytest.raises(InvalidRequest, match="Undefined column name nope"):
        db.run("INSERT INTO t (a, b, c, nope) VALUES (1, 2, 3, 'x')")


def test_last_write_wins_by_client_timestamp_not_arrival(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, v text)")
    db.run("INSERT INTO t (k, v) VALUES (1, 'new')", ts=200)
    db.run("INSERT INTO t (k, v) VALUES (1, 'old')", ts=100)
    assert db.rows("SELECT v, writetime(v) FROM t WHERE k = 1") == [("new", 200)]
    db.run("DELETE FROM t WHERE k = 1", ts=150)
    assert db.rows("SELECT v FROM t WHERE k = 1") == [("new",)]
    db.run("DELETE FROM t WHERE k = 1", ts=250)
    assert db.rows("SELECT v FROM t WHERE k = 1") == []
    db.run("INSERT INTO t (k, v) VALUES (1, 'older than tombstone')", ts=240)
    assert db.rows("SELECT v FROM t WHERE k = 1") == []


def test_equal_timestamps_keep_the_greater_value(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, v text)")
    db.run("INSERT INTO t (k, v) VALUES (1, 'b')", ts=5)
    db.run("INSERT INTO t (k, v) VALUES (1, 'a')", ts=5)
    assert db.rows("SELECT v FROM t WHERE k = 1") == [("b",)]


def test_ttl_expires_cells_and_insert_marker_keeps_row(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, a text, b text)")
    db.run("INSERT INTO t (k, a) VALUES (1, 'x')", now=1000)
    db.run("UPDATE t USING TTL 10 SET b = 'short' WHERE k = 1", now=1000)
    assert db.rows("SELECT a, b, ttl(b) FROM t WHERE k = 1", now=1005) == [("x", "short", 5)]
    assert db.rows("SELECT a, b FROM t WHERE k = 1", now=1010) == [("x", None)]


def test_update_only_row_vanishes_when_its_cells_expire(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, a text)")
    db.run("UPDATE t USING TTL 10 SET a = 'x' WHERE k = 1", now=1000)
    assert db.rows("SELECT k FROM t", now=1009) == [(1,)]
    assert db.rows("SELECT k FROM t", now=1010) == []
    db.run("UPDATE t SET a = 'y' WHERE k = 2")
    db.run("DELETE a FROM t WHERE k = 2")
    assert db.rows("SELECT k FROM t WHERE k = 2") == []


def test_insert_with_ttl_expires_the_whole_row_and_default_ttl_applies(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, a text) WITH default_time_to_live = 100")
    db.run("INSERT INTO t (k, a) VALUES (1, 'x')", now=1000)
    db.run("INSERT INTO t (k, a) VALUES (2, 'y') USING TTL 0", now=1000)
    assert db.rows("SELECT k, ttl(a) FROM t WHERE k = 1", now=1040) == [(1, 60)]
    assert db.rows("SELECT k FROM t", now=1100) == [(2,)]


def test_clustering_order_desc_and_order_by_reversal(db: Db) -> None:
    db.run(
        "CREATE TABLE t (p int, a int, b text, v int, PRIMARY KEY (p, a, b))"
        " WITH CLUSTERING ORDER BY (a DESC, b ASC)"
    )
    for a in (1, 2, 3):
        for b in ("x", "y"):
            db.run("INSERT INTO t (p, a, b, v) VALUES (0, ?, ?, 0)", a, b)
    natural = [(3, "x"), (3, "y"), (2, "x"), (2, "y"), (1, "x"), (1, "y")]
    assert db.rows("SELECT a, b FROM t WHERE p = 0") == natural
    assert db.rows("SELECT a, b FROM t WHERE p = 0 ORDER BY a ASC, b DESC") == natural[::-1]
    assert db.rows("SELECT a, b FROM t WHERE p = 0 AND a > 1 AND a <= 3") == natural[:4]
    with pytest.raises(InvalidRequest, match="Unsupported order by relation"):
        db.rows("SELECT a FROM t WHERE p = 0 ORDER BY a ASC, b ASC")


def test_tuple_relation_is_lexicographic_with_mixed_clustering_order(db: Db) -> None:
    db.run(
        "CREATE TABLE t (p int, a int, b int, PRIMARY KEY (p, a, b))"
        " WITH CLUSTERING ORDER BY (a ASC, b DESC)"
    )
    for a in range(3):
        for b in range(3):
            db.run("INSERT INTO t (p, a, b) VALUES (0, ?, ?)", a, b)
    got = db.rows("SELECT a, b FROM t WHERE p = 0 AND (a, b) > (?, ?)", 1, 1)
    assert got == [(1, 2), (2, 2), (2, 1), (2, 0)]
    got = db.rows("SELECT a, b FROM t WHERE p = 0 AND (a, b) >= (1, 1) AND (a, b) < (2, 1)")
    assert got == [(1, 2), (1, 1), (2, 0)]
    got = db.rows("SELECT a, b FROM t WHERE p = 0 AND (a, b) IN ((0, 2), (2, 0))")
    assert got == [(0, 2), (2, 0)]


def test_in_on_partition_key_and_clustering(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    for p in range(4):
        for c in range(3):
            db.run("INSERT INTO t (p, c, v) VALUES (?, ?, ?)", p, c, p * 10 + c)
    got = db.rows("SELECT p, c FROM t WHERE p IN (3, 1) AND c IN (2, 0)")
    by_token = sorted([1, 3], key=lambda p: token_of(p.to_bytes(4, "big")))
    assert got == [(p, c) for p in by_token for c in (0, 2)]
    assert db.rows("SELECT c FROM t WHERE p IN ? AND c = 1", [2, 0]) != []


def test_full_scan_is_in_token_order_including_composite_keys(db: Db) -> None:
    db.run("CREATE TABLE t (a int, b text, v int, PRIMARY KEY ((a, b)))")
    keys = [(i, s) for i in range(5) for s in ("x", "yy")]
    for a, b in keys:
        db.run("INSERT INTO t (a, b, v) VALUES (?, ?, 0)", a, b)

    def token(k: tuple[int, str]) -> int:
        return token_of(composite_key([k[0].to_bytes(4, "big"), k[1].encode()]))

    assert db.rows("SELECT a, b FROM t") == sorted(keys, key=token)
    first = token(sorted(keys, key=token)[3])
    got = db.rows("SELECT a, b FROM t WHERE token(a, b) > ?", first)
    assert got == sorted(keys, key=token)[4:]


def test_paging_resumes_exactly_across_and_within_partitions(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")
    for p in range(7):
        for c in range(5):
            db.run("INSERT INTO t (p, c) VALUES (?, ?)", p, c)
    everything = db.rows("SELECT p, c FROM t")
    for page_size in (1, 3, 5, 8):
        seen: list[tuple[Any, ...]] = []
        state: bytes | None = None
        while True:
            result = db.run("SELECT p, c FROM t", page_size=page_size, paging_state=state)
            seen += decode(result)
            state = result.paging_state
            if state is None:
                break
        assert seen == everything
    limited = db.run("SELECT p, c FROM t LIMIT 7", page_size=3)
    second = db.run("SELECT p, c FROM t LIMIT 7", page_size=3, paging_state=limited.paging_state)
    third = db.run("SELECT p, c FROM t LIMIT 7", page_size=3, paging_state=second.paging_state)
    assert decode(limited) + decode(second) + decode(third) == everything[:7]
    assert third.paging_state is None


def test_limit_per_partition_limit_and_count(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    for p in range(3):
        for c in range(4):
            db.run("INSERT INTO t (p, c, v) VALUES (?, ?, ?)", p, c, c)
    assert len(db.rows("SELECT * FROM t PER PARTITION LIMIT 2")) == 6
    assert len(db.rows("SELECT * FROM t PER PARTITION LIMIT 2 LIMIT 3")) == 3
    assert db.rows("SELECT COUNT(*) FROM t") == [(12,)]
    assert db.rows("SELECT count(*) AS n FROM t WHERE p = 1") == [(4,)]
    paged: list[tuple[Any, ...]] = []
    state = None
    while True:
        r = db.run("SELECT p, c FROM t PER PARTITION LIMIT 3", page_size=2, paging_state=state)
        paged += decode(r)
        state = r.paging_state
        if state is None:
            break
    assert paged == db.rows("SELECT p, c FROM t PER PARTITION LIMIT 3")


def test_filtering_requires_allow_filtering(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    for p in range(3):
        db.run("INSERT INTO t (p, c, v) VALUES (?, 0, ?)", p, p * 2)
    with pytest.raises(InvalidRequest, match="ALLOW FILTERING"):
        db.rows("SELECT * FROM t WHERE v = 2")
    assert db.rows("SELECT p FROM t WHERE v > 1 ALLOW FILTERING") != []
    assert sorted(db.rows("SELECT p FROM t WHERE v >= 2 ALLOW FILTERING")) == [(1,), (2,)]


def test_counters_increment_and_reject_set(db: Db) -> None:
    db.run("CREATE TABLE c (k text PRIMARY KEY, n counter)")
    db.run("UPDATE c SET n = n + 5 WHERE k = 'a'")
    db.run("UPDATE c SET n = n - ? WHERE k = 'a'", 2)
    db.run("UPDATE c SET n = n + 1 WHERE k = 'a'")
    assert db.rows("SELECT n FROM c WHERE k = 'a'") == [(4,)]
    with pytest.raises(InvalidRequest, match="Cannot set the value of counter column n"):
        db.run("UPDATE c SET n = 3 WHERE k = 'a'")
    with pytest.raises(InvalidRequest, match="INSERT statements are not allowed on counter"):
        db.run("INSERT INTO c (k, n) VALUES ('a', 1)")


def test_collections_append_prepend_add_remove_and_element_ops(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>)")
    db.run("INSERT INTO t (k, l, s, m) VALUES (1, [2], {'b'}, {'x': 1})")
    db.run("UPDATE t SET l = l + [3], s = s + {'a'}, m = m + {'y': 2} WHERE k = 1")
    db.run("UPDATE t SET l = [1] + l, m['z'] = 3 WHERE k = 1")
    assert db.rows("SELECT l, s, m FROM t WHERE k = 1") == [
        ([1, 2, 3], {"a", "b"}, {"x": 1, "y": 2, "z": 3})
    ]
    db.run("UPDATE t SET l[1] = 20, s = s - {'b'}, m = m - {'x'} WHERE k = 1")
    db.run("DELETE m['y'], l[0] FROM t WHERE k = 1")
    assert db.rows("SELECT l, s, m FROM t WHERE k = 1") == [([20, 3], {"a"}, {"z": 3})]
    db.run("UPDATE t SET l = l - [3], s = {} WHERE k = 1")
    assert db.rows("SELECT l, s FROM t WHERE k = 1") == [([20], None)]
    with pytest.raises(InvalidRequest, match="List index 5 out of bound"):
        db.run("UPDATE t SET l[5] = 1 WHERE k = 1")


def test_conditional_writes_report_applied_and_existing_values(db: Db) -> None:
    db.run("CREATE TABLE t (k int, c int, v text, PRIMARY KEY (k, c))")
    # ScyllaDB's shape: the same columns applied or not, with the row as it was before.
    first = db.run("INSERT INTO t (k, c, v) VALUES (1, 1, 'a') IF NOT EXISTS")
    assert [s.name for s in first.columns] == ["[applied]", "k", "c", "v"]
    assert decode(first) == [(True, None, None, None)]
    again = db.run("INSERT INTO t (k, c, v) VALUES (1, 1, 'b') IF NOT EXISTS")
    assert [s.name for s in again.columns] == ["[applied]", "k", "c", "v"]
    assert decode(again) == [(False, 1, 1, "a")]
    assert decode(db.run("UPDATE t SET v = 'c' WHERE k = 1 AND c = 1 IF v = 'zz'")) == [
        (False, "a")
    ]
    assert decode(db.run("UPDATE t SET v = 'c' WHERE k = 1 AND c = 1 IF v = 'a'")) == [(True, "a")]
    assert decode(db.run("UPDATE t SET v = 'd' WHERE k = 1 AND c = 2 IF EXISTS")) == [
        (False, None, None, None)
    ]
    assert decode(db.run("DELETE FROM t WHERE k = 1 AND c = 1 IF EXISTS")) == [(True, 1, 1, "c")]
    assert db.rows("SELECT * FROM t") == []


def test_delete_clustering_range_shadows_older_later_writes(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    for c in range(6):
        db.run("INSERT INTO t (p, c, v) VALUES (0, ?, 0)", c, ts=10)
    db.run("DELETE FROM t WHERE p = 0 AND c >= 2 AND c < 4", ts=20)
    assert db.rows("SELECT c FROM t WHERE p = 0") == [(0,), (1,), (4,), (5,)]
    db.run("INSERT INTO t (p, c, v) VALUES (0, 3, 1)", ts=15)
    db.run("INSERT INTO t (p, c, v) VALUES (0, 2, 1)", ts=25)
    assert db.rows("SELECT c FROM t WHERE p = 0") == [(0,), (1,), (2,), (4,), (5,)]
    db.run("DELETE FROM t WHERE p = 0", ts=30)
    assert db.rows("SELECT c FROM t WHERE p = 0") == []


def test_batches_share_a_timestamp_and_reject_mixing_counters(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, v int)")
    db.run("CREATE TABLE c (k int PRIMARY KEY, n counter)")
    db.run(
        "BEGIN BATCH USING TIMESTAMP 42 INSERT INTO t (k, v) VALUES (1, 1); "
        "UPDATE t SET v = 2 WHERE k = 2; APPLY BATCH"
    )
    assert sorted(db.rows("SELECT k, writetime(v) FROM t")) == [(1, 42), (2, 42)]
    with pytest.raises(InvalidRequest, match="Cannot include a counter statement"):
        db.run("BEGIN BATCH UPDATE c SET n = n + 1 WHERE k = 1; APPLY BATCH")
    db.run("BEGIN COUNTER BATCH UPDATE c SET n = n + 1 WHERE k = 1; APPLY BATCH")
    with pytest.raises(InvalidRequest, match="non-counter statement in a counter batch"):
        db.run("BEGIN COUNTER BATCH INSERT INTO t (k, v) VALUES (3, 3); APPLY BATCH")
    ins = db.engine.prepare("INSERT INTO t (k, v) VALUES (?, ?)", "ks")
    items = [(ins, [i.to_bytes(4, "big"), b"\x00\x00\x00\x07"]) for i in range(10, 26)]
    db.engine.batch(1, items, QueryOptions(timestamp=77), "ks")
    assert db.rows("SELECT COUNT(*) FROM t") == [(18,)]


def test_functions_in_values_and_selectors(db: Db) -> None:
    db.run("CREATE TABLE t (k timeuuid PRIMARY KEY, at timestamp, d date, u uuid)")
    db.run("INSERT INTO t (k, at, d, u) VALUES (now(), currentTimestamp(), currentDate(), uuid())")
    [(k, at, d, u)] = db.rows("SELECT k, at, d, u FROM t")
    assert k.version == 1
    assert u.version == 4
    assert at is not None
    assert d is not None
    [(ts,)] = db.rows("SELECT toTimestamp(k) FROM t")
    assert abs((ts - at).total_seconds()) < 5


def test_prepared_plans_follow_alter_and_unknown_ids_are_unprepared(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, a int)")
    select = db.engine.prepare("SELECT * FROM t", "ks")
    db.run("INSERT INTO t (k, a) VALUES (1, 1)")
    db.run("ALTER TABLE t ADD b text")
    db.run("UPDATE t SET b = 'new' WHERE k = 1")
    result = db.engine.execute(select, [], QueryOptions(), "ks")
    assert isinstance(result, Rows)
    assert decode(result) == [(1, 1, "new")]
    with pytest.raises(Unprepared):
        db.engine.lookup(b"\x00" * 16)


def test_system_tables_describe_the_schema(db: Db) -> None:
    db.run(
        "CREATE TABLE t (a int, b text, c int, v map<text, int>, PRIMARY KEY ((a, b), c))"
        " WITH CLUSTERING ORDER BY (c DESC) AND comment = 'hi'"
    )
    cols = db.rows(
        "SELECT column_name, kind, position, clustering_order, type FROM system_schema.columns "
        "WHERE keyspace_name = 'ks' AND table_name = 't'"
    )
    assert sorted(cols) == [
        ("a", "partition_key", 0, "none", "int"),
        ("b", "partition_key", 1, "none", "text"),
        ("c", "clustering", 0, "desc", "int"),
        ("v", "regular", -1, "none", "map<text, int>"),
    ]
    [(comment, flags)] = db.rows(
        "SELECT comment, flags FROM system_schema.tables WHERE keyspace_name = 'ks'"
    )
    assert comment == "hi"
    assert flags == {"compound"}
    [(version,)] = db.rows("SELECT schema_version FROM system.local WHERE key = 'local'")
    assert version == db.engine.schema_version
    assert db.rows("SELECT * FROM system.peers") == []
    stats = dict(db.rows("SELECT name, value FROM system.embedded_stats"))
    assert stats["statements"] > 0
    with pytest.raises(InvalidRequest, match="unconfigured table tables"):
        db.rows("SELECT * FROM system_virtual_schema.tables")
    with pytest.raises(CqlError):
        db.run("INSERT INTO system.local (key) VALUES ('x')")


def test_embedded_stats_count_each_tables_selects_and_each_page(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")
    db.run("CREATE TABLE u (p int PRIMARY KEY)")
    for c in range(5):
        db.run("INSERT INTO t (p, c) VALUES (0, ?)", c)
    first = db.run("SELECT c FROM t WHERE p = 0", page_size=3)
    assert isinstance(first, Rows)
    assert first.paging_state is not None
    db.rows("SELECT c FROM t WHERE p = 0", page_size=3, paging_state=first.paging_state)
    db.rows("SELECT p FROM u")
    stats = dict(db.rows("SELECT name, value FROM system.embedded_stats"))
    assert stats["selects:ks.t"] == 2  # two pages
    assert stats["selects:ks.u"] == 1
    assert not any(name.startswith("selects:system") for name in stats)


def test_aggregates_count_min_max_sum_avg(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))")
    for c in range(5):
        db.run("INSERT INTO t (p, c, v) VALUES (0, ?, ?)", c, None if c == 4 else f"v{c}")
    got = db.rows("SELECT count(*), count(v), min(c), max(v), sum(c), avg(c) FROM t WHERE p = 0")
    assert got == [(5, 4, 0, "v3", 10, 2)]
    assert db.rows("SELECT count(*), max(c) FROM t WHERE p = 9") == [(0, None)]


def test_in_with_order_by_merges_partitions_in_clustering_order(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")
    for p, c in ((0, 5), (0, 1), (1, 3), (2, 4), (2, 2)):
        db.run("INSERT INTO t (p, c) VALUES (?, ?)", p, c)
    got = db.rows("SELECT c FROM t WHERE p IN (0, 1, 2) ORDER BY c DESC LIMIT 4")
    assert got == [(5,), (4,), (3,), (2,)]


def test_conditional_batch_applies_all_or_nothing(db: Db) -> None:
    db.run("CREATE TABLE t (k int, c int, v text, PRIMARY KEY (k, c))")
    cas = db.engine.prepare("UPDATE t SET v = ? WHERE k = 1 AND c = ? IF v = ?", "ks")
    put = db.engine.prepare("INSERT INTO t (k, c, v) VALUES (1, ?, ?)", "ks")
    db.run("INSERT INTO t (k, c, v) VALUES (1, 0, 'a')")

    def int_(n: int) -> bytes:
        return n.to_bytes(4, "big")

    failed = db.engine.batch(
        0,
        [(cas, [b"b", int_(0), b"zzz"]), (put, [int_(5), b"x"])],
        QueryOptions(),
        "ks",
    )
    assert isinstance(failed, Rows)
    # One row per statement: [applied], the key and the condition columns, as they were.
    assert [c.name for c in failed.columns] == ["[applied]", "k", "c", "v"]
    assert decode(failed) == [(False, 1, 0, "a"), (False, None, None, None)]
    assert db.rows("SELECT c FROM t WHERE k = 1") == [(0,)]
    applied = db.engine.batch(
        0,
        [(cas, [b"b", int_(0), b"a"]), (put, [int_(5), b"x"])],
        QueryOptions(),
        "ks",
    )
    assert isinstance(applied, Rows)
    assert decode(applied) == [(True, 1, 0, "a"), (True, None, None, None)]
    assert db.rows("SELECT c, v FROM t WHERE k = 1") == [(0, "b"), (5, "x")]


def test_timestamp_literals_and_timeuuid_bounds(db: Db) -> None:
    db.run("CREATE TABLE t (k int, at timeuuid, seen timestamp, PRIMARY KEY (k, at))")
    for _ in range(3):
        db.run("INSERT INTO t (k, at, seen) VALUES (1, now(), '2024-02-29 12:00:00+0000')")
    [(seen,)] = db.rows("SELECT seen FROM t WHERE k = 1 LIMIT 1")
    assert seen.isoformat() == "2024-02-29T12:00:00"
    got = db.rows(
        "SELECT count(*) FROM t WHERE k = 1 AND at > maxTimeuuid('2000-01-01')"
        " AND at < minTimeuuid('2100-01-01 00:00:00+0000')"
    )
    assert got == [(3,)]
    assert db.rows("SELECT count(*) FROM t WHERE k = 1 AND at < minTimeuuid('2000-01-01')") == [
        (0,)
    ]


def test_frame_timestamp_is_only_a_default_for_batch_statements(db: Db) -> None:
    db.run("CREATE TABLE t (k int PRIMARY KEY, v int)")
    own = db.engine.prepare("INSERT INTO t (k, v) VALUES (?, 0) USING TIMESTAMP ?", "ks")
    plain = db.engine.prepare("INSERT INTO t (k, v) VALUES (?, 0)", "ks")
    items = [
        (own, [(1).to_bytes(4, "big"), (5).to_bytes(8, "big")]),
        (plain, [(2).to_bytes(4, "big")]),
    ]
    db.engine.batch(1, items, QueryOptions(timestamp=99), "ks")
    assert sorted(db.rows("SELECT k, writetime(v) FROM t")) == [(1, 5), (2, 99)]
    with pytest.raises(InvalidRequest, match="Timestamp must be set either on BATCH or"):
        db.run(
            "BEGIN BATCH USING TIMESTAMP 7 "
            "INSERT INTO t (k, v) VALUES (3, 0) USING TIMESTAMP 8; APPLY BATCH"
        )


def test_in_with_order_by_merges_partitions_and_refuses_paging(db: Db) -> None:
    db.run("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")
    for p in range(3):
        for c in range(4):
            db.run("INSERT INTO t (p, c) VALUES (?, ?)", p, c * 3 + p)
    query = "SELECT c FROM t WHERE p IN (0, 1, 2) ORDER BY c DESC"
    assert decode(db.run(query)) == [(c,) for c in range(11, -1, -1)]
    with pytest.raises(InvalidRequest, match="Cannot page queries with both ORDER BY and a IN"):
        db.run(query, page_size=5)
