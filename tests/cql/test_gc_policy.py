"""The server's garbage-collector policy (``gc_policy``): survivors frozen, no cyclic garbage.

The policy is only sound if the request paths create no reference cycles (a frozen cycle is
never collected) and if frozen store data is still freed by reference counting. Both are
checked here: end to end against a server subprocess through ``system.embedded_stats``, and
precisely in-process for every kind of statement the engine runs.
"""

from __future__ import annotations

import collections
import gc
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Cluster, Session
from cassandra.query import BatchStatement, BatchType

from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.errors import CqlError
from chat.embedded.cql.process import EmbeddedCqlServer

ROWS_PER_BATCH = 100
BULK_BATCHES = 200  # 20,000 partitions: several young collections (a row alone is one bytes)


@pytest.fixture(scope="module")
def own_session() -> Iterator[Session]:
    """A server of its own: the gc counters must not see other tests' DDL."""
    with EmbeddedCqlServer() as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            session.execute(
                "CREATE KEYSPACE gcp WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            session.execute(
                "CREATE TABLE gcp.t (p bigint, c bigint, a text, b text, PRIMARY KEY (p, c))"
            )
            yield session
        finally:
            cluster.shutdown()


def gc_stats(session: Session) -> dict[str, int]:
    rows = session.execute("SELECT name, value FROM system.embedded_stats")
    return {r.name: r.value for r in rows if r.name.startswith("gc_")}


def bulk_insert(session: Session, base: int) -> None:
    insert = session.prepare("INSERT INTO gcp.t (p, c, a, b) VALUES (?, ?, ?, ?)")
    futures = []
    for n in range(BULK_BATCHES):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for i in range(ROWS_PER_BATCH):
            m = base + n * ROWS_PER_BATCH + i
            # A partition each: a stored row is one bytes object, which the collector does
            # not track; a partition is a few objects it does.
            batch.add(insert, (m, m, "author", "body " * 10))
        futures.append(session.execute_async(batch))
        if len(futures) >= 32:
            for f in futures:
                f.result()
            futures = []
    for f in futures:
        f.result()


def mixed_requests(session: Session) -> None:
    """Every request kind, errors included, with statements prepared here (new each call)."""
    tag = uuid.uuid4().hex[:8]
    select = session.prepare(f"SELECT * FROM gcp.t WHERE p = ? AND c >= ? /* {tag} */")
    select_in = session.prepare(f"SELECT p, c, a FROM gcp.t WHERE p IN ? /* {tag} */")
    lwt = session.prepare("INSERT INTO gcp.t (p, c, a) VALUES (?, ?, ?) IF NOT EXISTS")
    update = session.prepare("UPDATE gcp.t USING TTL 60 SET a = ? WHERE p = ? AND c = ?")
    delete = session.prepare("DELETE FROM gcp.t WHERE p = ? AND c = ?")
    for n in range(50):
        select.fetch_size = 3
        list(session.execute(select, (n % 97, 0)))
        list(session.execute(select_in, ([1, 2, 3, n],)))
        session.execute(lwt, (n % 5, n, "lwt"))
        session.execute(update, ("updated", n % 97, n))
        session.execute(delete, (n % 97, n + 1))
        session.execute(f"SELECT count(*) FROM gcp.t WHERE p = {n % 97}")
        for bad in (
            "SELEC nonsense",
            "SELECT * FROM gcp.nosuch",
            "INSERT INTO gcp.t (p) VALUES (1)",
        ):
            with pytest.raises(Exception):  # noqa: B017, PT011 - any error answer will do
                session.execute(bad)


def test_store_data_is_frozen_and_request_paths_leave_no_cycles(own_session: Session) -> None:
    bulk_insert(own_session, 0)  # past the first collections (connection set-up, DDL)
    before = gc_stats(own_session)
    mixed_requests(own_session)
    bulk_insert(own_session, 1_000_000)  # young collections over whatever the requests left
    after = gc_stats(own_session)
    assert after["gc_collections_gen0"] > before["gc_collections_gen0"]
    assert after["gc_freezes"] > before["gc_freezes"]
    # Survivors are frozen, so the rows written are out of the collector's reach ...
    assert after["gc_frozen_objects"] > before["gc_frozen_objects"] + BULK_BATCHES * 50
    # ... which is only sound because nothing the requests did left a reference cycle.
    assert after["gc_collected"] == before["gc_collected"]
    assert after["gc_uncollectable"] == 0


def test_frozen_rows_are_still_freed_by_reference_counting(own_session: Session) -> None:
    own_session.execute("CREATE TABLE gcp.gone (p bigint, c bigint, a text, PRIMARY KEY (p, c))")
    insert = own_session.prepare("INSERT INTO gcp.gone (p, c, a) VALUES (?, ?, ?)")
    for n in range(BULK_BATCHES):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for i in range(ROWS_PER_BATCH):
            batch.add(insert, (n * ROWS_PER_BATCH + i, i, "x"))
        own_session.execute(batch)
    bulk_insert(own_session, 2_000_000)  # make sure a collection froze the rows above
    frozen = gc_stats(own_session)["gc_frozen_objects"]
    own_session.execute("TRUNCATE gcp.gone")
    after = gc_stats(own_session)["gc_frozen_objects"]
    # Every truncated partition held at least a Partition and its run of rows, both frozen.
    assert frozen - after >= 2 * BULK_BATCHES * ROWS_PER_BATCH


# ------------------------------------------------------------------------------------------
# In-process: the exact count of cyclic garbage per kind of statement.

NODE = NodeInfo("127.0.0.1", 9042, uuid.uuid4())


def cyclic_garbage(action: Callable[[], object]) -> collections.Counter[str]:
    """Types of the objects only the cycle collector could free after ``action``."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        action()
        gc.collect()
        return collections.Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        if was_enabled:
            gc.enable()


def i64(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


def test_engine_statements_of_every_kind_leave_no_cyclic_garbage() -> None:
    """Run in a fresh interpreter: drivers of other tests in this one allocate concurrently."""
    probe = subprocess.run(
        [sys.executable, "-c", f"import {__name__} as m; m.check_engine_statements()"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr


def check_engine_statements() -> None:
    engine = Engine(None, NODE)
    options = QueryOptions()

    def q(cql: str) -> Any:
        try:
            return engine.query(cql, [], options, "ks")
        except CqlError as exc:
            return exc

    def ddl() -> None:
        q(
            "CREATE KEYSPACE ks WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        q(
            "CREATE TABLE ks.t (p bigint, b int, c bigint, v text, l list<int>, m map<text, int>,"
            " f frozen<list<text>>, PRIMARY KEY ((p, b), c)) WITH CLUSTERING ORDER BY (c DESC)"
        )
        q("CREATE TABLE ks.n (k int PRIMARY KEY, hits counter)")

    def statements() -> None:
        insert = engine.prepare("INSERT INTO t (p, b, c, v, f) VALUES (?, ?, ?, ?, ?)", "ks")
        select = engine.prepare("SELECT * FROM t WHERE p = ? AND b = ? AND c > ?", "ks")
        select_in = engine.prepare("SELECT p, c, v FROM t WHERE p IN ? AND b = 1", "ks")
        lwt = engine.prepare("INSERT INTO t (p, b, c, v) VALUES (?, ?, ?, ?) IF NOT EXISTS", "ks")
        two = b"\x00\x00\x00\x01\x00\x00\x00\x08" + i64(1)
        for n in range(200):
            values = [i64(n % 7), b"\x00\x00\x00\x01", i64(n), b"v", b"\x00\x00\x00\x00"]
            engine.execute(insert, values, options, "ks")
            engine.batch(
                1, [(insert, values), (insert, [*values[:2], i64(-n), b"w", None])], options, "ks"
            )
            engine.execute(
                select, [i64(n % 7), b"\x00\x00\x00\x01", i64(0)], QueryOptions(page_size=2), "ks"
            )
            engine.execute(select_in, [two], options, "ks")
            engine.execute(lwt, [i64(n % 7), b"\x00\x00\x00\x01", i64(n), b"x"], options, "ks")
            q("UPDATE t SET l = l + [1], m['a'] = 2 WHERE p = 1 AND b = 1 AND c = 1")
            q("UPDATE n SET hits = hits + 1 WHERE k = 1")
            q("DELETE FROM t WHERE p = 2 AND b = 1 AND c = 3")
            q("DELETE FROM t WHERE p = 2 AND b = 1 AND c > 10")
            q("SELECT count(*), max(c) FROM t WHERE p = 1 AND b = 1")

    def errors() -> None:
        for _ in range(20):
            q("SELEC nonsense")
            q("SELECT * FROM nosuch")
            q("INSERT INTO t (p, b, c) VALUES (null, 1, 1)")

    def schema_changes() -> None:
        q("ALTER TABLE t ADD w int")
        engine.prepare("SELECT w FROM t WHERE p = ? AND b = ?", "ks")
        q("TRUNCATE t")
        q("DROP TABLE t")

    for name, action in [
        ("ddl", ddl),
        ("statements", statements),
        ("errors", errors),
        ("schema changes", schema_changes),
    ]:
        assert cyclic_garbage(action) == collections.Counter(), name
