"""NatsHub on its own against a real nats-server: two hubs in this process stand for two nodes.

These check the bookkeeping the gateway-level tests cannot see: what a node remembers about
events it stopped listening to, how long it keeps sequence numbers, and how it closes after a
failed start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import BadSubjectError, ConnectionClosedError

from chat.bus.connect import open_nats_hub
from chat.bus.hub import EVENT_SUBJECT, NatsHub
from chat.domain.messages import MessageIdGenerator
from chat.domain.position import Position
from chat.errors import ServiceUnavailable
from chat.gateway import frames
from chat.gateway.hub import EndReason, Mailbox, Subscription
from tests.bus.nodes import nats_server
from tests.polling import until

WAIT = 5.0
"""Every wait in this module is bounded by this many seconds."""


@pytest.fixture(scope="module")
async def nats_url() -> AsyncIterator[str]:
    with nats_server() as server:
        await server.start()
        yield server.url


IDS = MessageIdGenerator()


def own_floor() -> Position:
    return Position.after_ticks(IDS.floor_ticks())


class Inbox:
    """A connection's mailbox whose frames a test awaits (decoded), with its resyncs."""

    def __init__(self, user_id: int) -> None:
        self.mailbox = Mailbox(user_id, 100, on_overflow=self._overflow, on_removed=self._removed)
        self._arrived = asyncio.Event()
        self.mailbox.set_waiter(self._arrived.set)

    def _overflow(self, mailbox: Mailbox) -> None:
        raise AssertionError(f"{mailbox} overflowed")

    def _removed(self, event_id: int, reason: EndReason) -> None:
        raise AssertionError(f"subscription to {event_id} removed: {reason}")

    async def next(self, kind: str) -> dict[str, Any]:
        """The next frame of type ``kind`` (others are skipped), within :data:`WAIT`."""
        async with asyncio.timeout(WAIT):
            while True:
                text = self.mailbox.pop()
                if text is None:
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                frame: dict[str, Any] = orjson.loads(text)
                if frame["type"] == kind:
                    return frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """One hub on its own NATS connection, recording the resyncs it asks for."""

    def __init__(self, hub: NatsHub) -> None:
        self.hub = hub
        self.resyncs: list[int | None] = []
        self._resynced = asyncio.Event()
        hub.on_resync = self._resync

    def _resync(self, event_id: int | None) -> None:
        self.resyncs.append(event_id)
        self._resynced.set()

    async def resynced(self) -> list[int | None]:
        """The resyncs asked for so far, once there is one (within :data:`WAIT`)."""
        async with asyncio.timeout(WAIT):
            await self._resynced.wait()
        return self.resyncs

    async def join(self, inbox: Inbox, event_id: int) -> Subscription:
        """Subscribe the way the chat service does: ready (bus interest), replay, go live."""
        subscription = self.hub.subscribe(inbox.mailbox, event_id)
        await self.hub.ready(subscription)
        subscription.go_live(None)
        self.hub.announce(subscription)
        return subscription

    def leave(self, inbox: Inbox, event_id: int) -> None:
        assert self.hub.unsubscribe(inbox.mailbox, event_id)


@pytest.fixture
async def connect(nats_url: str) -> AsyncIterator[Any]:
    """``await connect(name, **options)``: a started hub on its own connection (closed after)."""
    opened: list[tuple[NatsHub, NatsClient]] = []

    async def start(name: str, **options: Any) -> Node:
        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
        options.setdefault("presence_heartbeat", 0.05)
        hub = NatsHub(nc, node_id=name, own_floor=own_floor, **options)
        opened.append((hub, nc))
        await hub.start()
        if "clock" not in options:
            await until(hub.may_write, within=WAIT, what=f"{name} to join")
        return Node(hub)

    yield start
    for hub, nc in opened:
        await hub.close()
        await nc.close()


def message(event_id: int, text: str) -> bytes:
    return orjson.dumps({"type": "message", "event_id": event_id, "message": {"text": text}})


async def test_a_node_that_listens_again_takes_the_others_frames_without_a_resync(
    connect: Any,
) -> None:
    """Everyone on node A leaves the event while node B keeps sending; when someone on A
    subscribes again, B's next frame is a new baseline, not a gap: delivered, no resync."""
    a, b, c = await connect("a"), await connect("b"), await connect("c")
    event_id = 1001
    reader, witness = Inbox(1), Inbox(3)
    await a.join(reader, event_id)
    await c.join(witness, event_id)
    b.hub.publish(event_id, message(event_id, "first"))
    assert (await reader.next("message"))["message"]["text"] == "first"

    a.leave(reader, event_id)
    assert event_id not in a.hub._sequences.seen  # nothing kept about an event nobody listens to
    for i in range(3):  # B's numbers move on while A does not listen
        b.hub.publish(event_id, message(event_id, f"missed {i}"))
    for text in ("first", "missed 0", "missed 1", "missed 2"):  # through NATS, before A is back
        assert (await witness.next("message"))["message"]["text"] == text

    again = Inbox(2)
    await a.join(again, event_id)
    b.hub.publish(event_id, message(event_id, "after"))
    assert (await again.next("message"))["message"]["text"] == "after"
    assert a.resyncs == []


async def test_typing_is_forgotten_when_it_ends_and_when_the_node_stops_listening(
    connect: Any,
) -> None:
    """Typing entries go when nobody types; a node that stopped listening to an event does not
    show, when it listens again, the typists it can no longer hear stop."""
    a, b, c = await connect("a"), await connect("b"), await connect("c")
    event_id = 1002
    reader, witness = Inbox(1), Inbox(3)
    await a.join(reader, event_id)
    await c.join(witness, event_id)
    # The witness reads each frame before the next is published: typing frames are current
    # values, so a newer one would replace one still queued.
    b.hub.publish_typing(event_id, [7])
    assert (await reader.next("typing"))["user_ids"] == [7]
    assert (await witness.next("typing"))["user_ids"] == [7]
    b.hub.publish_typing(event_id, [])
    assert (await reader.next("typing"))["user_ids"] == []
    assert (await witness.next("typing"))["user_ids"] == []
    assert b.hub._typing == {}
    assert a.hub._presence.nodes["b"].typing == {}

    b.hub.publish_typing(event_id, [7])
    assert (await reader.next("typing"))["user_ids"] == [7]
    assert (await witness.next("typing"))["user_ids"] == [7]
    a.leave(reader, event_id)
    assert a.hub._presence.nodes["b"].typing == {}
    b.hub.publish_typing(event_id, [])  # unheard on A: nobody listens there
    assert (await witness.next("typing"))["user_ids"] == []  # through NATS, before A is back
    again = Inbox(2)
    await a.join(again, event_id)
    a.hub.publish(event_id, frames.typing(event_id, [9]))  # merged with what A knows of B
    assert (await again.next("typing"))["user_ids"] == [9]


async def test_an_idle_event_loses_its_sequence_number_and_receivers_take_the_restart(
    connect: Any, nats_url: str
) -> None:
    """A node forgets the sequence number of an event it has not sent to for a while; its next
    frame starts again at 1, which a listening node takes as a new baseline (a real gap in the
    numbers still resyncs)."""
    clock = FakeClock()
    a = await connect("a")
    # The heartbeat loop sweeps too; the test sweeps itself, right after moving the clock.
    b = await connect("b", clock=clock, sequence_idle=10.0)
    event_id = 1003
    reader = Inbox(1)
    await a.join(reader, event_id)
    for text in ("one", "two"):
        b.hub.publish(event_id, message(event_id, text))
        assert (await reader.next("message"))["message"]["text"] == text

    # Two sweeps: the first finds the event used in the period before, the second idle.
    clock.now += 10.0
    b.hub._sequences.sweep(clock.now)
    assert event_id in b.hub._sequences.idle
    clock.now += 10.0
    b.hub._sequences.sweep(clock.now)
    assert b.hub._sequences.current == {}
    assert b.hub._sequences.idle == {}

    b.hub.publish(event_id, message(event_id, "restarted"))
    assert (await reader.next("message"))["message"]["text"] == "restarted"
    assert a.resyncs == []

    # A frame that claims to follow a lost one (number 3 after 1) is still a gap.
    nc = await nats.connect(nats_url)
    try:
        await nc.publish(
            EVENT_SUBJECT.format(event_id), message(event_id, "x"), headers={"n": "b", "s": "3"}
        )
        await nc.flush()
    finally:
        await nc.close()
    assert await a.resynced() == [event_id]


async def test_a_hub_whose_start_failed_closes_at_once_and_the_start_error_surfaces(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    await nc.close()
    hub = NatsHub(nc, node_id="never-started", own_floor=own_floor)
    with pytest.raises(ConnectionClosedError):
        await hub.start()
    async with asyncio.timeout(0.5):  # no wait on an outbox nobody drains
        await hub.close()
        await hub.close()

    # Through the runtime's entry point: the start error, not one from the cleanup.
    with pytest.raises(BadSubjectError):
        async with (
            asyncio.timeout(WAIT),
            open_nats_hub(nats_url, node_id="not a subject", own_floor=own_floor),
        ):
            pass


async def test_close_cancels_interest_being_set_up_and_fails_its_subscribe(
    connect: Any,
) -> None:
    node = await connect("closing")
    reader = Inbox(1)
    subscription = node.hub.subscribe(reader.mailbox, 1004)
    waiter = asyncio.create_task(node.hub.ready(subscription))
    await asyncio.sleep(0)  # ready() has started setting up the interest in the background
    background = set(node.hub._pending)
    assert background
    async with asyncio.timeout(WAIT):
        await node.hub.close()
    assert all(task.done() for task in background)
    with pytest.raises(ServiceUnavailable):
        async with asyncio.timeout(WAIT):
            await waiter
    with pytest.raises(ServiceUnavailable):
        await node.hub.ready(node.hub.subscribe(reader.mailbox, 1005))


async def test_an_event_is_known_unchanged_from_its_confirmed_interest_until_a_frame_or_a_gap(
    connect: Any, nats_url: str
) -> None:
    """What lets resuming clients share a read: an instant after which no message of the
    event changed anywhere, known only while this node hears every node's frames of it."""
    a, b = await connect("a"), await connect("b")
    event_id = 1004
    reader = Inbox(1)
    assert a.hub.unchanged_since(event_id) is None  # not listening: others' frames go unheard
    await a.join(reader, event_id)
    listened = a.hub.unchanged_since(event_id)
    assert listened is not None

    b.hub.publish_typing(event_id, [7])
    await reader.next("typing")
    assert a.hub.unchanged_since(event_id) == listened  # a current value changes no message
    b.hub.publish(event_id, message(event_id, "new"))
    await reader.next("message")
    after_message = a.hub.unchanged_since(event_id)
    assert after_message is not None
    assert after_message > listened

    nc = await nats.connect(nats_url)  # a frame that claims to follow a lost one
    try:
        seen = a.hub._sequences.seen[event_id]["b"]
        headers = {"n": "b", "s": str(seen + 2)}
        await nc.publish(EVENT_SUBJECT.format(event_id), message(event_id, "x"), headers=headers)
        await nc.flush()
    finally:
        await nc.close()
    assert await a.resynced() == [event_id]
    after_gap = a.hub.unchanged_since(event_id)
    assert after_gap is not None
    assert after_gap > after_message

    await a.hub.disconnected()  # the bus is lost: nothing is known until it is back
    assert a.hub.unchanged_since(event_id) is None
