"""Replay of a data directory kept as written (``tests/cql/data/commitlog-v1``).

The directory holds a snapshot and a commit-log segment with every kind of mutation record;
replaying it must give the tables an engine gets by running the same statements, before and
after a restart, through the engine and through the server spoken to by the driver.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cassandra.cluster import Cluster

from chat.embedded.cql.engine import Engine, QueryOptions
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.cql.results import Rows
from tests.cql.commitlog_fixture import AFTER_SNAPSHOT, BEFORE_SNAPSHOT, FIXTURE, NODE, TABLES

Dump = dict[str, list[list[bytes | None]]]


def select(engine: Engine, cql: str) -> list[list[bytes | None]]:
    result = engine.query(cql, [], QueryOptions(), "ks")
    assert isinstance(result, Rows)
    return [list(row) for row in result.rows]


def dump(engine: Engine) -> Dump:
    return {table: select(engine, f"SELECT * FROM {table}") for table in TABLES}


async def started(directory: Path | None) -> Engine:
    engine = Engine(directory, NODE)
    await engine.start()
    return engine


async def expected_tables() -> Dump:
    """The tables of an engine (no data directory) that ran the statements behind the files."""
    engine = await started(None)
    for cql in (*BEFORE_SNAPSHOT, *AFTER_SNAPSHOT):
        engine.query(cql, [], QueryOptions(), "ks")
    tables = dump(engine)
    await engine.close()
    return tables


def copy_of_fixture(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


async def test_the_kept_data_directory_replays_to_the_tables_its_statements_wrote(
    tmp_path: Path,
) -> None:
    engine = await started(copy_of_fixture(tmp_path))
    replayed = dump(engine)
    assert replayed == await expected_tables()
    # A few values spelled out, so a wrong expectation cannot hide a wrong replay.
    assert select(engine, "SELECT n FROM hits WHERE k = 'a'") == [[(13).to_bytes(8, "big")]]
    assert sorted(select(engine, "SELECT k, v FROM plain")) == [
        [(2).to_bytes(4, "big"), b"kept"],
        [(3).to_bytes(4, "big"), b"old"],
        [(4).to_bytes(4, "big"), b"batched"],
    ]
    assert select(engine, "SELECT c FROM msgs WHERE p = 2") == [[(9).to_bytes(4, "big")]]
    assert select(engine, "SELECT c, v FROM msgs WHERE p = 5") == [
        [(4).to_bytes(4, "big"), b"twelve"],
        [(1).to_bytes(4, "big"), None],
    ]
    await engine.close()


async def test_the_kept_data_directory_survives_writes_and_restarts_after_its_replay(
    tmp_path: Path,
) -> None:
    data = copy_of_fixture(tmp_path)
    expected = await expected_tables()
    engine = await started(data)
    engine.query("INSERT INTO plain (k, v) VALUES (7, 'later')", [], QueryOptions(), "ks")
    durable = engine.durable()
    assert durable is not None
    await durable
    after = dump(engine)
    assert after["msgs"] == expected["msgs"]
    assert after["hits"] == expected["hits"]
    assert len(after["plain"]) == len(expected["plain"]) + 1
    crashed = await started(data)  # no close(): the old records and the new one replayed
    assert dump(crashed) == after
    await crashed.snapshot()  # a snapshot written now replaces the kept files
    await crashed.close()
    assert not (data / "snapshot-1.bin").exists()
    assert not (data / "commitlog-1.log").exists()
    reopened = await started(data)
    assert dump(reopened) == after
    await reopened.close()


def test_the_server_serves_the_kept_data_directory_before_and_after_a_restart(
    tmp_path: Path,
) -> None:
    with EmbeddedCqlServer(data_dir=copy_of_fixture(tmp_path)) as server:
        for attempt in ("first start", "restart"):
            cluster = Cluster([server.host], port=server.port)
            try:
                session = cluster.connect("ks")
                row = session.execute("SELECT l, s, m, v, extra FROM msgs WHERE p = 4 AND c = 1")
                assert list(row) == [([0, 9, 6], {"d"}, {"z": 3}, "eight", "more")], attempt
                hits = {r.k: r.n for r in session.execute("SELECT k, n FROM hits")}
                assert hits == {"a": 13, "b": 1}, attempt
                plain = {r.k: r.v for r in session.execute("SELECT k, v FROM plain")}
                if attempt == "first start":
                    assert plain == {2: "kept", 3: "old", 4: "batched"}
                    session.execute("INSERT INTO plain (k, v) VALUES (8, 'written by the server')")
                else:
                    assert plain == {2: "kept", 3: "old", 4: "batched", 8: "written by the server"}
            finally:
                cluster.shutdown()
            if attempt == "first start":
                server.restart()
