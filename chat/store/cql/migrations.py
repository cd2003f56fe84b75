"""Versioned CQL migrations (``cql/NNNNNN_name.cql``) for the chat keyspace.

CQL has no transactions, so the runner's guarantees are built differently from the PostgreSQL
runner's:

- The keyspace is created by the runner, not by a file, because its replication differs per
  deployment (``CHAT_CQL_REPLICATION``: SimpleStrategy RF 1 for the embedded server,
  NetworkTopologyStrategy with a per-datacenter RF in production).
- A file may hold several statements; :func:`split_statements` is a small tokenizer that knows
  CQL strings (``'...'`` with ``''`` escapes, ``$$...$$``), quoted identifiers and comments, so a
  ``;`` inside any of them never splits a statement.
- Every statement must be idempotent (``IF NOT EXISTS``): a file that fails half-way is simply
  run again from the top next time; it is recorded in ``cql_schema_migrations`` only once all
  of its statements succeeded.
- Two processes never migrate at once: a lock row in ``cql_migration_lock`` is taken with a
  lightweight transaction (``INSERT ... IF NOT EXISTS``) and a TTL, so a runner that dies
  holding it blocks others for at most the TTL. The holder renews it after every statement.
- After every DDL statement the runner waits for schema agreement, so the next statement (and
  the application) never run against a node that has not seen the table yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

from chat.config import Settings, replication_options
from chat.errors import ChatError
from chat.store.driver.session import CqlStore, execute_async
from chat.store.schema_files import schema_dir

log = logging.getLogger(__name__)

CQL_DIR = schema_dir("cql")
LOCK_TTL_SECONDS = 120
LOCK_WAIT_SECONDS = 300.0
SCHEMA_AGREEMENT_SECONDS = 60.0

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS {ks}.cql_schema_migrations ("
    " version int PRIMARY KEY, name text, checksum text, applied_at timestamp)",
    "CREATE TABLE IF NOT EXISTS {ks}.cql_migration_lock ("
    " name text PRIMARY KEY, owner uuid, acquired_at timestamp)",
)


class CqlMigrationError(ChatError):
    code = "cql_migration_failed"
    title = "CQL migration failed"


@dataclass(frozen=True, slots=True)
class CqlMigration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    @property
    def statements(self) -> list[str]:
        return split_statements(self.text)


@dataclass(frozen=True, slots=True)
class CqlMigrationStatus:
    version: int
    name: str
    applied_at: datetime | None
    changed_since_applied: bool


def split_statements(text: str) -> list[str]:
    """The statements of a CQL script, comments removed, each without its ``;``.

    A single left-to-right scan: ``'...'`` strings (``''`` is an escaped quote), ``"..."``
    identifiers, ``$$...$$`` strings, ``--`` and ``//`` line comments and ``/* */`` block
    comments are recognised, and only a ``;`` outside all of them ends a statement. An
    unterminated string or comment is an error rather than a silently swallowed tail.
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)

    def take_until(closing: str, start: int, what: str) -> int:
        end = text.find(closing, start)
        if end < 0:
            line = text.count("\n", 0, start) + 1
            raise CqlMigrationError(f"unterminated {what} starting on line {line}")
        return end + len(closing)

    while i < n:
        ch = text[i]
        two = text[i : i + 2]
        if two in ("--", "//"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            current.append(" ")
        elif two == "/*":
            i = take_until("*/", i + 2, "block comment")
            current.append(" ")
        elif two == "$$":
            end = take_until("$$", i + 2, "$$ string")
            current.append(text[i:end])
            i = end
        elif ch in ("'", '"'):
            j = i + 1
            while True:
                j = take_until(ch, j, "quoted string" if ch == "'" else "quoted identifier")
                if j < n and text[j] == ch:  # doubled quote: an escaped one, keep scanning
                    j += 1
                    continue
                break
            current.append(text[i:j])
            i = j
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [" ".join(s.split()) for s in statements if s.strip()]


def discover(cql_dir: Path = CQL_DIR) -> list[CqlMigration]:
    """The migrations in ``cql_dir`` by version; misnamed files and duplicates are errors."""
    found: dict[int, CqlMigration] = {}
    for path in sorted(cql_dir.glob("*.cql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit() or not name:
            raise CqlMigrationError(f"CQL migration file {path.name} is not named NNNNNN_name.cql")
        version = int(number)
        if version in found:
            raise CqlMigrationError(f"two CQL migrations share version {version}: {path.name}")
        found[version] = CqlMigration(version, name, path)
    return [found[v] for v in sorted(found)]


def keyspace_ddl(settings: Settings) -> str:
    options = replication_options(settings.cql_replication)
    replication = ", ".join(f"'{k}': '{v}'" for k, v in options.items())
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {settings.cql_keyspace} "
        f"WITH replication = {{{replication}}} AND durable_writes = true"
    )


async def _wait_for_schema_agreement(session: Session) -> None:
    agreed = await asyncio.to_thread(
        session.wait_for_schema_agreement, wait_time=SCHEMA_AGREEMENT_SECONDS
    )
    if not agreed:
        raise CqlMigrationError(
            f"the cluster's nodes did not agree on the schema within {SCHEMA_AGREEMENT_SECONDS:.0f}"
            " s; check that every node is up (nodetool status), then run `chat migrate` again"
        )


async def _ddl(session: Session, statement: str) -> None:
    await execute_async(session, statement)
    await _wait_for_schema_agreement(session)


async def _ensure_keyspace(store: CqlStore, settings: Settings) -> None:
    await _ddl(store.session, keyspace_ddl(settings))
    for ddl in _BOOKKEEPING:
        await _ddl(store.session, ddl.format(ks=settings.cql_keyspace))


async def _applied(store: CqlStore, keyspace: str) -> dict[int, tuple[datetime, str]]:
    rows = await execute_async(
        store.session, f"SELECT version, applied_at, checksum FROM {keyspace}.cql_schema_migrations"
    )
    return {r.version: (r.applied_at.replace(tzinfo=UTC), r.checksum or "") for r in rows}


async def status(
    store: CqlStore, settings: Settings, cql_dir: Path = CQL_DIR
) -> list[CqlMigrationStatus]:
    """Every migration file with when it was applied (None: pending)."""
    await _ensure_keyspace(store, settings)
    applied = await _applied(store, settings.cql_keyspace)
    result = []
    for m in discover(cql_dir):
        when, checksum = applied.get(m.version, (None, ""))
        result.append(
            CqlMigrationStatus(m.version, m.name, when, when is not None and checksum != m.checksum)
        )
    return result


class _Lock:
    """The migration lock row, held by one runner at a time (LWT + TTL, renewed as it works)."""

    def __init__(self, store: CqlStore, keyspace: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._ks = keyspace
        self._clock = clock
        self.owner = uuid.uuid4()

    async def acquire(self, wait_seconds: float) -> None:
        deadline = self._clock() + wait_seconds
        delay = 0.05
        while True:
            rows = await execute_async(
                self._store.session,
                f"INSERT INTO {self._ks}.cql_migration_lock (name, owner, acquired_at) "
                f"VALUES ('migrate', %s, toTimestamp(now())) IF NOT EXISTS "
                f"USING TTL {LOCK_TTL_SECONDS}",
                [self.owner],
            )
            if rows and _applied_flag(rows[0]):
                return
            if self._clock() >= deadline:
                holder = getattr(rows[0], "owner", None) if rows else None
                raise CqlMigrationError(
                    f"another process ({holder}) has held the CQL migration lock for more than "
                    f"{wait_seconds:.0f} s; it expires {LOCK_TTL_SECONDS} s after its holder stops"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def renew(self) -> None:
        rows = await execute_async(
            self._store.session,
            f"UPDATE {self._ks}.cql_migration_lock USING TTL {LOCK_TTL_SECONDS} "
            "SET owner = %s WHERE name = 'migrate' IF owner = %s",
            [self.owner, self.owner],
        )
        if not (rows and _applied_flag(rows[0])):
            raise CqlMigrationError(
                "lost the CQL migration lock (it expired); stopping so that two runners never "
                "migrate at once; run `chat migrate` again"
            )

    async def release(self) -> None:
        await execute_async(
            self._store.session,
            f"DELETE FROM {self._ks}.cql_migration_lock WHERE name = 'migrate' IF owner = %s",
            [self.owner],
        )


def _applied_flag(row: Any) -> bool:
    return bool(row[0])


async def migrate_up(
    store: CqlStore,
    settings: Settings,
    cql_dir: Path = CQL_DIR,
    *,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> list[CqlMigration]:
    """Create the keyspace if needed and apply every pending migration; returns those applied.

    The files' statements name tables without a keyspace, so they run on a short-lived second
    session bound to the keyspace; the caller's session is left exactly as it was.
    """
    migrations = discover(cql_dir)
    keyspace = settings.cql_keyspace
    await _ensure_keyspace(store, settings)
    lock = _Lock(store, keyspace, clock)
    await lock.acquire(lock_wait_seconds)
    done: list[CqlMigration] = []
    ks_session: Session | None = None
    try:
        applied = await _applied(store, keyspace)
        pending = [m for m in migrations if m.version not in applied]
        if pending:
            ks_session = await asyncio.to_thread(store.cluster.connect, keyspace)
        for migration in pending:
            log.info("applying CQL migration %06d_%s", migration.version, migration.name)
            assert ks_session is not None
            for statement in migration.statements:
                try:
                    await _ddl(ks_session, statement)
                except CqlMigrationError:
                    raise
                except Exception as exc:
                    raise CqlMigrationError(
                        f"CQL migration {migration.path.name} failed at {statement[:80]!r}: "
                        f"{exc}; its statements are idempotent, fix the file and run it again"
                    ) from exc
                await lock.renew()
            await execute_async(
                store.session,
                f"INSERT INTO {keyspace}.cql_schema_migrations "
                "(version, name, checksum, applied_at) VALUES (%s, %s, %s, toTimestamp(now()))",
                [migration.version, migration.name, migration.checksum],
            )
            done.append(migration)
    finally:
        if ks_session is not None:
            await asyncio.to_thread(ks_session.shutdown)
        await lock.release()
    return done
