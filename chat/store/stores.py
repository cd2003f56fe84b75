"""The ScyllaDB-backed chat stores, opened together and closed in one place.

The lifespan opens them once the CQL session exists; closing answers every pending send before
the session goes away (an accepted send is never left unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from chat.config import Settings
from chat.metrics import Metrics
from chat.store.cql.event_history import EventHistory
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.reactions import ReactionStore
from chat.store.cql.typing import TABLE_TTL_SECONDS, TypingStore
from chat.store.cql.unread import UnreadStore
from chat.store.driver.session import CqlStore


@dataclass(frozen=True, slots=True)
class ChatStores:
    messages: MessageStore
    history: MessageHistory
    unread: UnreadStore
    reactions: ReactionStore
    typing: TypingStore
    event_history: EventHistory


def _typing_ttl(settings: Settings) -> int | None:
    """``CHAT_TYPING_TTL_SECONDS`` as a ``USING TTL`` override, or None for the table's own."""
    ttl = settings.typing_ttl_seconds
    return None if ttl == TABLE_TTL_SECONDS else ttl


@contextlib.asynccontextmanager
async def open_chat_stores(
    cql: CqlStore, pg: asyncpg.Pool, settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[ChatStores]:
    stores = ChatStores(
        messages=MessageStore(cql, settings, metrics=metrics),
        history=MessageHistory(cql, settings),
        unread=UnreadStore(cql, settings),
        reactions=ReactionStore(cql, settings),
        typing=TypingStore(cql, settings, ttl_seconds=_typing_ttl(settings)),
        event_history=EventHistory(pg, cql, settings.cql_keyspace),
    )
    if metrics is not None:
        pages, counts = stores.history.pages, stores.unread.by_event
        metrics.observe_reads(
            "history_page", lambda: float(pages.callers), lambda: float(pages.reads_sent)
        )
        metrics.observe_reads(
            "unread_count", lambda: float(counts.callers), lambda: float(counts.reads_sent)
        )
    await stores.messages.start()
    try:
        # Preparing at start-up makes a schema mismatch fail the start, not the first request.
        await asyncio.gather(
            stores.history.prepare(),
            stores.unread.prepare(),
            stores.reactions.prepare(),
            stores.typing.prepare(),
        )
        yield stores
    finally:
        await stores.messages.close(settings.drain_seconds)
