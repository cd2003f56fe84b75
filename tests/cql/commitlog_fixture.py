"""The statements behind ``tests/cql/data/commitlog-v1``: a data directory kept as written.

The files pin the commit log's byte format: a snapshot (schema, stored rows, partition and
range tombstones) and a segment after it holding every kind of mutation record (INSERT with
and without collections, row writes with counters, collection elements and list indexes, row,
partition and range tombstones, TRUNCATE, CREATE TABLE and ALTER TABLE ADD, a batch). The
tests replay them and compare with an engine that ran the same statements.
Regenerate them (``python -m tests.cql.commitlog_fixture``) only when the format changes on
purpose, and keep a reader for the old one.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions

FIXTURE = Path(__file__).parent / "data" / "commitlog-v1"
NODE = NodeInfo("127.0.0.1", 9042, uuid.UUID(int=1))

BEFORE_SNAPSHOT = (
    "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    "CREATE TABLE ks.msgs (p int, c int, v text, l list<int>, s set<text>, m map<text, int>,"
    " PRIMARY KEY (p, c)) WITH CLUSTERING ORDER BY (c DESC)",
    "CREATE TABLE ks.hits (k text PRIMARY KEY, n counter)",
    "INSERT INTO ks.msgs (p, c, v) VALUES (1, 1, 'one')",
    "INSERT INTO ks.msgs (p, c, v, l) VALUES (1, 2, 'two', [1, 2])",
    "INSERT INTO ks.msgs (p, c, v, s) VALUES (1, 3, 'three', {'a', 'b'})",
    "INSERT INTO ks.msgs (p, c, v, m) VALUES (2, 1, 'four', {'x': 1})",
    "INSERT INTO ks.msgs (p, c, v) VALUES (2, 2, 'five')",
    "INSERT INTO ks.msgs (p, c, v) VALUES (3, 1, 'six')",
    "DELETE FROM ks.msgs WHERE p = 2 AND c = 2",
    "DELETE FROM ks.msgs WHERE p = 3",
    "DELETE FROM ks.msgs WHERE p = 1 AND c > 2",
    "UPDATE ks.hits SET n = n + 5 WHERE k = 'a'",
    "UPDATE ks.hits SET n = n - 2 WHERE k = 'a'",
)

AFTER_SNAPSHOT = (
    "CREATE TABLE ks.plain (k int PRIMARY KEY, v text)",
    "ALTER TABLE ks.msgs ADD extra text",
    "INSERT INTO ks.plain (k, v) VALUES (1, 'gone')",
    "TRUNCATE ks.plain",
    "INSERT INTO ks.plain (k, v) VALUES (2, 'kept')",
    "INSERT INTO ks.plain (k, v) VALUES (3, 'old') USING TIMESTAMP 1000",
    "INSERT INTO ks.msgs (p, c, v, l, s, m, extra) VALUES (4, 1, 'seven', [5, 6], {'c'},"
    " {'y': 2}, 'more') USING TTL 315360000",
    "UPDATE ks.msgs SET l = l + [7], s = s + {'d'}, m['z'] = 3, v = 'eight' WHERE p = 4 AND c = 1",
    "UPDATE ks.msgs SET l = [0] + l WHERE p = 4 AND c = 1",
    "UPDATE ks.msgs SET l[1] = 9 WHERE p = 4 AND c = 1",
    "UPDATE ks.msgs SET s = s - {'c'}, l = l - [7] WHERE p = 4 AND c = 1",
    "DELETE m['y'] FROM ks.msgs WHERE p = 4 AND c = 1",
    "INSERT INTO ks.msgs (p, c, v) VALUES (5, 1, 'nine')",
    "INSERT INTO ks.msgs (p, c, v) VALUES (5, 2, 'ten')",
    "INSERT INTO ks.msgs (p, c, v) VALUES (5, 3, 'eleven')",
    "INSERT INTO ks.msgs (p, c, v) VALUES (5, 4, 'twelve')",
    "DELETE v FROM ks.msgs WHERE p = 5 AND c = 1",
    "DELETE FROM ks.msgs WHERE p = 5 AND c = 2",
    "DELETE FROM ks.msgs WHERE p = 5 AND c >= 3 AND c < 4",
    "DELETE FROM ks.msgs WHERE p = 2",
    "INSERT INTO ks.msgs (p, c, v) VALUES (2, 9, 'after the tombstone')",
    "UPDATE ks.hits SET n = n + 10 WHERE k = 'a'",
    "UPDATE ks.hits SET n = n + 1 WHERE k = 'b'",
    "BEGIN BATCH INSERT INTO ks.plain (k, v) VALUES (4, 'batched');"
    " UPDATE ks.msgs SET extra = 'batched' WHERE p = 1 AND c = 1;"
    " DELETE FROM ks.msgs WHERE p = 1 AND c = 2; APPLY BATCH",
    "UPDATE ks.msgs SET l = [1], m = {'w': 4} WHERE p = 6 AND c = 1",
)

TABLES = ("msgs", "hits", "plain")


def run(engine: Engine, cql: str) -> None:
    engine.query(cql, [], QueryOptions(), "ks")


async def write(directory: Path) -> None:
    """Run the statements on an engine logging to ``directory``; leave it as a crash would."""
    engine = Engine(directory, NODE)
    await engine.start()
    for cql in BEFORE_SNAPSHOT:
        run(engine, cql)
    await engine.snapshot()
    for cql in AFTER_SNAPSHOT:
        run(engine, cql)
    durable = engine.durable()
    assert durable is not None
    await durable


def regenerate() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(write(Path(scratch)))
        shutil.rmtree(FIXTURE, ignore_errors=True)
        FIXTURE.mkdir(parents=True)
        for path in sorted(Path(scratch).iterdir()):
            shutil.copyfile(path, FIXTURE / path.name)
            print(f"{FIXTURE / path.name}: {path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
