"""Connecting, metadata, routing, paging and events: what the driver itself relies on."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Cluster, Session
from cassandra.io.asyncioreactor import AsyncioConnection
from cassandra.query import SimpleStatement

from chat.embedded.cql.process import EmbeddedCqlServer
from tests.polling import wait_for

CQLSH = Path(sys.executable).with_name("cqlsh")


def test_default_cluster_negotiates_v4_and_builds_token_metadata(
    cluster: Any, session: Session, keyspace: str
) -> None:
    assert cluster.protocol_version == 4
    (host,) = cluster.metadata.all_hosts()
    assert host.is_up
    assert host.datacenter == "datacenter1"
    assert cluster.metadata.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner"
    assert cluster.metadata.token_map is not None
    assert keyspace in cluster.metadata.keyspaces


def test_asyncio_reactor_connects_and_queries(cql_server: EmbeddedCqlServer) -> None:
    cluster = Cluster([cql_server.host], port=cql_server.port, connection_class=AsyncioConnection)
    try:
        session = cluster.connect()
        (row,) = session.execute("SELECT release_version FROM system.local WHERE key = 'local'")
        assert row.release_version
    finally:
        cluster.shutdown()


def test_table_metadata_matches_the_ddl(session: Session, keyspace: str) -> None:
    session.execute(
        f"CREATE TABLE {keyspace}.t (a int, b text, c timeuuid, v map<text, int>, "
        "PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC)"
    )
    table = session.cluster.metadata.keyspaces[keyspace].tables["t"]
    assert [c.name for c in table.partition_key] == ["a", "b"]
    assert [c.name for c in table.clustering_key] == ["c"]
    assert table.columns["v"].cql_type == "map<text, int>"
    assert table.clustering_key[0].is_reversed
    assert "CLUSTERING ORDER BY (c DESC)" in table.export_as_string()


def test_prepared_statements_carry_routing_key_indexes(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (a int, b text, c int, v int, PRIMARY KEY ((a, b), c))")
    insert = ks_session.prepare("INSERT INTO t (v, c, b, a) VALUES (?, ?, ?, ?)")
    assert insert.routing_key_indexes == [3, 2]
    bound = insert.bind([1, 2, "x", 4])
    assert bound.routing_key is not None
    cluster = ks_session.cluster
    replicas = cluster.metadata.get_replicas(ks_session.keyspace, bound.routing_key)
    assert [h.endpoint for h in replicas] == [h.endpoint for h in cluster.metadata.all_hosts()]
    ks_session.execute(bound)
    assert ks_session.execute("SELECT v FROM t WHERE a = 4 AND b = 'x'").one().v == 1


def test_automatic_paging_walks_many_pages(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))")
    insert = ks_session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
    for p in range(7):
        for c in range(150):
            ks_session.execute_async(insert, [p, c, f"{p}:{c}"]).result()
    statement = SimpleStatement("SELECT p, c FROM t", fetch_size=100)
    result = ks_session.execute(statement)
    assert result.has_more_pages
    got = [(row.p, row.c) for row in result]
    assert len(got) == 1050
    assert len(set(got)) == 1050
    prepared = ks_session.prepare("SELECT c FROM t WHERE p = ?")
    prepared.fetch_size = 7
    assert [row.c for row in ks_session.execute(prepared, [3])] == list(range(150))


def test_manual_paging_state_resumes_where_the_page_ended(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (p int, c int, PRIMARY KEY (p, c))")
    for c in range(25):
        ks_session.execute("INSERT INTO t (p, c) VALUES (1, %s)", [c])
    statement = SimpleStatement("SELECT c FROM t WHERE p = 1", fetch_size=10)
    first = ks_session.execute(statement)
    page = [row.c for row in first.current_rows]
    assert page == list(range(10))
    second = ks_session.execute(statement, paging_state=first.paging_state)
    assert [row.c for row in second.current_rows] == list(range(10, 20))


def test_schema_change_events_reach_another_cluster(
    cql_server: EmbeddedCqlServer, session: Session, keyspace: str
) -> None:
    watcher = Cluster([cql_server.host], port=cql_server.port, schema_event_refresh_window=0.01)
    try:
        watcher.connect()
        session.execute(f"CREATE TABLE {keyspace}.fresh (k int PRIMARY KEY)")
        wait_for(
            lambda: "fresh" in watcher.metadata.keyspaces[keyspace].tables,
            what="the other cluster to learn of the new table",
        )
        session.execute(f"DROP TABLE {keyspace}.fresh")
        wait_for(
            lambda: "fresh" not in watcher.metadata.keyspaces[keyspace].tables,
            what="the other cluster to learn of the dropped table",
        )
    finally:
        watcher.shutdown()


def test_pipelined_requests_on_one_connection_all_complete(ks_session: Session) -> None:
    ks_session.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
    insert = ks_session.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
    futures = [ks_session.execute_async(insert, [k, k * 2]) for k in range(2000)]
    for future in futures:
        future.result()
    assert ks_session.execute("SELECT COUNT(*) FROM t").one()[0] == 2000


def run_cqlsh(server: EmbeddedCqlServer, statement: str) -> str:
    completed = subprocess.run(
        [str(CQLSH), server.host, str(server.port), "-e", statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_cqlsh_runs_a_query_and_describe(
    cql_server: EmbeddedCqlServer, session: Session, keyspace: str
) -> None:
    session.execute(f"CREATE TABLE {keyspace}.t (k int PRIMARY KEY, v text)")
    session.execute(f"INSERT INTO {keyspace}.t (k, v) VALUES (1, 'from-cqlsh')")
    assert "from-cqlsh" in run_cqlsh(cql_server, f"SELECT * FROM {keyspace}.t")
    described = run_cqlsh(cql_server, f"DESCRIBE TABLE {keyspace}.t")
    assert f"CREATE TABLE {keyspace}.t" in described
    assert "v text" in described
    assert keyspace in run_cqlsh(cql_server, "DESCRIBE KEYSPACES")


@pytest.mark.parametrize("version", [2, 5, 6])
def test_unsupported_protocol_versions_are_refused_on_the_wire(
    cql_server: EmbeddedCqlServer, version: int
) -> None:
    """The refusal a driver downgrades on: v4 reply header, same stream, the magic phrase."""
    with socket.create_connection((cql_server.host, cql_server.port), timeout=5) as sock:
        sock.sendall(struct.pack(">BBhBi", version, 0, 3, 0x05, 0))
        reply = b""
        while len(reply) < 9 or len(reply) < 9 + struct.unpack_from(">i", reply, 5)[0]:
            chunk = sock.recv(4096)
            assert chunk, "connection closed before the refusal"
            reply += chunk
    assert reply[0] == 0x84
    assert struct.unpack_from(">h", reply, 2)[0] == 3
    assert b"unsupported protocol version" in reply
