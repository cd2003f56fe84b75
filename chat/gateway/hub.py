"""In-process fan-out: topics per event, bounded per-connection mailboxes, presence.

The hub is the only place where one frame meets many connections, so it holds the two rules
that keep one slow phone from hurting everyone else:

- a frame is encoded once by its publisher and the *same* text object is put into every
  recipient's mailbox with a non-blocking put — the hub never awaits a recipient;
- every mailbox is bounded in frames (``limits.outgoing_queue_size``) and in bytes
  (``limits.outgoing_queue_bytes``); a mailbox that overflows is cut off (close 4008, "too
  slow; resume from your cursor") instead of buffering without end. Nothing is lost for the
  client: every message is in the store and ``subscribe`` with ``since`` replays it.

Everything the chat service needs from fan-out is in the :class:`Hub` protocol: this module's
:class:`LocalHub` implements it in one process. A cross-node fan-out (the NATS bus) is a
plug-in: it wraps a :class:`LocalHub` for local delivery, publishes to the other nodes, and
tells the local hub who is subscribed elsewhere through :class:`~chat.gateway.peers.Peers`.

``message`` frames reach subscribers only through the hub's :class:`~chat.gateway.ordering.
OrderMerge`: the service opens a send when it assigns the id (:meth:`Hub.open_send`) and settles
it when the store answered (:meth:`Hub.settle_send`), and the merge releases frames in the
store's order — across nodes too, with the NATS hub. Everything below an event's
:meth:`Hub.replay_bound` is settled and released.

A subscription starts *buffering*: while the service replays missed messages from the store
(below the replay bound), live frames of the event are held in the subscription, each with the
store position of the message it carries. :meth:`Subscription.go_live` then flushes them,
skipping messages below the bound (the replay sent them) — that is what makes the resume seam
free of gaps and duplicates.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import sys
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from chat.domain.messages import Message
from chat.domain.position import Position
from chat.gateway import frames
from chat.gateway.ordering import Held, OrderMerge
from chat.gateway.peers import Peers

log = logging.getLogger(__name__)

_ids = itertools.count(1)

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
"""A mailbox's byte budget unless given (``CHAT_WS_OUTGOING_QUEUE_BYTES``' default)."""

LatestKey = tuple[str, int]
"""What a latest-value frame supersedes: its kind and event, e.g. ``("typing", 7)``."""


def typing_key(event_id: int) -> LatestKey:
    """``typing`` frames carry the whole current set: a newer one supersedes a queued one."""
    return ("typing", event_id)


def frame_bytes(frame: str) -> int:
    """The memory a queued frame takes: what the byte budget counts.

    ``sys.getsizeof`` of the text, not its UTF-8 length: a ``str`` holding one emoji stores
    every character in four bytes, so memory is what the wire length would understate.
    """
    return sys.getsizeof(frame)


class _Latest:
    """A queued frame that a newer frame with the same key supersedes (see
    :meth:`Mailbox.put_latest`); ``frame`` is None once superseded."""

    __slots__ = ("frame", "key", "size")

    def __init__(self, key: Hashable, frame: str) -> None:
        self.key = key
        self.frame: str | None = frame
        self.size = frame_bytes(frame)


class Mailbox:
    """One connection's bounded outgoing queue of encoded text frames.

    The connection's writer task drains it (:meth:`pop_batch`); producers only ever call
    :meth:`put` or :meth:`put_latest`, which never block. Overflow calls ``on_overflow`` once
    — the connection closes itself with 4008 — and every later put is dropped.

    Two bounds, because frames can be of any size (a ``history`` page of long messages is
    megabytes): ``maxsize`` frames, and ``max_bytes`` of memory (:func:`frame_bytes`). A put
    overflows when ``maxsize`` frames are queued, or more than twice ``max_bytes``. Between
    ``max_bytes`` and that, the mailbox is :attr:`full`: the connection's own large answers
    wait for room (:meth:`wait_for_room`) rather than pile up, and ``on_full`` is called so that
    the connection can cut off a client that takes nothing for a while (its stall watch,
    which compares :attr:`progress`).

    Frames that only carry a current value (the ``unread`` count pushed on every new message)
    go in with :meth:`put_latest`: at most one such frame per key waits in the queue, so a busy
    event costs a client that reads slower than it is written one ``unread`` frame per
    write-up, not one per message.
    """

    def __init__(
        self,
        user_id: int,
        maxsize: int,
        *,
        on_overflow: Callable[[Mailbox], None],
        on_removed: Callable[[int, EndReason], None],
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_full: Callable[[], None] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.user_id = user_id
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.hard_max_bytes = 2 * max_bytes
        """Bytes queued past which the next put overflows."""
        self.closed = False
        self.progress = 0
        """Frames taken by the writer so far: a client that reads moves it."""
        self._bytes = 0
        self._on_full = on_full
        self._frames: collections.deque[str | _Latest] = collections.deque()
        # The queued latest-value frame of each key, and how many superseded ones (None
        # frames) still sit in the deque until the writer passes them.
        self._latest: dict[Hashable, _Latest] = {}
        self._stale = 0
        self._on_overflow = on_overflow
        self._on_removed = on_removed
        self._waiter: Callable[[], None] | None = None
        self._room: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Mailbox {self.id} user={self.user_id} queued={len(self)} bytes={self._bytes}>"

    @property
    def queued_bytes(self) -> int:
        """Memory the queued frames take (:func:`frame_bytes`)."""
        return self._bytes

    @property
    def full(self) -> bool:
        """At or over the byte budget, or an answer waits for room: the client must read."""
        return self._bytes >= self.max_bytes or self._room is not None

    def _fits(self) -> bool:
        return len(self._frames) - self._stale < self.maxsize and self._bytes <= self.hard_max_bytes

    def _added(self, size: int) -> None:
        self._bytes += size
        if self._bytes >= self.max_bytes and self._on_full is not None:
            self._on_full()
        self._wake()

    def put(self, frame: str) -> bool:
        """Queue ``frame``; False (and the connection is being cut off) when it did not fit."""
        if self.closed:
            return False
        if not self._fits():
            self.overflow()
            return False
        self._frames.append(frame)
        self._added(frame_bytes(frame))
        return True

    def put_latest(self, key: Hashable, frame: str) -> bool:
        """Queue ``frame``, superseding a frame of the same ``key`` not yet written.

        The superseded frame is dropped and the new one goes to the *end* of the queue, so it
        still follows every frame queued before it (an ``unread`` count never arrives ahead of
        the ``message`` frames it counts). Superseding never makes the queue longer, so it
        never overflows it.
        """
        if self.closed:
            return False
        old = self._latest.get(key)
        if old is None:
            if not self._fits():
                self.overflow()
                return False
        else:
            old.frame = None
            self._bytes -= old.size
            self._stale += 1
            if self._stale > self.maxsize:
                self._compact()
        slot = _Latest(key, frame)
        self._latest[key] = slot
        self._frames.append(slot)
        self._added(slot.size)
        return True

    def _compact(self) -> None:
        """Drop superseded entries (keeps the deque within twice ``maxsize`` entries when
        the writer is stalled while values keep changing)."""
        self._frames = collections.deque(
            f for f in self._frames if not (isinstance(f, _Latest) and f.frame is None)
        )
        self._stale = 0

    def overflow(self) -> None:
        """The client is too far behind: drop what is queued and have the connection cut off."""
        if self.closed:
            return
        self.closed = True
        self._clear()
        self._on_overflow(self)
        self._wake()
        self._make_room()

    def _clear(self) -> None:
        self._frames.clear()
        self._latest.clear()
        self._stale = 0
        self._bytes = 0

    def _next(self) -> str | None:
        frames = self._frames
        while frames:
            item = frames.popleft()
            if isinstance(item, str):
                self._bytes -= frame_bytes(item)
                self.progress += 1
                return item
            if item.frame is None:
                self._stale -= 1
                continue
            del self._latest[item.key]
            self._bytes -= item.size
            self.progress += 1
            return item.frame
        return None

    def pop(self) -> str | None:
        """The oldest queued frame, or None."""
        frame = self._next()
        if self._room is not None and self._has_room():
            self._make_room()
        return frame

    def pop_batch(self, max_chars: int) -> list[str]:
        """The oldest queued frames, at least one (when any) and about ``max_chars`` at most.

        The writer takes a batch only when the socket is writable and writes it at once; the
        cap keeps one batch within the transport's small buffer, so while the client does not
        read the unsent frames stay here and count against ``maxsize``.
        """
        out: list[str] = []
        size = 0
        while size < max_chars and (frame := self._next()) is not None:
            out.append(frame)
            size += len(frame)
        if self._room is not None and self._has_room():
            self._make_room()
        return out

    def _has_room(self) -> bool:
        return len(self) < max(1, self.maxsize // 2) and self._bytes < self.max_bytes

    async def wait_for_room(self) -> None:
        """Wait until fewer than half of ``maxsize`` frames and less than ``max_bytes`` are
        queued (or the mailbox is closed).

        For a connection's own large output — ``history`` pages, the replay of a resume —
        which must not fill the queue faster than the client reads (it would be cut off,
        resume, and be cut off again; or, not reading at all, hold the gateway's memory).
        While it waits the mailbox is :attr:`full`, so a client that reads nothing is cut off
        by the connection's stall watch. Fan-out never calls this: it must not wait for any
        recipient.
        """
        while not self.closed and not self._has_room():
            self._room = asyncio.get_running_loop().create_future()
            if self._on_full is not None:
                self._on_full()
            try:
                await self._room
            finally:
                self._room = None

    def _make_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def take(self) -> list[str]:
        """Every queued frame, oldest first (the writer sends them in this order)."""
        out = [f if isinstance(f, str) else f.frame for f in self._frames]
        self._clear()
        return [f for f in out if f is not None]

    def __len__(self) -> int:
        return len(self._frames) - self._stale

    def set_waiter(self, wake: Callable[[], None] | None) -> None:
        """The writer's wake-up call, run after every put (it sets an asyncio.Event)."""
        self._waiter = wake

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter()

    def subscription_removed(self, event_id: int, reason: EndReason = "removed") -> None:
        """The subscription ended without the client asking; the connection tells its client.

        ``removed``: the user no longer takes part in the event. ``resync``: live delivery
        was interrupted (the multi-node bus was lost); the client subscribes again with
        ``since`` and the store replays what it missed.
        """
        self._on_removed(event_id, reason)


EndReason = Literal["removed", "resync"]
"""Why a subscription ended on the server's initiative (the ``unsubscribed`` frame's reason)."""


class Subscription:
    """One mailbox's subscription to one event; buffers live frames until :meth:`go_live`.

    ``after`` is the position of the client's ``since`` (the last message it has): a message
    frame at or below it is one the client already got — with several nodes this node's order
    may lag behind the node the client came from, so such a frame can still arrive live.
    """

    __slots__ = ("_buffer", "_buffered_bytes", "_limit", "after", "event_id", "mailbox")

    def __init__(self, mailbox: Mailbox, event_id: int) -> None:
        self.mailbox = mailbox
        self.event_id = event_id
        self.after: Position | None = None
        self._buffer: list[tuple[Position | None, str, LatestKey | None]] | None = []
        # A replay that takes long while the event is busy must not buffer without bound
        # either: past the mailbox's bounds the client is as far behind as an overflowing one.
        self._limit = mailbox.maxsize
        self._buffered_bytes = 0

    @property
    def live(self) -> bool:
        return self._buffer is None

    def deliver(
        self, frame: str, position: Position | None, latest: LatestKey | None = None
    ) -> None:
        """Queue a frame of the event (``latest``: a current value, see
        :meth:`Mailbox.put_latest`), or buffer it while the subscription is being set up."""
        if position is not None and self.after is not None and position <= self.after:
            return
        buffer = self._buffer
        if buffer is None:
            if latest is None:
                self.mailbox.put(frame)
            else:
                self.mailbox.put_latest(latest, frame)
            return
        size = frame_bytes(frame)
        if len(buffer) >= self._limit or self._buffered_bytes + size > self.mailbox.hard_max_bytes:
            self._buffer = None
            self.mailbox.overflow()
            return
        self._buffered_bytes += size
        buffer.append((position, frame, latest))

    def go_live(self, below: Position | None) -> None:
        """Flush buffered frames, skipping messages below ``below`` (the replay sent them)."""
        buffer, self._buffer = self._buffer, None
        self._buffered_bytes = 0
        for position, frame, latest in buffer or ():
            if position is not None and below is not None and position < below:
                continue
            if latest is None:
                self.mailbox.put(frame)
            else:
                self.mailbox.put_latest(latest, frame)


@dataclass(frozen=True, slots=True)
class SendTicket:
    """A send the hub was told of (:meth:`Hub.open_send`): where its message goes in the
    order, and under which node id it was opened (a node that retires hands its open sends
    to the others)."""

    event_id: int
    position: Position
    node_id: str


MessageListener = Callable[[int, int], None]
"""Called with ``(event_id, sender_id)`` after a ``message`` frame went to local subscribers."""


class Hub(Protocol):
    """What the chat service needs from fan-out: :class:`LocalHub`, or the NATS hub across nodes."""

    on_message: MessageListener | None

    def connect(self, mailbox: Mailbox) -> None:
        """A connection authenticated: it can now receive per-user frames (``unread``)."""

    def disconnect(self, mailbox: Mailbox) -> list[int]:
        """The connection is gone: drop its subscriptions; returns the events it left."""

    def subscribe(self, mailbox: Mailbox, event_id: int) -> Subscription:
        """Start a (buffering) subscription; the caller replays, then calls ``go_live``."""

    async def ready(self, subscription: Subscription) -> None:
        """Return once frames of the event published anywhere reach ``subscription``.

        In process that is at once; over a bus it is when the bus confirmed the interest, so
        that the replay that follows cannot miss a message published elsewhere meanwhile.
        Raises :class:`~chat.errors.ServiceUnavailable` while the bus is down.
        """

    def replay_bound(self, event_id: int) -> Position:
        """Every message of the event below this is stored (or never will be) and was
        released to live subscribers; everything above comes live (call after ``ready``)."""

    def may_write(self) -> bool:
        """Whether this node may open and store sends now (see the NATS hub: a node cut off
        from the others, or one that must rejoin, may not)."""

    def open_send(self, event_id: int, message_id: uuid.UUID, claim_key: str) -> SendTicket:
        """A send of the event will store ``message_id``; nothing is written yet."""

    def owns(self, ticket: SendTicket) -> bool:
        """Whether this node may still settle (and acknowledge) the send of ``ticket``."""

    def settle_send(self, ticket: SendTicket, message: Message | None) -> None:
        """The send ended: ``message`` as stored, or None when nothing was stored (or never
        will be). Its ``message`` frame goes to subscribers in the store's order."""

    def announce(self, subscription: Subscription) -> None:
        """Presence after a subscription went live: joined to all, a snapshot to the newcomer."""

    def unsubscribe(self, mailbox: Mailbox, event_id: int) -> bool:
        """End one subscription (presence ``left`` when it was the user's last one)."""

    def publish(
        self,
        event_id: int,
        frame: bytes,
        *,
        exclude_user: int | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        """Deliver a frame other than ``message`` to every subscriber of the event; never
        waits for any of them.

        With ``latest`` the frame is a current value: it supersedes a frame of the same key
        still queued for a recipient (:meth:`Mailbox.put_latest`).
        """

    def publish_typing(
        self, event_id: int, user_ids: Iterable[int], *, exclude_user: int | None = None
    ) -> None:
        """The users of this node typing in the event, to its subscribers (but
        ``exclude_user``), as a current value superseding a queued ``typing`` frame."""

    def send_to_user(
        self,
        user_id: int,
        frame: bytes,
        *,
        exclude: Mailbox | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        """Deliver ``frame`` to every connection of the user (but ``exclude``); ``latest`` as
        for :meth:`publish`."""

    def subscribers(self, event_id: int) -> list[Mailbox]:
        """The mailboxes subscribed to the event (live or buffering)."""

    def online(self, event_id: int) -> set[int]:
        """Users with at least one connection subscribed to the event."""

    def unchanged_since(self, event_id: int) -> float | None:
        """An instant (``time.monotonic()``) after which the event's stored messages have
        not changed as far as this node can tell, or None when it cannot tell.

        It can tell for an event it listens to: a new message moves this instant when the
        order merge learns it was stored (before the replay bound can pass it), an edit or a
        deletion when it is published, after it was stored. So a store read that started
        after this instant misses nothing a replay below the bound needs — a message stored
        after the read began moved this instant, or lies above the caller's bound and reaches
        its (buffering) subscription live. History reads use it to share one read among the
        clients of a resume storm (:class:`~chat.store.cql.read_coalescing.ReadCoalescer`).
        """

    def changed(self, event_id: int | None) -> None:
        """The event's messages (every event's, None) may have changed without a frame saying
        so: :meth:`unchanged_since` starts again from now."""


class LocalHub:
    """The single-process :class:`Hub`: dictionaries of subscriptions, no I/O at all.

    ``own_floor`` is the message store's id promise as a position (every later id is above
    it): the order merge needs it to know when nothing earlier can appear any more. ``peers``,
    given by a cross-node fan-out that wraps this hub, says who is subscribed on other nodes.
    """

    def __init__(
        self,
        own_floor: Callable[[], Position],
        *,
        node_id: str = "local",
        clock: Callable[[], float] = time.monotonic,
        peers: Peers | None = None,
    ) -> None:
        self._topics: dict[int, dict[int, Subscription]] = {}
        # Per event with a topic: when its messages last changed, or when it was first listened
        # to (see :meth:`unchanged_since`); dropped with the topic.
        self._changed: dict[int, float] = {}
        self._users: dict[int, dict[int, Mailbox]] = {}
        self._by_mailbox: dict[int, set[int]] = {}
        self.on_message: MessageListener | None = None
        self._own_floor = own_floor
        self._clock = clock
        self._peers = peers
        self.order = OrderMerge(
            node_id, own_floor, self._release, clock=clock, stored=self._message_stored
        )

    def renew_order(self, node_id: str) -> OrderMerge:
        """Start a new order merge under ``node_id`` (a bus node that retired its old id), the
        same subscribers watching; the caller tells it what the old id left open."""
        self.order = OrderMerge(
            node_id, self._own_floor, self._release, clock=self._clock, stored=self._message_stored
        )
        return self.order

    @property
    def node_id(self) -> str:
        """The name this node goes by in the order (changes when a bus node rejoins)."""
        return self.order.node_id

    # ---------------------------------------------------------------- sends, in order

    def may_write(self) -> bool:
        return True

    def open_send(self, event_id: int, message_id: uuid.UUID, claim_key: str) -> SendTicket:
        position = Position.of(message_id)
        self.order.open_local(event_id, position, claim_key)
        return SendTicket(event_id, position, self.node_id)

    def owns(self, ticket: SendTicket) -> bool:
        return ticket.node_id == self.node_id

    def settle_send(self, ticket: SendTicket, message: Message | None) -> None:
        held = None
        if message is not None:
            held = Held(ticket.position, frames.message(message).decode(), message.sender_id)
        self.order.settle_local(ticket.event_id, ticket.position, held)

    def replay_bound(self, event_id: int) -> Position:
        return self.order.bound(event_id)

    def _message_stored(self, event_id: int) -> None:
        """The order merge learnt of a stored message of the event (a send of this node
        settled, another node's frame, a store read): it may be below the next replay bound,
        so reads shared by resuming clients must have started after this."""
        if event_id in self._changed:
            self._changed[event_id] = time.monotonic()

    def _release(self, event_id: int, held: Held) -> None:
        """The merge's turn for a ``message`` frame: every local subscriber gets it."""
        topic = self._topics.get(event_id)
        if topic:
            # A copy: an overflow closes a connection, which may change the topic meanwhile.
            for subscription in list(topic.values()):
                subscription.deliver(held.frame, held.position)
        if self.on_message is not None:
            self.on_message(event_id, held.sender_id)

    # ---------------------------------------------------------------- subscriptions

    def connect(self, mailbox: Mailbox) -> None:
        self._users.setdefault(mailbox.user_id, {})[mailbox.id] = mailbox
        self._by_mailbox.setdefault(mailbox.id, set())

    def disconnect(self, mailbox: Mailbox) -> list[int]:
        events = sorted(self._by_mailbox.get(mailbox.id, ()))
        for event_id in events:
            self.unsubscribe(mailbox, event_id)
        self._by_mailbox.pop(mailbox.id, None)
        mine = self._users.get(mailbox.user_id)
        if mine is not None:
            mine.pop(mailbox.id, None)
            if not mine:
                del self._users[mailbox.user_id]
        return events

    def subscribe(self, mailbox: Mailbox, event_id: int) -> Subscription:
        subscription = Subscription(mailbox, event_id)
        topic = self._topics.get(event_id)
        if topic is None:
            self._watch(event_id)
            topic = self._topics[event_id] = {}
            self._changed[event_id] = time.monotonic()
        topic[mailbox.id] = subscription
        self._by_mailbox.setdefault(mailbox.id, set()).add(event_id)
        return subscription

    def _watch(self, event_id: int) -> None:
        """The first local subscription of the event: its frames are released from now on.

        With other nodes, sends that settled before this node listened to the event may lie
        above the bound: the store is read above it once the bus confirmed the interest.
        """
        self.order.watch(event_id, catch_up=self._peers is not None)

    async def ready(self, subscription: Subscription) -> None:
        return None

    def announce(self, subscription: Subscription) -> None:
        event_id, mailbox = subscription.event_id, subscription.mailbox
        topic = self._topics.get(event_id, {})
        if topic.get(mailbox.id) is not subscription:
            return  # ended (unsubscribed, removed, disconnected) while it was being set up
        others = [
            s
            for s in topic.values()
            if s.mailbox.user_id == mailbox.user_id and s is not subscription and s.live
        ]
        if others or self._present_elsewhere(event_id, mailbox.user_id):
            mailbox.put(frames.presence(event_id, self.online(event_id)).decode())
        else:
            self.presence_changed(event_id, joined=[mailbox.user_id], left=[])

    def unsubscribe(self, mailbox: Mailbox, event_id: int) -> bool:
        topic = self._topics.get(event_id)
        if topic is None or mailbox.id not in topic:
            return False
        subscription = topic.pop(mailbox.id)
        self._by_mailbox.get(mailbox.id, set()).discard(event_id)
        if not topic:
            del self._topics[event_id]
            del self._changed[event_id]
            self.order.unwatch(event_id)
            return True
        if (
            subscription.live
            and mailbox.user_id not in self._online(topic)
            and not self._present_elsewhere(event_id, mailbox.user_id)
        ):
            self.presence_changed(event_id, joined=[], left=[mailbox.user_id])
        return True

    def _present_elsewhere(self, event_id: int, user_id: int) -> bool:
        """Whether the user is subscribed to the event on another node."""
        return self._peers is not None and self._peers.present(event_id, user_id)

    def presence_changed(self, event_id: int, *, joined: list[int], left: list[int]) -> None:
        """Tell this process's subscribers of the event who joined or left, with who is on."""
        frame = frames.presence(event_id, self.online(event_id), joined=joined, left=left)
        self._fan_out(event_id, frame, None, None)

    def local_online(self, event_id: int) -> set[int]:
        """Users with a live subscription to the event in this process."""
        return self._online(self._topics.get(event_id, {}))

    def has_topic(self, event_id: int) -> bool:
        """Whether some connection of this process is subscribed to the event."""
        return event_id in self._topics

    def events(self) -> list[int]:
        """The events connections of this process are subscribed to."""
        return list(self._topics)

    def publish(
        self,
        event_id: int,
        frame: bytes,
        *,
        exclude_user: int | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        if latest is None and event_id in self._changed:
            # A message, its update or a reaction (current values — typing — change nothing).
            self._changed[event_id] = time.monotonic()
        self._fan_out(event_id, frame, exclude_user, latest)

    def _fan_out(
        self, event_id: int, frame: bytes, exclude_user: int | None, latest: LatestKey | None
    ) -> None:
        """:meth:`publish`'s delivery, without noting a change (presence goes this way)."""
        topic = self._topics.get(event_id)
        if not topic:
            return
        text = frame.decode()  # once: ASGI text frames are str; every mailbox shares this one
        # A copy: an overflow closes a connection, which may change the topic while we iterate.
        for subscription in list(topic.values()):
            if subscription.mailbox.user_id != exclude_user:
                subscription.deliver(text, None, latest)

    def publish_typing(
        self, event_id: int, user_ids: Iterable[int], *, exclude_user: int | None = None
    ) -> None:
        frame = frames.typing(event_id, user_ids)
        self._fan_out(event_id, frame, exclude_user, typing_key(event_id))

    def send_to_user(
        self,
        user_id: int,
        frame: bytes,
        *,
        exclude: Mailbox | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        mailboxes = [m for m in self._users.get(user_id, {}).values() if m is not exclude]
        if mailboxes:
            text = frame.decode()
            for mailbox in mailboxes:
                if latest is None:
                    mailbox.put(text)
                else:
                    mailbox.put_latest(latest, text)

    def subscribers(self, event_id: int) -> list[Mailbox]:
        return [s.mailbox for s in self._topics.get(event_id, {}).values()]

    def online(self, event_id: int) -> set[int]:
        here = self._online(self._topics.get(event_id, {}))
        return here if self._peers is None else here | self._peers.users(event_id)

    def unchanged_since(self, event_id: int) -> float | None:
        # In one process every new message becomes known to the order merge once stored
        # (:meth:`_message_stored`) and every other change goes through :meth:`publish`; both
        # are noted while the event has a topic, so from when the topic began.
        return self._changed.get(event_id)

    def changed(self, event_id: int | None) -> None:
        now = time.monotonic()
        for known in [event_id] if event_id is not None else list(self._changed):
            if known in self._changed:
                self._changed[known] = now

    @staticmethod
    def _online(topic: dict[int, Subscription]) -> set[int]:
        return {s.mailbox.user_id for s in topic.values() if s.live}
