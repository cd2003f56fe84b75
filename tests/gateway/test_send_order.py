"""Sends in the hub's order, against the real message store (the embedded CQL server)."""

from __future__ import annotations

import secrets

import orjson

from chat.domain.messages import NewMessage, SendAck
from chat.domain.position import Position
from chat.gateway.background import BackgroundTasks
from chat.gateway.hub import LocalHub, Mailbox
from chat.gateway.send_order import SendOrder
from chat.store.cql.messages import MessageStore


def _event_with_a_reader(store: MessageStore) -> tuple[int, LocalHub, Mailbox]:
    """A new event, a hub on ``store``'s ids, and a live subscriber of the event."""
    event_id = secrets.randbelow(2**40) + 1
    hub = LocalHub(lambda: Position.after_ticks(store.id_floor_ticks()))
    mailbox = Mailbox(2, 16, on_overflow=lambda _m: None, on_removed=lambda e, r: None)
    hub.connect(mailbox)
    hub.subscribe(mailbox, event_id).go_live(hub.replay_bound(event_id))
    return event_id, hub, mailbox


async def test_a_stored_send_is_acked_released_and_timed_by_the_injected_clock(
    message_store: MessageStore,
) -> None:
    event_id, hub, reader = _event_with_a_reader(message_store)
    readings = iter([10.0, 10.25])
    observed: list[float] = []
    tasks = BackgroundTasks()
    sends = SendOrder(
        hub, message_store, tasks, observe_write=observed.append, clock=lambda: next(readings)
    )
    acks: list[SendAck] = []

    ack = await sends.store(
        NewMessage(event_id, 1, secrets.token_hex(8), "hello"), on_ack=acks.append
    )

    assert acks == [ack]
    assert ack.duplicate is False
    assert observed == [0.25]
    released = [orjson.loads(f) for f in reader.take()]
    assert [(f["type"], f["message"]["message_id"]) for f in released] == [
        ("message", str(ack.message_id))
    ]
    await tasks.wait()


async def test_a_retried_send_gets_the_first_ack_and_releases_nothing_new(
    message_store: MessageStore,
) -> None:
    event_id, hub, reader = _event_with_a_reader(message_store)
    tasks = BackgroundTasks()
    sends = SendOrder(hub, message_store, tasks, observe_write=lambda _seconds: None)
    new = NewMessage(event_id, 1, secrets.token_hex(8), "once")
    first = await sends.store(new)
    assert len(reader.take()) == 1

    retry = await sends.store(new)

    assert retry.duplicate is True
    assert retry.message_id == first.message_id
    assert reader.take() == []
    assert hub.replay_bound(event_id) > Position.of(first.message_id)  # the retry is settled
    await tasks.wait()
