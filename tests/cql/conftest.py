"""Fixtures for the CQL conformance suite: a real server subprocess and real driver sessions.

One in-memory server (``chat.embedded.cql.process`` on port 0) serves the whole session; each
test gets its own keyspace so tests stay independent without paying for a server each.
Tests that need a data dir or a restart start their own :class:`EmbeddedCqlServer`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Cluster, Session

from chat.embedded.cql.process import EmbeddedCqlServer

_keyspace_numbers = itertools.count()


@pytest.fixture(scope="session")
def cql_server() -> Iterator[EmbeddedCqlServer]:
    with EmbeddedCqlServer() as server:
        yield server


@pytest.fixture(scope="session")
def cluster(cql_server: EmbeddedCqlServer) -> Iterator[Any]:
    """A *default* Cluster: schema and token metadata on, libev reactor, token-aware policy."""
    cluster = Cluster([cql_server.host], port=cql_server.port)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def session(cluster: Any) -> Session:
    return cluster.connect()


@pytest.fixture
def keyspace(session: Session, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh keyspace named after the test, dropped afterwards."""
    base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:30]
    name = f"ks_{next(_keyspace_numbers)}_{base}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    try:
        yield name
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture
def ks_session(cluster: Any, keyspace: str) -> Iterator[Session]:
    """A session whose current keyspace (USE) is the test's keyspace."""
    session = cluster.connect(keyspace)
    try:
        yield session
    finally:
        session.shutdown()
