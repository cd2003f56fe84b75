"""Writes as ScyllaDB answers them, through the driver: UNSET values, conditional statements
and batches, same-timestamp ties, write timestamps, and the size limits.

Written from ScyllaDB's documentation (docs/kb/lwt-differences) and behaviour (its cqlpy
suite: test_unset.py, test_lwt.py, test_batch.py, test_using_timestamp.py, test_key_length.py
and the ported Cassandra batch tests).
"""

from __future__ import annotations

import time

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, Unavailable
from cassandra.cluster import Session
from cassandra.policies import FallthroughRetryPolicy
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, SimpleStatement

from tests.cql.test_driver_statements import rows
from tests.polling import wait_for

# ------------------------------------------------------------------------------- UNSET


def test_an_unset_value_leaves_its_column_untouched(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int PRIMARY KEY, a int, b int, li list<int>)")
    update = ks_session.prepare("UPDATE t SET a = ?, b = ? WHERE p = 1")
    ks_session.execute(update, [1, 2])
    ks_session.execute(update, [UNSET_VALUE, 3])
    ks_session.execute(update, [4, UNSET_VALUE])
    assert rows(ks_session, "SELECT a, b FROM t WHERE p = 1") == [(4, 3)]
    insert = ks_session.prepare("INSERT INTO t (p, a, b) VALUES (1, ?, ?)")
    ks_session.execute(insert, [UNSET_VALUE, 9])
    assert rows(ks_session, "SELECT a, b FROM t WHERE p = 1") == [(4, 9)]
    append = ks_session.prepare("UPDATE t SET li = li + ? WHERE p = 1")
    ks_session.execute(append, [[7]])
    ks_session.execute(append, [UNSET_VALUE])
    assert rows(ks_session, "SELECT li FROM t WHERE p = 1") == [([7],)]
    ks_session.execute(ks_session.prepare("INSERT INTO t (p, li) VALUES (1, ?)"), [UNSET_VALUE])
    assert rows(ks_session, "SELECT li FROM t WHERE p = 1") == [([7],)]


def test_an_unset_counter_increment_changes_nothing(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE c (p int PRIMARY KEY, n counter)")
    increment = ks_session.prepare("UPDATE c SET n = n + ? WHERE p = 1")
    ks_session.execute(increment, [3])
    ks_session.execute(increment, [UNSET_VALUE])
    assert rows(ks_session, "SELECT n FROM c WHERE p = 1") == [(3,)]


def test_unset_ttl_timestamp_and_limit_mean_their_defaults(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, a int, PRIMARY KEY (p, c))")
    with_ttl = ks_session.prepare("UPDATE t USING TTL ? SET a = ? WHERE p = 1 AND c = 1")
    ks_session.execute(with_ttl, [20000, 3])
    assert rows(ks_session, "SELECT ttl(a) FROM t WHERE p = 1")[0][0] > 10000
    ks_session.execute(with_ttl, [UNSET_VALUE, 4])
    assert rows(ks_session, "SELECT a, ttl(a) FROM t WHERE p = 1") == [(4, None)]
    stamped = ks_session.prepare("UPDATE t USING TIMESTAMP ? SET a = ? WHERE p = 1 AND c = 2")
    ks_session.execute(stamped, [UNSET_VALUE, 5])
    assert rows(ks_session, "SELECT a FROM t WHERE p = 1 AND c = 2") == [(5,)]
    limited = ks_session.prepare("SELECT c FROM t WHERE p = 1 LIMIT ?")
    assert len(rows(ks_session, limited, [1])) == 1
    assert len(rows(ks_session, limited, [UNSET_VALUE])) == 2


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM t WHERE p = 0 AND c = ?",
        "INSERT INTO t (p, c) VALUES (0, ?)",
        "INSERT INTO t (p, c) VALUES (0, ?) IF NOT EXISTS",
        "UPDATE t SET r = 42 WHERE p = 0 AND c = ?",
        "DELETE FROM t WHERE p = 0 AND c = ?",
    ],
)
def test_an_unset_key_or_restriction_is_refused_naming_it(
    ks_session: Session, statement: str
) -> None:
    ks_session.execute("CREATE TABLE IF NOT EXISTS t (p int, c int, r int, PRIMARY KEY (p, c))")
    with pytest.raises(InvalidRequest, match="Invalid unset value for column c"):
        ks_session.execute(ks_session.prepare(statement), [UNSET_VALUE])


def test_unset_in_an_if_condition_or_a_filter_is_refused(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, r int, PRIMARY KEY (p, c))")
    ks_session.execute("INSERT INTO t (p, c, r) VALUES (0, 1, 1)")
    conditional = ks_session.prepare("UPDATE t SET r = 42 WHERE p = 0 AND c = ? IF r = ?")
    with pytest.raises(InvalidRequest, match="unset"):
        ks_session.execute(conditional, [1, UNSET_VALUE])
    with pytest.raises(InvalidRequest, match="unset"):
        ks_session.execute(conditional, [UNSET_VALUE, 2])
    filtering = ks_session.prepare("SELECT * FROM t WHERE p = 0 AND r = ? ALLOW FILTERING")
    with pytest.raises(InvalidRequest, match="unset"):
        ks_session.execute(filtering, [UNSET_VALUE])


def test_unset_values_in_batch_items_are_skipped(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, s text, i int)")
    text_batch = ks_session.prepare(
        "BEGIN BATCH INSERT INTO t (k, s, i) VALUES (100, 'batchtext', 7); "
        "INSERT INTO t (k, s, i) VALUES (111, 'batchtext', 7); "
        "UPDATE t SET s = ?, i = ? WHERE k = 100; UPDATE t SET s = ?, i = ? WHERE k = 111; "
        "APPLY BATCH"
    )
    ks_session.execute(text_batch, [None, UNSET_VALUE, UNSET_VALUE, None])
    assert sorted(rows(ks_session, "SELECT k, s, i FROM t")) == [
        (100, None, 7),
        (111, "batchtext", None),
    ]
    update = ks_session.prepare("UPDATE t SET s = ?, i = ? WHERE k = ?")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add(update, ["x", UNSET_VALUE, 100])
    batch.add(update, [UNSET_VALUE, 1, 111])
    ks_session.execute(batch)
    assert sorted(rows(ks_session, "SELECT k, s, i FROM t")) == [
        (100, "x", 7),
        (111, "batchtext", 1),
    ]


# ------------------------------------------------------------------------------- LWT


def test_a_conditional_statement_answers_with_the_old_row_applied_or_not(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, r int, PRIMARY KEY (p, c))")
    first = ks_session.execute("INSERT INTO t (p, c, r) VALUES (1, 1, 1) IF NOT EXISTS")
    assert first.column_names == ["[applied]", "p", "c", "r"]
    assert [tuple(r) for r in first] == [(True, None, None, None)]
    again = ks_session.execute("INSERT INTO t (p, c, r) VALUES (1, 1, 9) IF NOT EXISTS")
    assert [tuple(r) for r in again] == [(False, 1, 1, 1)]
    update = ks_session.execute("UPDATE t SET r = 2 WHERE p = 1 AND c = 1 IF r = 1")
    assert update.was_applied
    assert update.column_names == ["[applied]", "r"]
    assert [tuple(r) for r in update] == [(True, 1)]
    with pytest.raises(InvalidRequest, match="Cannot provide custom timestamp for conditional"):
        ks_session.execute("UPDATE t USING TIMESTAMP 5 SET r = 3 WHERE p = 1 AND c = 1 IF r = 2")


def test_a_conditional_batch_applies_whole_and_answers_one_row_per_statement(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, r int, PRIMARY KEY (p, c))")
    ks_session.execute("INSERT INTO t (p, c, r) VALUES (1, 1, 1)")
    refused = ks_session.execute(
        "BEGIN BATCH UPDATE t SET r = 10 WHERE p = 1 AND c = 1 IF r = 5; "
        "INSERT INTO t (p, c, r) VALUES (1, 2, 2); APPLY BATCH"
    )
    assert refused.column_names == ["[applied]", "p", "c", "r"]
    assert [tuple(r) for r in refused] == [(False, 1, 1, 1), (False, None, None, None)]
    assert rows(ks_session, "SELECT c, r FROM t WHERE p = 1") == [(1, 1)]
    applied = ks_session.execute(
        "BEGIN BATCH UPDATE t SET r = 10 WHERE p = 1 AND c = 1 IF r = 1; "
        "INSERT INTO t (p, c, r) VALUES (1, 2, 2) IF NOT EXISTS; APPLY BATCH"
    )
    assert [tuple(r) for r in applied] == [(True, 1, 1, 1), (True, None, None, None)]
    assert rows(ks_session, "SELECT c, r FROM t WHERE p = 1") == [(1, 10), (2, 2)]
    both = ks_session.execute(
        "BEGIN BATCH UPDATE t SET r = 11 WHERE p = 1 AND c = 1 IF r = 10; "
        "UPDATE t SET r = 20 WHERE p = 1 AND c = 1 IF r = 2; APPLY BATCH"
    )
    assert [r.applied for r in both] == [False, False]


def test_a_conditional_batch_of_prepared_statements_with_ttl(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    put = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?) IF NOT EXISTS USING TTL 500")
    change = ks_session.prepare("UPDATE t USING TTL 1000 SET v = ? WHERE p = ? AND c = ? IF v = ?")
    batch = BatchStatement()
    batch.add(put, [1, 1, 1])
    batch.add(put, [1, 2, 2])
    result = ks_session.execute(batch)
    assert result.was_applied
    batch = BatchStatement()
    batch.add(change, [5, 1, 1, 1])
    batch.add(put, [1, 3, 3])
    assert ks_session.execute(batch).was_applied
    ttls = dict(rows(ks_session, "SELECT c, ttl(v) FROM t WHERE p = 1"))
    assert 900 < ttls[1] <= 1000
    assert 400 < ttls[3] <= 500


def test_conditional_batches_across_partitions_or_with_in_are_refused(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (a int, b int, c int, PRIMARY KEY (a, b))")
    with pytest.raises(
        InvalidRequest, match="BATCH with conditions cannot span multiple partitions"
    ):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET c = 1 WHERE a = 1 AND b = 1 IF c = 1; "
            "UPDATE t SET c = 2 WHERE a = 2 AND b = 1; APPLY BATCH"
        )
    with pytest.raises(
        InvalidRequest,
        match="IN on the clustering key columns is not supported with conditional updates",
    ):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET c = 100 WHERE a = 1 AND b = 1 IF c = 1; "
            "UPDATE t SET c = 200 WHERE a = 1 AND b IN (1, 2) IF c = 1; APPLY BATCH"
        )
    with pytest.raises(
        InvalidRequest,
        match="IN on the clustering key columns is not supported with conditional deletions",
    ):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET c = 100 WHERE a = 1 AND b = 1 IF c = 1; "
            "DELETE FROM t WHERE a = 1 AND b IN (1, 2) IF c = 1; APPLY BATCH"
        )
    with pytest.raises(InvalidRequest, match="IN on the partition key"):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET c = 100 WHERE a = 1 AND b = 1 IF c = 1; "
            "UPDATE t SET c = 200 WHERE a IN (1, 2) AND b = 1 IF c = 1; APPLY BATCH"
        )
    ks_session.execute("CREATE TABLE u (k int PRIMARY KEY, v int)")
    with pytest.raises(InvalidRequest, match="BATCH with conditions cannot span multiple tables"):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET c = 1 WHERE a = 1 AND b = 1 IF c = 1; "
            "UPDATE u SET v = 2 WHERE k = 1; APPLY BATCH"
        )


def test_unconditional_batches_may_use_in_on_clustering_columns(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v int, PRIMARY KEY (p, c))")
    ks_session.execute(
        "BEGIN BATCH UPDATE t SET v = 10 WHERE p = 0 AND c IN (3, 4); "
        "UPDATE t SET v = 20 WHERE p = 0 AND (c) IN ((5), (6)); "
        "UPDATE t SET v = 8 WHERE p = 0 AND (c) = (2); APPLY BATCH"
    )
    assert rows(ks_session, "SELECT c, v FROM t WHERE p = 0") == [
        (2, 8),
        (3, 10),
        (4, 10),
        (5, 20),
        (6, 20),
    ]


# ------------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([None, "a", 1], "Invalid null value in condition for column p"),
        ([1, "x" * 70000, 1], "Key length of 70000 is longer than maximum of 65535"),
        ([1, "a", UNSET_VALUE], None),  # an unset regular value is fine: the batch applies
    ],
)
def test_a_batch_with_an_invalid_statement_applies_none_of_it(
    ks_session: Session, bad: list[object], message: str | None
) -> None:
    ks_session.execute("CREATE TABLE t (p int, c text, v int, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
    for batch_type in (BatchType.LOGGED, BatchType.UNLOGGED):
        batch = BatchStatement(batch_type=batch_type)
        batch.add(insert, [7, "first", 1])
        batch.add(insert, [8, "second", 2])
        batch.add(insert, bad)
        if message is None:
            ks_session.execute(batch)
            assert len(rows(ks_session, "SELECT * FROM t")) == 3
            continue
        with pytest.raises(InvalidRequest, match=message):
            ks_session.execute(batch)
        assert rows(ks_session, "SELECT * FROM t") == []


def test_a_list_index_out_of_bounds_fails_the_whole_batch(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int PRIMARY KEY, v int, li list<int>)")
    ks_session.execute("INSERT INTO t (p, li) VALUES (1, [10])")
    with pytest.raises(InvalidRequest, match="List index 5 out of bound, list has size 1"):
        ks_session.execute(
            "BEGIN BATCH UPDATE t SET v = 3 WHERE p = 1; "
            "UPDATE t SET li[5] = 0 WHERE p = 1; APPLY BATCH"
        )
    assert rows(ks_session, "SELECT v, li FROM t WHERE p = 1") == [(None, [10])]


def test_increments_of_one_counter_in_a_batch_all_count(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE c (p int PRIMARY KEY, n counter)")
    ks_session.execute(
        "BEGIN COUNTER BATCH UPDATE c SET n = n + 1 WHERE p = 1; "
        "UPDATE c SET n = n + 2 WHERE p = 1; UPDATE c SET n = n - 4 WHERE p = 1; "
        "APPLY BATCH"
    )
    assert rows(ks_session, "SELECT n FROM c WHERE p = 1") == [(-1,)]
    increment = ks_session.prepare("UPDATE c SET n = n + ? WHERE p = ?")
    batch = BatchStatement(batch_type=BatchType.COUNTER)
    batch.add(increment, [5, 1])
    batch.add(increment, [5, 1])
    batch.add(increment, [None, 1])
    with pytest.raises(InvalidRequest, match="Invalid null value for counter increment on n"):
        ks_session.execute(batch)
    assert rows(ks_session, "SELECT n FROM c WHERE p = 1") == [(-1,)]


# ------------------------------------------------------------------------------- timestamps


def test_same_timestamp_writes_are_resolved_as_scylla_resolves_them(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v int, w int)")

    def write(k: int, v: int, extra: str = "") -> None:
        ks_session.execute(f"INSERT INTO t (k, v) VALUES ({k}, {v}) USING TIMESTAMP 1000{extra}")

    def value(k: int) -> int | None:
        return rows(ks_session, f"SELECT v FROM t WHERE k = {k}")[0][0]  # type: ignore[no-any-return]

    for k, (v1, v2) in enumerate([(1, 2), (2, 1)]):
        write(10 + k, v1)
        write(10 + k, v2)
        assert value(10 + k) == 2  # the greater value
        write(20 + k, v1)
        write(20 + k, v2, " AND TTL 1000")
        assert value(20 + k) == v2  # an expiring cell beats a non-expiring one
        write(30 + k, v1, " AND TTL 1000")
        write(30 + k, v2)
        assert value(30 + k) == v1
        write(40 + k, v1, " AND TTL 1000")
        write(40 + k, v2, " AND TTL 2000")
        assert value(40 + k) == v2  # the later expiry wins
    write(50, 5)
    ks_session.execute("DELETE v FROM t USING TIMESTAMP 1000 WHERE k = 50")
    ks_session.execute("INSERT INTO t (k, w) VALUES (50, 1)")
    assert value(50) is None  # a tombstone beats a live cell of the same timestamp


def test_a_longer_lived_value_of_the_same_timestamp_survives_the_shorter_one(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
    ks_session.execute("INSERT INTO t (k, v) VALUES (1, 2) USING TIMESTAMP 1000 AND TTL 1")
    ks_session.execute("INSERT INTO t (k, v) VALUES (1, 1) USING TIMESTAMP 1000 AND TTL 60")
    started = time.monotonic()
    wait_for(lambda: time.monotonic() - started > 1.2, within=5, what="the 1 s TTL to pass")
    assert rows(ks_session, "SELECT v FROM t WHERE k = 1") == [(1,)]


def test_using_timestamp_accepts_negatives_and_refuses_the_reserved_and_the_far_future(
    ks_session: Session,
) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
    write = ks_session.prepare("INSERT INTO t (k, v) VALUES (?, ?) USING TIMESTAMP ?")
    for ts in (-(2**63) + 1, -100, -1):
        ks_session.execute(write, [1, 1, ts])
        assert rows(ks_session, "SELECT writetime(v) FROM t WHERE k = 1") == [(ts,)]
    with pytest.raises(InvalidRequest, match="bound"):
        ks_session.execute(write, [1, 1, -(2**63)])
    with pytest.raises(InvalidRequest, match="into the future"):
        ks_session.execute(f"INSERT INTO t (k, v) VALUES (2, 1) USING TIMESTAMP {time.time_ns()}")
    with pytest.raises(InvalidRequest, match="into the future"):
        ks_session.execute(
            f"BEGIN BATCH USING TIMESTAMP {time.time_ns()} "
            "INSERT INTO t (k, v) VALUES (2, 1); APPLY BATCH"
        )


def test_counter_updates_take_no_custom_timestamp_or_ttl(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE c (k int PRIMARY KEY, n counter)")
    with pytest.raises(InvalidRequest, match="Cannot provide custom timestamp for counter updates"):
        ks_session.execute("UPDATE c USING TIMESTAMP 5 SET n = n + 1 WHERE k = 1")
    with pytest.raises(InvalidRequest, match="Cannot provide custom TTL for counter updates"):
        ks_session.execute("UPDATE c USING TTL 5 SET n = n + 1 WHERE k = 1")


# ------------------------------------------------------------------------------- limits


def test_a_batch_above_the_fail_threshold_is_too_large(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, t text)")
    value = "x" * 1024

    def big_batch(rows_in_kb: int) -> str:
        inserts = "\n".join(
            f"INSERT INTO t (k, t) VALUES ({i}, '{value}');" for i in range(rows_in_kb)
        )
        return f"BEGIN BATCH\n{inserts}\nAPPLY BATCH"

    with pytest.raises(InvalidRequest, match="Batch too large"):
        ks_session.execute(big_batch(1025))
    assert rows(ks_session, "SELECT COUNT(*) FROM t") == [(0,)]
    ks_session.execute(big_batch(900))
    insert = ks_session.prepare("INSERT INTO t (k, t) VALUES (?, ?)")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for i in range(1100):
        batch.add(insert, [i, value])
    with pytest.raises(InvalidRequest, match="Batch too large"):
        ks_session.execute(batch)
    one_partition = BatchStatement(batch_type=BatchType.UNLOGGED)
    for _ in range(1100):  # one partition: never too large, as in ScyllaDB
        one_partition.add(insert, [7, value])
    ks_session.execute(one_partition)


def test_keys_over_64_kib_are_refused(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p text, c text, v int, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c) VALUES (?, ?)")
    big = "x" * (65 * 1024)
    with pytest.raises(InvalidRequest, match="Key length of 66560 is longer than maximum of 65535"):
        ks_session.execute(insert, [big, "hello"])
    with pytest.raises(InvalidRequest, match="Key length"):
        ks_session.execute(insert, ["hello", big])
    ks_session.execute(insert, ["p" * 65535, "c"])
    ks_session.execute(insert, ["p", "c" * 65535])
    ks_session.execute("CREATE TABLE two (p1 text, p2 text, c int, PRIMARY KEY ((p1, p2), c))")
    pair = ks_session.prepare("INSERT INTO two (p1, p2, c) VALUES (?, ?, 1)")
    ks_session.execute(pair, ["a" * 100, "b" * (65535 - 4 - 100)])
    with pytest.raises(InvalidRequest, match="Key length"):
        ks_session.execute(pair, ["a" * 32768, "b" * 32768])


# ------------------------------------------------------------------------------- consistency


def at(level: int, query: str) -> SimpleStatement:
    """``query`` at ``level``, errors raised as they come (the default policy retries once)."""
    return SimpleStatement(query, consistency_level=level, retry_policy=FallthroughRetryPolicy())


def test_consistency_levels_beyond_one_node_are_unavailable(session: Session) -> None:
    session.execute(
        "CREATE KEYSPACE IF NOT EXISTS rf3 WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    try:
        session.execute("CREATE TABLE IF NOT EXISTS rf3.t (k int PRIMARY KEY, v int)")
        for level in (ConsistencyLevel.ONE, ConsistencyLevel.LOCAL_ONE, ConsistencyLevel.ANY):
            session.execute(at(level, "INSERT INTO rf3.t (k, v) VALUES (1, 1)"))
        for level, needed in (
            (ConsistencyLevel.QUORUM, 2),
            (ConsistencyLevel.ALL, 3),
            (ConsistencyLevel.TWO, 2),
        ):
            with pytest.raises(Unavailable) as refused:
                session.execute(at(level, "SELECT * FROM rf3.t WHERE k = 1"))
            assert refused.value.required_replicas == needed
            assert refused.value.alive_replicas == 1
        with pytest.raises(
            InvalidRequest, match="ANY ConsistencyLevel is only supported for writes"
        ):
            session.execute(at(ConsistencyLevel.ANY, "SELECT * FROM rf3.t"))
        with pytest.raises(Unavailable):  # the Paxos round needs a quorum of 3
            session.execute(
                at(ConsistencyLevel.ONE, "INSERT INTO rf3.t (k, v) VALUES (2, 2) IF NOT EXISTS")
            )
    finally:
        session.execute("DROP KEYSPACE rf3")


def test_quorum_on_a_single_replica_keyspace_is_served(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
    for level in (ConsistencyLevel.QUORUM, ConsistencyLevel.ALL, ConsistencyLevel.LOCAL_QUORUM):
        ks_session.execute(at(level, "INSERT INTO t (k, v) VALUES (1, 1)"))
    with pytest.raises(Unavailable):
        ks_session.execute(at(ConsistencyLevel.THREE, "SELECT * FROM t"))
