"""Fixtures for the chat-store tests: the real driver against the session's embedded CQL server.

The keyspace (``settings.cql_keyspace``, the same one the app under test uses) is migrated once
per session. Tests share it, so each test works in its own events and users:
:func:`new_event_id` / :func:`new_user_id` hand out ids no other test (or earlier run against a
persistent server) uses.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator

import pytest

from chat.config import Settings
from chat.store.cql import CqlStore, open_cql
from chat.store.cql_migrations import migrate_up
from chat.store.messages import MessageStore

_ids = itertools.count(secrets.randbelow(2**40) * 1000 + 1)


def new_event_id() -> int:
    """An event id unused by any other test in this keyspace."""
    return next(_ids)


def new_user_id() -> int:
    """A user id unused by any other test in this keyspace."""
    return next(_ids)


@pytest.fixture(scope="session")
async def cql_store(settings: Settings) -> AsyncIterator[CqlStore]:
    """A driver session on the session's CQL server, with every CQL migration applied."""
    async with open_cql(settings, migrate=False) as store:
        await migrate_up(store, settings)
        yield store


@pytest.fixture
async def message_store(cql_store: CqlStore, settings: Settings) -> AsyncIterator[MessageStore]:
    """A started :class:`MessageStore` (its batcher running), closed after the test."""
    store = MessageStore(cql_store, settings)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
