"""The chat service's bookkeeping without sockets: bounded maps, and a subscribe cut short."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest

from chat.config import Settings
from chat.domain.messages import Message, MessageIdGenerator, NewMessage, SendAck
from chat.domain.position import Position
from chat.errors import ServiceUnavailable
from chat.gateway.hub import LocalHub, Mailbox
from chat.gateway.membership import Membership
from chat.gateway.protocol import Subscribe
from chat.gateway.service import ChatService, Identity
from chat.metrics import Metrics
from chat.state import AppState
from chat.store.cql.message_history import MessagePage
from chat.store.stores import Stores

_PAST_NS = 1_700_000_000_000_000_000


def _message(event_id: int, message_id: uuid.UUID) -> Message:
    new = NewMessage(event_id, 1, f"m-{message_id}", "hi")
    return new.stored(SendAck(event_id, message_id, datetime.now(UTC), duplicate=False))


def test_membership_remembers_a_bounded_number_of_changes() -> None:
    membership = Membership(cast(asyncpg.Pool, None), max_entries=10)
    membership.changed(1, 1, present=False)
    oldest = membership.epoch(1, 1)
    for user_id in range(2, 100):
        membership.changed(1, user_id, present=True)
        assert membership.remembered_changes <= 10
    newest = membership.epoch(1, 99)
    assert membership.epoch(1, 1) != oldest  # forgotten: reads as changed, never as unchanged
    membership.changed(2, 2, present=True)
    assert membership.epoch(1, 99) == newest  # recent changes are still told apart


class _Membership:
    def add_listener(self, listener: Any) -> None:
        pass

    def remove_listener(self, listener: Any) -> None:
        pass

    def epoch(self, event_id: int, user_id: int) -> int:
        return 0

    def cached(self, event_id: int, user_id: int) -> bool:
        return True

    async def is_participant(self, event_id: int, user_id: int) -> bool:
        return True


class _History:
    async def latest(
        self, event_id: int, limit: int, *, unchanged_since: float | None = None
    ) -> MessagePage:
        return MessagePage([], None)


class _Unread:
    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def count(self, user_id: int, event_id: int) -> int:
        self.asked.set()
        await self.answer.wait()
        return 3


async def test_a_subscribe_ended_by_a_resync_while_it_was_set_up_is_not_answered_subscribed(
    settings: Settings,
) -> None:
    unread = _Unread()
    stores = cast(Stores, SimpleNamespace(messages=None, history=_History(), unread=unread))
    state = cast(AppState, SimpleNamespace(settings=settings, tokens=None, metrics=Metrics()))
    ids = MessageIdGenerator()
    hub = LocalHub(lambda: Position.after_ticks(ids.floor_ticks()))
    service = ChatService(state, hub, stores, cast(Membership, _Membership()))
    ended: list[tuple[int, str]] = []
    mailbox = Mailbox(
        0, 16, on_overflow=lambda _m: None, on_removed=lambda e, r: ended.append((e, r))
    )
    client = service.connected(Identity(1, "ada", None), mailbox)
    subscribing = asyncio.create_task(service.subscribe(client, Subscribe(7, None)))
    async with asyncio.timeout(10):  # a subscribe that fails before counting fails the test
        await unread.asked.wait()
    service.resync(None)  # the bus was lost while the subscription was being set up
    unread.answer.set()
    with pytest.raises(ServiceUnavailable, match="subscribe again") as refused:
        await subscribing
    assert refused.value.code == "unavailable"
    assert service.subscription_count() == 0
    assert hub.subscribers(7) == []
    await service.close()
