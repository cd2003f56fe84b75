"""Helpers for tests that drive the reference client against live servers.

:class:`Watcher` collects a client's events as the application would see them; tests wait for
the events they expect with a deadline (no sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from chat.client import ChatClient, Event, MessagePosted
from chat.client.backoff import Backoff
from tests.api_client import Api

TIMEOUT = 15.0
FAST = Backoff(base=0.05, cap=0.5)
"""Reconnect quickly: the tests wait for the client, not for a production back-off."""


class Watcher:
    """Reads a client's events into a list; tests wait for the events they expect."""

    def __init__(self, chat: ChatClient) -> None:
        self.seen: list[Event] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._watch(chat.events()))

    async def _watch(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            async with self._changed:
                self.seen.append(event)
                self._changed.notify_all()

    async def wait(self, condition: Callable[[list[Event]], bool]) -> list[Event]:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: condition(self.seen))
        return self.seen

    def messages(self, event_id: int) -> list[str]:
        return [
            e.message.text
            for e in self.seen
            if isinstance(e, MessagePosted) and e.event_id == event_id
        ]

    async def wait_messages(self, event_id: int, count: int) -> list[str]:
        await self.wait(lambda _: len(self.messages(event_id)) >= count)
        return self.messages(event_id)

    def count(self, kind: type) -> int:
        return sum(isinstance(e, kind) for e in self.seen)

    def stop(self) -> None:
        self._task.cancel()


@contextlib.asynccontextmanager
async def chat_client(
    url: str, api: Api, user_id: int, **options: Any
) -> AsyncIterator[tuple[ChatClient, Watcher]]:
    options.setdefault("backoff", FAST)
    async with ChatClient(url, api.tokens.mint(user_id), **options) as chat:
        watcher = Watcher(chat)
        try:
            await asyncio.wait_for(chat.wait_connected(), TIMEOUT)
            yield chat, watcher
        finally:
            watcher.stop()
