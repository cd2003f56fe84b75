"""The commit log after I/O errors: nothing unsynced is acknowledged, nothing acknowledged is lost.

Faults are injected where the log meets the operating system: ``os.write``/``os.fsync``/
``os.ftruncate`` raise as a full or failing disk makes them raise (in-process engine), and a
real server subprocess runs under a file-size limit (``RLIMIT_FSIZE``), where the kernel
itself cuts a write short and then fails it with EFBIG — the torn segment is real.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cassandra import WriteFailure
from cassandra.cluster import Cluster

from chat.embedded.cql.commitlog import CommitLogFailed
from chat.embedded.cql.engine import Engine, NodeInfo, QueryOptions
from chat.embedded.cql.errors import WriteFailure as EngineWriteFailure
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.embedded.cql.results import Rows

NODE = NodeInfo("127.0.0.1", 9042, uuid.uuid4())
SCHEMA = (
    "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    "CREATE TABLE ks.t (p int PRIMARY KEY, v text)",
)


def run(engine: Engine, cql: str) -> Rows | None:
    result = engine.query(cql, [], QueryOptions(), "ks")
    return result if isinstance(result, Rows) else None


def stored(engine: Engine) -> dict[int, str]:
    rows = run(engine, "SELECT p, v FROM t")
    assert rows is not None
    return {int.from_bytes(p or b"", "big"): (v or b"").decode() for p, v in rows.rows}


async def started(data: Path) -> Engine:
    engine = Engine(data, NODE, commit_sync_ms=0)
    await engine.start()
    return engine


async def acknowledged(engine: Engine, cql: str) -> bool:
    """Run a write and wait for its fsync: True when it was acknowledged."""
    run(engine, cql)
    fut = engine.durable()
    assert fut is not None
    try:
        await fut
    except EngineWriteFailure:
        return False
    return True


class Faults:
    """Replaces one ``os`` function, failing its next ``times`` calls with ``errno``.

    ``partial`` makes a failing ``os.write`` first write half of its buffer, as a disk that
    fills up part-way through a write does.
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, name: str, code: int, partial: bool = False
    ) -> None:
        self.real: Callable[..., Any] = getattr(os, name)
        self.name, self.code, self.partial = name, code, partial
        self.remaining = 0
        monkeypatch.setattr(os, name, self)

    def fail_next(self, times: int = 1) -> None:
        self.remaining = times

    def __call__(self, fd: int, *args: Any) -> Any:
        if self.remaining <= 0:
            return self.real(fd, *args)
        self.remaining -= 1
        if self.partial and self.name == "write":
            data = bytes(args[0])
            self.real(fd, data[: len(data) // 2])
        raise OSError(self.code, os.strerror(self.code))


async def test_a_write_torn_by_a_full_disk_is_not_acknowledged_and_later_writes_survive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await started(tmp_path)
    for cql in SCHEMA:
        assert await acknowledged(engine, cql)
    assert await acknowledged(engine, "INSERT INTO t (p, v) VALUES (1, 'before')")
    write = Faults(monkeypatch, "write", errno.ENOSPC, partial=True)
    write.fail_next()
    assert not await acknowledged(engine, "INSERT INTO t (p, v) VALUES (2, 'torn')")
    assert await acknowledged(engine, "INSERT INTO t (p, v) VALUES (3, 'after')")
    assert await acknowledged(engine, "INSERT INTO t (p, v) VALUES (4, 'later')")
    assert engine._log is not None
    assert engine._log.failed is None
    # The process dies without closing: only what the log holds on disk comes back.
    revived = await started(tmp_path)
    assert stored(revived) == {1: "before", 3: "after", 4: "later"}
    await revived.close()


async def test_a_failed_fsync_is_not_acknowledged_and_replay_keeps_every_acknowledged_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await started(tmp_path)
    for cql in SCHEMA:
        assert await acknowledged(engine, cql)
    fsync = Faults(monkeypatch, "fsync", errno.EIO)
    acked = {}
    for p in range(30):
        if p in (7, 19):
            fsync.fail_next()
        if await acknowledged(engine, f"INSERT INTO t (p, v) VALUES ({p}, 'v{p}')"):
            acked[p] = f"v{p}"
    assert set(acked) == set(range(30)) - {7, 19}
    segments = [name for name in os.listdir(tmp_path) if name.startswith("commitlog-")]
    assert len(segments) == 3  # a fresh segment after each error
    revived = await started(tmp_path)
    assert stored(revived) == acked
    await revived.close()


async def test_a_log_that_cannot_be_repaired_refuses_writes_and_keeps_what_it_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await started(tmp_path)
    for cql in SCHEMA:
        assert await acknowledged(engine, cql)
    assert await acknowledged(engine, "INSERT INTO t (p, v) VALUES (1, 'kept')")
    Faults(monkeypatch, "fsync", errno.EIO).fail_next()
    Faults(monkeypatch, "ftruncate", errno.EIO).fail_next()
    assert not await acknowledged(engine, "INSERT INTO t (p, v) VALUES (2, 'lost')")
    assert engine._log is not None
    assert engine._log.failed is not None
    with pytest.raises(CommitLogFailed, match="refused until the server is restarted"):
        run(engine, "INSERT INTO t (p, v) VALUES (3, 'refused')")
    assert 3 not in stored(engine)  # refused before it touched the memtable
    assert stored(engine)[1] == "kept"  # reads still work
    await engine.close()
    revived = await started(tmp_path)
    assert stored(revived)[1] == "kept"
    assert 3 not in stored(revived)
    await revived.close()


def test_data_files_are_private_to_the_server_user(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with EmbeddedCqlServer(data_dir=data) as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            for cql in SCHEMA:
                session.execute(cql)
            session.execute("INSERT INTO ks.t (p, v) VALUES (1, 'x')")
        finally:
            cluster.shutdown()
    # The clean stop wrote a snapshot too.
    assert list(data.glob("snapshot-*.bin"))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


class FileSizeLimitedServer(EmbeddedCqlServer):
    """The server with RLIMIT_FSIZE set: the kernel cuts writes past ``limit`` bytes short,
    then fails them with EFBIG (Python ignores SIGXFSZ, so the write raises instead)."""

    def __init__(self, data_dir: Path, limit: int) -> None:
        super().__init__(data_dir=data_dir, commit_sync_ms=0)
        self.limit = limit

    def command(self) -> list[str]:
        argv = super().command()
        module_args = argv[argv.index("chat.embedded.cql.process") + 1 :]
        bootstrap = (
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({self.limit}, {self.limit})); "
            f"sys.argv = ['chat cql-server', *{module_args!r}]; "
            "runpy.run_module('chat.embedded.cql.process', run_name='__main__')"
        )
        return [sys.executable, "-c", bootstrap]


def test_writes_failing_at_the_disk_limit_are_refused_and_acknowledged_ones_survive_a_crash(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    row = "x" * 2000
    acked: set[int] = set()
    refusals: list[str] = []
    with FileSizeLimitedServer(data, limit=64 * 1024) as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            for cql in SCHEMA:
                session.execute(cql)
            insert = session.prepare("INSERT INTO ks.t (p, v) VALUES (?, ?)")
            for p in range(100):  # ~200 kB: each 64 kB segment fills up and tears
                try:
                    session.execute(insert, [p, row])
                except WriteFailure as exc:
                    refusals.append(str(exc))
                else:
                    acked.add(p)
        finally:
            cluster.shutdown()
        server.kill()
    assert len(refusals) >= 2
    assert all("not applied durably" in message for message in refusals)
    assert len(acked) >= 80
    assert len(list(data.glob("commitlog-*.log"))) >= 3
    with EmbeddedCqlServer(data_dir=data) as server:
        cluster = Cluster([server.host], port=server.port)
        try:
            session = cluster.connect()
            got = {r.p for r in session.execute("SELECT p FROM ks.t") if r.p in acked}
            assert got == acked
        finally:
            cluster.shutdown()
