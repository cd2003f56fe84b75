"""The PostgreSQL migration runner against the real server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chat.store.pg import migrations


@pytest.fixture
async def scratch_db(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = f"scratch_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, query = pg_dsn.partition("?")
        prefix = base.rsplit("/", 1)[0]
        yield f"{prefix}/{name}" + (f"?{query}" if query else "")
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_up_applies_every_migration_once_and_status_lists_them(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    try:
        applied = await migrations.migrate_up(conn)
        assert [m.version for m in applied] == [m.version for m in migrations.discover()]
        assert await migrations.migrate_up(conn) == []
        rows = await migrations.status(conn)
        assert all(row.applied_at is not None for row in rows)
        assert await conn.fetchval("SELECT to_regclass('public.events')") == "events"
    finally:
        await conn.close()


async def test_down_reverts_the_newest_and_up_reapplies_it(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    try:
        await migrations.migrate_up(conn)
        newest = migrations.discover()[-1]
        reverted = await migrations.migrate_down(conn, 1)
        assert [m.version for m in reverted] == [newest.version]
        pending = [r for r in await migrations.status(conn) if r.applied_at is None]
        assert [r.version for r in pending] == [newest.version]
        assert [m.version for m in await migrations.migrate_up(conn)] == [newest.version]
    finally:
        await conn.close()


async def test_down_all_leaves_an_empty_schema(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    try:
        await migrations.migrate_up(conn)
        await migrations.migrate_down(conn, len(migrations.discover()))
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
        assert tables == []
    finally:
        await conn.close()


async def test_two_concurrent_runners_apply_each_migration_exactly_once(scratch_db: str) -> None:
    first, second = await asyncpg.connect(scratch_db), await asyncpg.connect(scratch_db)
    try:
        results = await asyncio.gather(migrations.migrate_up(first), migrations.migrate_up(second))
        applied = [m.version for result in results for m in result]
        assert sorted(applied) == [m.version for m in migrations.discover()]
    finally:
        await first.close()
        await second.close()
