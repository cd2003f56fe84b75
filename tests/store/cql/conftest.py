"""Fixtures for the chat-store tests: the real driver against the session's embedded CQL server.

The keyspace (``settings.cql_keyspace``, the same one the app under test uses) is migrated once
per session (``cql_store`` in ``tests/conftest.py``). Tests share it, so each test works in its
own events and users: ``tests.store.cql.messages.new_event_id`` / ``new_user_id`` hand out ids no
other test (or earlier run against a persistent server) uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat.config import Settings
from chat.domain.messages import MessageIdGenerator
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import UnreadStore
from chat.store.driver.session import CqlStore
from tests.store.clocks import SettableClock
from tests.store.cql.server_reads import ServerReads


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
async def timed_store(
    cql_store: CqlStore, settings: Settings, clock: SettableClock
) -> AsyncIterator[MessageStore]:
    """A MessageStore whose message ids (and so times and buckets) follow ``clock``."""
    async with MessageStore(cql_store, settings, ids=MessageIdGenerator(clock)) as store:
        yield store


@pytest.fixture
def server_reads(cql_store: CqlStore, settings: Settings) -> ServerReads:
    return ServerReads(cql_store, settings.cql_keyspace)


@pytest.fixture
def history(cql_store: CqlStore, settings: Settings) -> MessageHistory:
    return MessageHistory(cql_store, settings)


@pytest.fixture
def unread(cql_store: CqlStore, settings: Settings) -> UnreadStore:
    return UnreadStore(cql_store, settings)
