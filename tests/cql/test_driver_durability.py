"""Durability and restarts: acknowledged writes survive SIGKILL; drivers re-prepare."""

from __future__ import annotations

from pathlib import Path

import pytest
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.policies import ConstantReconnectionPolicy

from chat.embedded.cql.process import EmbeddedCqlServer
from tests.polling import wait_for

SCHEMA = (
    "CREATE KEYSPACE durable WITH replication = "
    "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    "CREATE TABLE durable.t (k int, c int, v text, PRIMARY KEY (k, c))",
)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    rows = 3000
    with EmbeddedCqlServer(data_dir=tmp_path / "data") as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            for statement in SCHEMA:
                session.execute(statement)
            insert = session.prepare("INSERT INTO durable.t (k, c, v) VALUES (?, ?, ?)")
            futures = [session.execute_async(insert, [i % 10, i, f"v{i}"]) for i in range(rows)]
            for future in futures:
                future.result()  # acknowledged
        finally:
            cluster.shutdown()
        server.kill()
        server.start()
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            got = {(r.c, r.v) for r in session.execute("SELECT c, v FROM durable.t")}
            assert got == {(i, f"v{i}") for i in range(rows)}
            assert "t" in cluster.metadata.keyspaces["durable"].tables
        finally:
            cluster.shutdown()


def test_driver_reprepares_after_server_restart(tmp_path: Path) -> None:
    with EmbeddedCqlServer(data_dir=tmp_path / "data") as server:
        cluster = Cluster(
            [server.host],
            port=server.port,
            reprepare_on_up=False,  # force the UNPREPARED path instead of eager re-prepare
            reconnection_policy=ConstantReconnectionPolicy(0.05),
        )
        try:
            session = cluster.connect()
            for statement in SCHEMA:
                session.execute(statement)
            insert = session.prepare("INSERT INTO durable.t (k, c, v) VALUES (?, ?, ?)")
            session.execute(insert, [1, 1, "before"])
            server.restart()

            def insert_after_restart() -> bool:
                try:
                    session.execute(insert, [1, 2, "after"])
                except NoHostAvailable:
                    return False
                return True

            wait_for(insert_after_restart, what="the driver to reconnect and re-prepare")
            got = [(r.c, r.v) for r in session.execute("SELECT c, v FROM durable.t WHERE k = 1")]
            assert got == [(1, "before"), (2, "after")]
        finally:
            cluster.shutdown()


def test_sigterm_stops_cleanly_and_the_data_comes_back(tmp_path: Path) -> None:
    with EmbeddedCqlServer(data_dir=tmp_path / "data") as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            for statement in SCHEMA:
                session.execute(statement)
            session.execute("INSERT INTO durable.t (k, c, v) VALUES (1, 1, 'kept')")
        finally:
            cluster.shutdown()
        assert server.stop() == 0
        server.start()
        cluster = Cluster([server.host], port=server.port)
        try:
            row = cluster.connect().execute("SELECT v FROM durable.t WHERE k = 1").one()
            assert row.v == "kept"
        finally:
            cluster.shutdown()


def test_launcher_reports_a_server_that_cannot_listen(cql_server: EmbeddedCqlServer) -> None:
    clash = EmbeddedCqlServer(port=cql_server.port, startup_timeout=20)
    with pytest.raises(RuntimeError, match="exited with status 1 before listening"):
        clash.start()
