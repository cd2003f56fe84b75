"""The chat stores, opened together and closed in one place, reached through one container.

The lifespan opens them once the CQL session and the PostgreSQL pool exist and keeps the
:class:`Stores` on the app state; the REST handlers and the gateway reach every store through
it. Closing answers every pending send before the session goes away (an accepted send is never
left unanswered).
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
class Stores:
    """Every store the handlers call, built once per app by :func:`open_stores`."""

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
async def open_stores(
    cql: CqlStore, pg: asyncpg.Pool, settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[Stores]:
    """The stores, prepared and started; on exit the message store answers its pending sends."""
    async with MessageStore(cql, settings, metrics=metrics) as messages:
        stores = Stores(
            messages=messages,
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
        # Preparing at start-up makes a schema mismatch fail the start, not the first request.
        await asyncio.gather(
            stores.history.prepare(),
            stores.unread.prepare(),
            stores.reactions.prepare(),
            stores.typing.prepare(),
        )
        yield stores
