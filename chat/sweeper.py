"""The background task that completes events: CONFIRMED -> DONE once their end_time has passed.

It runs inside the application lifespan every ``CHAT_EVENT_SWEEP_SECONDS``. Several service
processes may each run it: the conditional UPDATE with ``SKIP LOCKED`` in
:func:`chat.store.pg.events.complete_past_events` makes concurrent sweeps harmless. A failed sweep
(database restarting, say) is logged and retried on the next tick, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from chat.store.pg import events as store

log = logging.getLogger(__name__)


async def sweep_once(pool: asyncpg.Pool) -> list[int]:
    """Complete every CONFIRMED event that has ended; returns their ids."""
    completed: list[int] = []
    async with pool.acquire() as conn:
        while True:
            batch = await store.complete_past_events(conn, datetime.now(UTC))
            completed.extend(batch)
            if len(batch) < store.SWEEP_BATCH:
                return completed


async def _run(pool: asyncpg.Pool, interval: float) -> None:
    while True:
        try:
            done = await sweep_once(pool)
            if done:
                log.info("marked %d ended event(s) DONE: %s", len(done), done[:20])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("event sweep failed; retrying in %.1f s", interval, exc_info=True)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def event_sweeper(pool: asyncpg.Pool, interval: float) -> AsyncIterator[None]:
    """Run the sweep every ``interval`` seconds while the context is open."""
    task = asyncio.create_task(_run(pool, interval), name="event-sweeper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
