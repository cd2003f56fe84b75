"""Fixtures for API tests that look behind the HTTP surface: the migrated CQL keyspace the app
under test uses, and a PostgreSQL pool on the app's database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from chat.config import Settings
from chat.store.cql import CqlStore, open_cql
from chat.store.cql_migrations import migrate_up
from chat.store.messages import MessageStore


@pytest.fixture(scope="session")
async def cql_store(settings: Settings) -> AsyncIterator[CqlStore]:
    """A driver session on the app's CQL server with every CQL migration applied.

    Applying them here (the runner is idempotent and takes a lock) makes the chat tables exist
    whether or not the app under test migrated at start-up.
    """
    async with open_cql(settings, migrate=False) as store:
        await migrate_up(store, settings)
        yield store


@pytest.fixture(scope="session")
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def message_store(cql_store: CqlStore, settings: Settings) -> AsyncIterator[MessageStore]:
    """A started store for the tests to send messages with (sending is not a REST operation),
    writing to the same keyspace the app under test reads."""
    store = MessageStore(cql_store, settings)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
