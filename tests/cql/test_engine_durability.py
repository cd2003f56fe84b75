"""The commit log and snapshots, driven through the engine facade (no server, no sockets)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from chat.embedded.cql.commitlog import CommitLog, frame
from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.results import Rows
from tests.polling import until

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


async def durable(engine: Engine) -> None:
    """Wait until every write made so far is on disk (a durable engine has a future for it)."""
    fut = engine.durable()
    assert fut is not None
    await fut


async def write_sample(engine: Engine) -> None:
    for cql in SETUP:
        run(engine, cql)
    for p in range(20):
        run(engine, f"INSERT INTO t (p, c, v, l) VALUES ({p}, 1, 'v{p}', [1, 2])")
        run(engine, f"UPDATE t SET l = l + [3] WHERE p = {p} AND c = 1")
        run(engine, f"UPDATE n SET hits = hits + {p} WHERE k = {p % 3}")
    run(engine, "DELETE FROM t WHERE p = 3")
    run(engine, "UPDATE t USING TTL 1000 SET v = 'ttl' WHERE p = 4 AND c = 1")
    await durable(engine)


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
    await durable(engine)
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


async def test_one_group_fsync_covers_every_write_buffered_before_it(tmp_path: Path) -> None:
    engine = await started(tmp_path, commit_sync_ms=50)
    for cql in SETUP:
        run(engine, cql)
    futures = []
    for p in range(50):
        run(engine, f"INSERT INTO t (p, c, v) VALUES ({p}, 0, 'x')")
        futures.append(engine.durable())
    assert len({id(f) for f in futures}) == 1
    fut = futures[-1]
    assert fut is not None
    await fut
    assert engine.stats.commit_fsyncs == 1
    assert engine.durable() is None
    await engine.close()


async def test_log_growth_triggers_a_snapshot_that_replays_identically(tmp_path: Path) -> None:
    engine = await started(tmp_path, segment_bytes=2048, commit_sync_ms=0)
    await write_sample(engine)
    for p in range(40):
        run(engine, f"INSERT INTO t (p, c, v) VALUES ({p}, 2, 'more')")
        await durable(engine)
    # The flusher starts the snapshot in the background.
    await until(lambda: engine.stats.snapshots, within=5, what="a snapshot once the log is full")
    assert count_files(tmp_path, "commitlog-0.log") == 0  # compacted away
    expected = dump(engine)
    revived = await started(tmp_path)  # the first engine never closed: a crash
    assert dump(revived) == expected
    await revived.close()


async def test_replaying_schema_records_twice_keeps_the_data(tmp_path: Path) -> None:
    """A snapshot taken while DDL ran can hold a change the following log repeats."""
    engine = await started(tmp_path)
    await write_sample(engine)
    expected = dump(engine)
    ks = engine.catalog.keyspace("ks")
    for table in list(ks.tables.values()):
        engine.catalog.apply(("create_table", table.to_record()))
    engine.catalog.apply(("create_keyspace", ks.to_record()))
    engine.catalog.apply(("drop_table", "ks", "gone"))
    assert dump(engine) == expected
    await engine.close()


async def test_snapshot_forgets_rows_whose_ttl_has_expired(tmp_path: Path) -> None:
    engine = await started(tmp_path)
    for cql in SETUP:
        run(engine, cql)
    past = QueryOptions(now_in_seconds=1)  # written "long ago" with a 10 s TTL: expired now
    engine.query("INSERT INTO t (p, c, v) VALUES (1, 1, 'gone') USING TTL 10", [], past, "ks")
    engine.query("INSERT INTO t (p, c, v) VALUES (2, 1, 'gone') USING TTL 10", [], past, "ks")
    run(engine, "INSERT INTO t (p, c, v) VALUES (2, 2, 'kept')")
    await engine.snapshot()
    table = engine.catalog.table("ks", "t")
    assert set(table.data.partitions) == {(2).to_bytes(4, "big")}
    assert dump(engine) == [[b"\x00\x00\x00\x02", b"\x00\x00\x00\x02", None, b"kept"]]
    run(engine, "INSERT INTO t (p, c, v) VALUES (1, 5, 'back')")
    assert len(dump(engine)) == 2
    await engine.close()
    revived = await started(tmp_path)
    assert dump(revived) == dump(engine)
    await revived.close()


async def test_log_growth_snapshots_again_only_after_logging_as_much_as_the_last_snapshot(
    tmp_path: Path,
) -> None:
    """A store bigger than ``segment_bytes`` is not rewritten every ``segment_bytes`` of log:
    the next background snapshot waits until the log has grown as large as the last one."""
    record = b"s" * 10_000
    store = [frame(record)]  # what a snapshot writes: the whole "store", one 10 kB record

    async def snapshot_source() -> AsyncIterator[bytes]:
        for chunk in store:
            yield chunk

    log = CommitLog(tmp_path, sync_ms=0, segment_bytes=1_000)
    assert list(log.recover()) == []
    log.open(snapshot_source)
    await log.compact()
    assert log.snapshots_written == 1

    log.append(b"w" * 5_000)  # past segment_bytes, short of the last snapshot's 10 kB
    await log.sync()
    assert not log.snapshot_running
    assert log.snapshots_written == 1

    log.append(b"w" * 6_000)  # now the log holds more than the last snapshot
    await log.sync()
    assert log.snapshot_running or log.snapshots_written == 2
    await log.close()
    assert log.snapshots_written == 2
    assert list(CommitLog(tmp_path).recover()) == [record]


COMPACT_SETUP = (
    "CREATE TABLE ks.msgs (e bigint, b int, at timestamp, id timeuuid, who text, body text,"
    " tags set<text>, meta frozen<map<text, text>>, PRIMARY KEY ((e, b), at, id))"
    " WITH CLUSTERING ORDER BY (at DESC, id DESC)",
    "CREATE TABLE ks.claims (k text PRIMARY KEY, n bigint, h blob)",
)


def stored_form(engine: Engine) -> tuple[list[object], int, int, int]:
    """Every stored row's bytes, every partition's tombstones, and what the store counts."""
    tables: list[object] = []
    for name in ("t", "n", "msgs", "claims"):
        data = engine.catalog.table("ks", name).data
        parts = sorted(
            (key, p.deleted_at, p.ranges or [], list(p.rows)) for key, p in data.partitions.items()
        )
        tables.append((name, parts, list(data.rows)))
    usage = engine.catalog.usage
    return (tables, usage.rows, usage.bytes, usage.partitions)


async def write_compact_sample(engine: Engine) -> None:
    await write_sample(engine)
    for cql in COMPACT_SETUP:
        run(engine, cql)
    insert = engine.prepare(
        "INSERT INTO msgs (e, b, at, id, who, body, meta) VALUES (?, ?, ?, ?, ?, ?, ?)", "ks"
    )
    claim = engine.prepare("INSERT INTO claims (k, n, h) VALUES (?, ?, ?) USING TTL ?", "ks")
    for n in range(300):
        values: list[bytes | None] = [
            (n % 3).to_bytes(8, "big"),
            b"\x00\x00\x00\x01",
            (1_700_000_000_000 + n).to_bytes(8, "big"),
            uuid.uuid1().bytes,
            b"sender %d" % n,
            b"x" * (n % 150),
            b"\x00\x00\x00\x00" if n % 2 else None,
        ]
        engine.execute(insert, values, QueryOptions(), "ks")
        ttl = (0 if n % 4 else 3600).to_bytes(4, "big")
        engine.execute(
            claim, [b"c%d" % n, n.to_bytes(8, "big"), b"h" * 16, ttl], QueryOptions(), "ks"
        )
    run(
        engine,
        "UPDATE msgs USING TIMESTAMP 9999999999 SET body = 'edited', tags = tags + {'a'} WHERE"
        " e = 1 AND b = 1 AND at = 1700000000001 AND id = 00000000-0000-1000-8000-000000000000",
    )
    run(engine, "DELETE FROM msgs WHERE e = 2 AND b = 1 AND at < 1700000000100")
    run(engine, "DELETE FROM msgs WHERE e = 0 AND b = 1")
    run(engine, "DELETE FROM claims WHERE k = 'c7'")
    run(engine, "UPDATE claims SET n = null WHERE k = 'c8'")
    await durable(engine)


async def test_replay_and_snapshots_restore_the_stored_rows_byte_for_byte(tmp_path: Path) -> None:
    engine = await started(tmp_path)
    await write_compact_sample(engine)
    expected = stored_form(engine)
    assert expected[1] > 300  # rows stored
    replayed = await started(tmp_path)  # no close(): rebuilt from the log alone
    assert stored_form(replayed) == expected
    await replayed.snapshot()
    run(replayed, "INSERT INTO claims (k, n) VALUES ('after', 1)")
    run(replayed, "DELETE FROM msgs WHERE e = 1 AND b = 1 AND at > 1700000000200")
    fut = replayed.durable()
    assert fut is not None
    await fut
    after = stored_form(replayed)
    loaded = await started(tmp_path)  # no close() again: the snapshot, then the log after it
    assert stored_form(loaded) == after
    await loaded.close()  # flushes and writes a last snapshot
    assert count_files(tmp_path, "snapshot-*.bin") == 1
    reloaded = await started(tmp_path)  # the snapshot alone
    assert stored_form(reloaded) == after
    assert dump(reloaded) == dump(replayed)
    await reloaded.close()
