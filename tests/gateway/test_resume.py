"""Resume against the real store (the embedded CQL server): replay below the cut, then live."""

from __future__ import annotations

import secrets

import orjson

from chat.config import Settings
from chat.domain.messages import NewMessage, SendAck, encode_cursor
from chat.domain.position import Position
from chat.gateway.hub import LocalHub, Mailbox
from chat.gateway.resume import PendingSubscription, newest_below, replay
from chat.store.cql.message_history import BEGINNING_CURSOR, MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.driver.session import CqlStore


async def _stored(store: MessageStore, event_id: int, count: int) -> list[SendAck]:
    texts = [f"m{i}" for i in range(count)]
    return [await store.send(NewMessage(event_id, 1, secrets.token_hex(8), t)) for t in texts]


def _mailbox() -> Mailbox:
    return Mailbox(3, 16, on_overflow=lambda _m: None, on_removed=lambda e, r: None)


async def test_a_replay_sends_what_lies_after_since_and_below_the_cut(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event_id = secrets.randbelow(2**40) + 1
    first, second, third = await _stored(message_store, event_id, 3)
    history = MessageHistory(cql_store, settings)
    hub = LocalHub(lambda: Position.after_ticks(message_store.id_floor_ticks()))
    mailbox = _mailbox()
    subscription = hub.subscribe(mailbox, event_id)
    cut = Position.of(third.message_id)

    cursor = await replay(history, hub, subscription, encode_cursor(first.message_id), cut)

    assert cursor == encode_cursor(second.message_id)
    replayed = [orjson.loads(f)["message"]["message_id"] for f in mailbox.take()]
    assert replayed == [str(second.message_id)]
    assert await newest_below(history, hub, event_id, cut) == encode_cursor(second.message_id)
    below_all = Position.of(first.message_id)
    assert await newest_below(history, hub, event_id, below_all) == BEGINNING_CURSOR


def test_a_pending_subscription_ended_meanwhile_does_not_go_live() -> None:
    hub = LocalHub(lambda: Position.after_ticks(0))
    mailbox = _mailbox()
    hub.connect(mailbox)
    subscription = hub.subscribe(mailbox, 7)
    PendingSubscription(hub, subscription, hub.replay_bound(7), lambda: False).go_live(3)
    assert not subscription.live
    assert mailbox.take() == []
    PendingSubscription(hub, subscription, hub.replay_bound(7), lambda: True).go_live(3)
    assert subscription.live
    assert [orjson.loads(f)["type"] for f in mailbox.take()] == ["presence", "unread"]
