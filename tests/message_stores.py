"""Message stores for tests: started (their batcher running) and closed however the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from chat.store.cql.messages import MessageStore


@contextlib.asynccontextmanager
async def started(store: MessageStore) -> AsyncIterator[MessageStore]:
    """``store``, started; closed on exit."""
    await store.start()
    try:
        yield store
    finally:
        await store.close()
