"""Versioned SQL migrations for PostgreSQL (``sql/NNNNNN_name.up.sql`` / ``.down.sql``).

Each file runs in its own transaction together with its bookkeeping row, so a failed migration
leaves no half-applied schema. A session-level advisory lock serialises runners: two processes
starting at once (``chat serve --workers``) never migrate concurrently; the second waits, then
finds nothing left to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from chat.errors import ChatError
from chat.store.pg.pool import Connection
from chat.store.schema_files import schema_dir

log = logging.getLogger(__name__)

SQL_DIR = schema_dir("sql")
# An arbitrary constant that names "the timingle schema migration" among advisory locks.
_ADVISORY_LOCK_KEY = 0x74696D696E676C65

_CREATE_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class MigrationError(ChatError):
    code = "migration_failed"
    title = "Migration failed"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up: Path
    down: Path | None


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations found in ``sql_dir``, ordered by version; gaps and duplicates are errors."""
    found: dict[int, Migration] = {}
    for up in sorted(sql_dir.glob("*.up.sql")):
        stem = up.name.removesuffix(".up.sql")
        number, _, name = stem.partition("_")
        if not number.isdigit() or not name:
            raise MigrationError(f"migration file {up.name} is not named NNNNNN_name.up.sql")
        version = int(number)
        if version in found:
            raise MigrationError(f"two migrations share version {version}: {up.name}")
        down = up.with_name(f"{stem}.down.sql")
        found[version] = Migration(version, name, up, down if down.exists() else None)
    return [found[v] for v in sorted(found)]


async def _applied(conn: Connection) -> dict[int, datetime]:
    await conn.execute(_CREATE_BOOKKEEPING)
    rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    return {r["version"]: r["applied_at"] for r in rows}


async def status(conn: Connection, sql_dir: Path = SQL_DIR) -> list[MigrationStatus]:
    applied = await _applied(conn)
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in discover(sql_dir)]


async def migrate_up(conn: Connection, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply every pending migration in order; returns those applied."""
    migrations = discover(sql_dir)
    done: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        applied = await _applied(conn)
        for migration in migrations:
            if migration.version in applied:
                continue
            log.info("applying migration %06d_%s", migration.version, migration.name)
            try:
                async with conn.transaction():
                    await conn.execute(migration.up.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.up.name} failed: {exc}; nothing of it was applied"
                ) from exc
            done.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    return done


async def migrate_down(conn: Connection, steps: int, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Revert the ``steps`` most recently applied migrations, newest first."""
    if steps < 1:
        raise MigrationError(f"down needs a positive number of steps, got {steps}")
    by_version = {m.version: m for m in discover(sql_dir)}
    reverted: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        applied = sorted(await _applied(conn), reverse=True)
        for version in applied[:steps]:
            migration = by_version.get(version)
            if migration is None or migration.down is None:
                raise MigrationError(
                    f"migration {version:06d} has no .down.sql file here; cannot revert it"
                )
            log.info("reverting migration %06d_%s", migration.version, migration.name)
            async with conn.transaction():
                await conn.execute(migration.down.read_text())
                await conn.execute("DELETE FROM schema_migrations WHERE version = $1", version)
            reverted.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    return reverted
