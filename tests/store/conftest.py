"""Fixtures for the chat-store tests: the real driver against the session's embedded CQL server.

The keyspace (``settings.cql_keyspace``, the same one the app under test uses) is migrated once
per session. Tests share it, so each test works in its own events and users:
:func:`new_event_id` / :func:`new_user_id` hand out ids no other test (or earlier run against a
persistent server) uses.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest

from chat.config import Settings
from chat.domain.messages import MessageIdGenerator, NewMessage, encode_cursor
from chat.store.cql import CqlStore, execute_async, open_cql
from chat.store.cql_migrations import migrate_up
from chat.store.message_history import MessageHistory
from chat.store.messages import MessageStore
from chat.store.unread import UnreadStore

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


class SettableClock:
    """A clock for the id generator that reads whatever millisecond the test set."""

    def __init__(self) -> None:
        self.now_ms = 0

    def __call__(self) -> int:
        return self.now_ms * 1_000_000


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
async def timed_store(
    cql_store: CqlStore, settings: Settings, clock: SettableClock
) -> AsyncIterator[MessageStore]:
    """A MessageStore whose message ids (and so times and buckets) follow ``clock``."""
    store = MessageStore(cql_store, settings, ids=MessageIdGenerator(clock))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


class ServerReads:
    """The CQL server's read counters (``system.embedded_stats``), per table of the keyspace.

    Tests run one at a time against the session's server, so the difference between two
    snapshots is what the code under test asked for.
    """

    def __init__(self, cql: CqlStore, keyspace: str) -> None:
        self._cql = cql
        self._prefix = f"selects:{keyspace}."
        self._start: dict[str, int] = {}

    async def _snapshot(self, *, counting_itself: bool) -> dict[str, int]:
        query = "SELECT name, value FROM system.embedded_stats"
        rows = await execute_async(self._cql.session, query)
        stats = {r.name: r.value for r in rows}
        out = {k[len(self._prefix) :]: v for k, v in stats.items() if k.startswith(self._prefix)}
        # The server adds a read's rows to the counter after the read: the first snapshot's
        # own rows show up in the second one's counter.
        out["rows_read"] = stats["rows_read"] + (len(rows) if counting_itself else 0)
        return out

    async def start(self) -> None:
        self._start = await self._snapshot(counting_itself=True)

    async def since_start(self) -> dict[str, int]:
        """Reads per table, and rows read (``rows_read``), since :meth:`start`."""
        now = await self._snapshot(counting_itself=False)
        return {k: v - self._start.get(k, 0) for k, v in now.items() if v != self._start.get(k, 0)}


@pytest.fixture
def server_reads(cql_store: CqlStore, settings: Settings) -> ServerReads:
    return ServerReads(cql_store, settings.cql_keyspace)


@pytest.fixture
def history(cql_store: CqlStore, settings: Settings) -> MessageHistory:
    return MessageHistory(cql_store, settings)


@pytest.fixture
def unread(cql_store: CqlStore, settings: Settings) -> UnreadStore:
    return UnreadStore(cql_store, settings)


async def post(store: MessageStore, event_id: int, sender_id: int, text: str = "hi") -> uuid.UUID:
    """Send one message (a fresh ``client_msg_id``); its id."""
    message = NewMessage(event_id, sender_id, secrets.token_hex(8), text)
    return (await store.send(message)).message_id


async def recount(history: MessageHistory, unread: UnreadStore, reader: int, event_id: int) -> int:
    """The unread count computed from scratch from the history and the read position (every
    message after it that is not the reader's own and not deleted; no scan bound)."""
    position = await unread.read_position(reader, event_id)
    cursor = encode_cursor(position) if position is not None else None
    total = 0
    while True:
        page = await history.after(event_id, cursor, 500)
        total += sum(1 for m in page.messages if m.sender_id != reader and not m.is_deleted)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor
