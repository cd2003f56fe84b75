"""The embedded server's memory budget, through the real driver over a real socket.

Past its budget the server refuses writes that add data with ScyllaDB's Overloaded error
(0x1001), which the driver hands to its retry policy as a request error; reads and deletions
go on, and deleting data or letting TTLs expire brings writes back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import RetryPolicy
from cassandra.protocol import OverloadedErrorMessage
from cassandra.query import BatchStatement, BatchType

from chat.embedded.cql.process import EmbeddedCqlServer
from tests.polling import wait_for

BUDGET = 256 * 1024
ROW_TEXT = "x" * 500
TTL = 4


class RecordingRetryPolicy(RetryPolicy):  # type: ignore[misc]
    """The default decisions, remembering what reached ``on_request_error``."""

    def __init__(self) -> None:
        self.request_errors: list[Any] = []

    def on_request_error(self, query: Any, consistency: Any, error: Any, retry_num: int) -> Any:
        self.request_errors.append(error)
        return super().on_request_error(query, consistency, error, retry_num)


@pytest.fixture
def retries() -> RecordingRetryPolicy:
    return RecordingRetryPolicy()


@pytest.fixture
def budget_session(retries: RecordingRetryPolicy) -> Iterator[Session]:
    with EmbeddedCqlServer(memory_budget=str(BUDGET)) as server:
        profile = ExecutionProfile(retry_policy=retries)
        cluster = Cluster(
            [server.host], port=server.port, execution_profiles={EXEC_PROFILE_DEFAULT: profile}
        )
        try:
            session = cluster.connect()
            session.execute(
                "CREATE KEYSPACE mb WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            session.execute("CREATE TABLE mb.t (p int, c int, v text, PRIMARY KEY (p, c))")
            session.set_keyspace("mb")
            yield session
        finally:
            cluster.shutdown()


def stats(session: Session) -> dict[str, int]:
    return {
        r.name: r.value for r in session.execute("SELECT name, value FROM system.embedded_stats")
    }


def overloaded(exc: NoHostAvailable) -> OverloadedErrorMessage:
    (error,) = exc.errors.values()
    assert isinstance(error, OverloadedErrorMessage), error
    return error


def fill_until_refused(session: Session, partition: int, ttl: int = 0) -> int:
    """Insert rows until the server refuses one; the rows it accepted."""
    insert = session.prepare(f"INSERT INTO t (p, c, v) VALUES (?, ?, ?) USING TTL {ttl}")
    for c in range(100_000):
        try:
            session.execute(insert, (partition, c, ROW_TEXT))
        except NoHostAvailable as exc:
            overloaded(exc)
            return c
    pytest.fail("the server never refused a write")


def test_writes_past_the_budget_are_refused_as_overloaded_and_reads_are_unchanged(
    budget_session: Session, retries: RecordingRetryPolicy
) -> None:
    session = budget_session
    accepted = fill_until_refused(session, 1)
    assert accepted > 100
    before = stats(session)
    assert before["over_memory_budget"] == 1
    assert before["store_memory_bytes"] > BUDGET == before["memory_budget_bytes"]
    assert before["writes_refused_overloaded"] == 1
    # The driver took it as a request error (its retry policy's to decide), not as a bad query.
    assert any(isinstance(e, OverloadedErrorMessage) for e in retries.request_errors)

    with pytest.raises(NoHostAvailable) as refused:
        session.execute("UPDATE t SET v = 'new' WHERE p = 1 AND c = 0")
    assert "memory budget" in overloaded(refused.value).summary_msg()
    with pytest.raises(NoHostAvailable):
        session.execute("INSERT INTO t (p, c, v) VALUES (2, 0, 'lwt') IF NOT EXISTS")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    batch.add("INSERT INTO t (p, c, v) VALUES (3, 0, 'b')")
    with pytest.raises(NoHostAvailable):
        session.execute(batch)
    assert stats(session)["writes_refused_overloaded"] == 4

    # Reads answer as before: every accepted row, none of the refused ones.
    assert session.execute("SELECT count(*) FROM t WHERE p = 1").one()[0] == accepted
    assert session.execute("SELECT v FROM t WHERE p = 1 AND c = 0").one().v == ROW_TEXT
    assert session.execute("SELECT * FROM t WHERE p IN (2, 3)").all() == []
    assert stats(session)["store_rows"] == before["store_rows"]


def test_deleting_data_brings_the_store_back_under_its_budget(budget_session: Session) -> None:
    session = budget_session
    fill_until_refused(session, 1)
    session.execute("DELETE FROM t WHERE p = 1")  # deletions are never refused
    after = stats(session)
    assert after["over_memory_budget"] == 0
    assert after["store_memory_bytes"] < BUDGET // 4
    session.execute("INSERT INTO t (p, c, v) VALUES (1, 0, 'back')")
    assert session.execute("SELECT v FROM t WHERE p = 1").one().v == "back"
    assert fill_until_refused(session, 2) > 100  # the whole budget is there again


def test_rows_whose_ttl_expired_are_forgotten_and_writes_come_back(
    budget_session: Session,
) -> None:
    session = budget_session
    started = time.monotonic()
    filled = fill_until_refused(session, 1, ttl=TTL)
    assert time.monotonic() - started < TTL, "too slow to fill the budget within the TTL"

    def accepted() -> bool:
        try:
            session.execute("INSERT INTO t (p, c, v) VALUES (9, 0, 'after expiry')")
        except NoHostAvailable as exc:
            overloaded(exc)
            return False
        return True

    wait_for(accepted, within=15, what="a write accepted once the TTLs expired")
    after = stats(session)
    assert after["expired_rows_forgotten"] > 0
    assert after["over_memory_budget"] == 0
    assert after["store_rows"] < filled
    assert session.execute("SELECT count(*) FROM t WHERE p = 1").one()[0] < filled
