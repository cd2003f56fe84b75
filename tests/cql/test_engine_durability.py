"""The commit log and snapshots, driven through the engine facade (no server, no sockets)."""

from __future__ import annotations

import uuid
from pathlib import Path

from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.results import Rows

NODE = NodeInfo("127.0.0.1", 9042, uuid.uuid4())
SETUP = (
    "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    "CREATE TABLE ks.t (p int, c int, v text, l list<int>, PRIMARY KEY (p, c))",
    "CREATE TABLE ks.n (k int PRIMARY KEY, hits counter)",
)


def run(engine: Engine, cql: str) -> Rows | None:
    result = engine.query(cql, [], QueryOptions(), "ks")
    return result if isinstance(result, Rows) else None


def dump(engine: Engine) -> list[list[bytes | None]]:
    rows = run(engine, "SELECT * FROM t")
    counters = run(engine, "SELECT * FROM n")
    assert rows is not None
    assert counters is not None
    return [list(r) for r in rows.rows] + [list(r) for r in counters.rows]


def tear_last_record(data: Path) -> None:
    """Cut the newest segment mid-record, as a crash during the write would."""
    segment = max(data.glob("commitlog-*.log"))
    segment.write_bytes(segment.read_bytes()[:-3])


def count_files(data: Path, pattern: str) -> int:
    return len(list(data.glob(pattern)))


async def started(data: Path, **kw: float) -> Engine:
    engine = Engine(data, NODE, **kw)  # type: ignore[arg-type]
    await engine.start()
    return engine


async def write_sample(engine: Engine) -> None:
    for cql in SETUP:
        run(engine, cql)
    for p in range(20):
        run(engine, f"INSERT INTO t (p, c, v, l) VALUES ({p}, 1, 'v{p}', [1, 2])")
        run(engine, f"UPDATE t SET l = l + [3] WHERE p = {p} AND c = 1")
        run(engine, f"UPDATE n SET hits = hits + {p} WHERE k = {p % 3}")
    run(engine, "DELETE FROM t WHERE p = 3")
    run(engine, "UPDATE t USING TTL 1000 SET v = 'ttl' WHERE p = 4 AND c = 1")
    fut = engine.durable()
    assert fut is not None
    await fut


async def test_writes_are_replayed_from_the_log_after_a_crash(tmp_path: Path) -> None:
    engine = await started(tmp_path)
    await write_sample(engine)
    expected = dump(engine)
    # No close(): the process "dies" here; only fsynced log records remain.
    revived = await started(tmp_path)
    assert dump(revived) == expected
    assert len(expected) == 19 + 3
    await revived.close()


async def test_torn_tail_record_is_dropped_and_earlier_ones_kept(tmp_path: Path) -> None:
    engine = await started(tmp_path)
    await write_sample(engine)
    expected = dump(engine)
    run(engine, "INSERT INTO t (p, c, v) VALUES (99, 1, 'lost')")
    fut = engine.durable()
    assert fut is not None
    await fut
    tear_last_record(tmp_path)
    revived = await started(tmp_path)
    assert dump(revived) == expected
    await revived.close()


async def test_snapshot_compacts_the_log_and_restores_everything(tmp_path: Path) -> None:
    engine = await started(tmp_path, segment_bytes=4096)
    await write_sample(engine)
    await engine.snapshot()
    run(engine, "INSERT INTO t (p, c, v) VALUES (50, 1, 'after snapshot')")
    run(engine, "UPDATE n SET hits = hits + 100 WHERE k = 0")
    await engine.close()
    assert count_files(tmp_path, "snapshot-*.bin") == 1
    expected = dump(engine)
    revived = await started(tmp_path)
    assert dump(revived) == expected
    assert any(b"after snapshot" in r for r in dump(revived))
    await revived.close()


async def test_in_memory_engine_has_nothing_to_wait_for() -> None:
    engine = Engine(None, NODE)
    await engine.start()
    for cql in SETUP:
        run(engine, cql)
    run(engine, "INSERT INTO t (p, c, v) VALUES (1, 1, 'x')")
    assert engine.durable() is None
    await engine.close()
