"""The multi-node :class:`~chat.gateway.hub.Hub`: local mailboxes plus NATS between nodes.

A plug-in of the gateway's hub: each node keeps its own connections in an in-process
:class:`~chat.gateway.hub.LocalHub` that :class:`NatsHub` wraps (and tells who is subscribed
elsewhere, as its :class:`~chat.gateway.peers.Peers`), and uses core NATS (no JetStream: the
store is the source of truth, the bus only fans out):

- ``chat.event.<id>`` carries every frame published to an event, **encoded once** by the node
  that made it; headers say which node sent it (``n``), its per-(node, event) sequence number
  (``s``, :mod:`chat.bus.sequences`), the frame's kind (``k``: ``message``, ``typing`` or
  ``frame``), the message's position and sender for ``message`` frames (``p``, ``u``), the
  typing users for ``typing`` frames (``ty``) and the user to leave out (``x``). Receivers
  go by these headers and never look into the encoded frame. A node subscribes to an event's
  subject only while one of its connections does, and :meth:`NatsHub.ready` waits until NATS
  confirmed that interest.
- ``chat.node`` is the node-level subject, numbered per node (``s``): every message carries
  the node's floor and low for the cross-node order and the sends it opened and settled since
  its last message (:mod:`chat.gateway.ordering`; docs/deploy.md, "One order across nodes");
  besides, presence deltas and heartbeats (split into parts far below NATS's ``max_payload``),
  per-user frames (``unread`` to a user's other connections), membership and event-status
  changes, a node's retirement and its goodbye. One subject and one subscription keep all of
  it in the order it was sent.
- ``chat.ready.<node id>`` is private to one node: ``/readyz`` publishes a token there and
  waits for it to come back (:meth:`NatsHub.probe`), which proves the bus path end to end.

``message`` frames reach local subscribers only through the order merge, in the store's
order, wherever they were sent. A node whose own ``chat.node`` messages stop coming back to it
for half the presence TTL (frozen, or cut off from NATS) **retires** its node id: it settles and
acknowledges nothing it had under way, ends its subscriptions with ``resync``, and rejoins
under a new id after a warm-up of two heartbeats; the others settle what it left open from
the store. While cut off or warming up it refuses sends and subscriptions (``unavailable``).

Event frames also carry the publisher's wall clock (``t``), so a receiving node can measure
the delivery lag (``chat_nats_delivery_lag_seconds``, see :mod:`chat.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from chat.bus.outbox import Outbox
from chat.bus.presence import PRESENCE_PART_BYTES, PresenceTable, presence_parts, set_typing
from chat.bus.probe import BusProbe
from chat.bus.relays import Relays
from chat.bus.sequences import EventSequences
from chat.bus.settling import MessageSource, Settling
from chat.bus.wire import (
    SequenceFacts,
    decode_opens,
    encode_opens,
    position_hex,
    position_of,
)
from chat.domain.messages import Message
from chat.domain.position import Position
from chat.errors import ServiceUnavailable
from chat.gateway import frames
from chat.gateway.background import BackgroundTasks
from chat.gateway.event_status import EventStatuses
from chat.gateway.hub import (
    LatestKey,
    LocalHub,
    Mailbox,
    MessageListener,
    SendTicket,
    Subscription,
)
from chat.gateway.membership import Membership
from chat.gateway.ordering import Held, OpenSend, OrderMerge, Settled, process_floor
from chat.metrics import Metrics

log = logging.getLogger(__name__)

EVENT_SUBJECT = "chat.event.{}"
NODE_SUBJECT = "chat.node"
READY_TIMEOUT = 5
"""How long a subscribe waits for NATS to confirm the node's interest in an event."""
SEQUENCE_IDLE = 60.0
"""After this many seconds (up to twice that) without a frame from this node to an event, the
node forgets the event's sequence number and starts again at 1, a new baseline for receivers."""
FLOOR_INTERVAL = 0.01
"""While sends are under way anywhere, a node announces its floor at least this often."""
BUSY_SECONDS = 1.0
"""How long after the last send opened anywhere a node keeps announcing its floor that often."""
DEFAULT_OUTBOX_BYTES = 8 * 1024 * 1024

Resync = Callable[[int | None], None]
"""Ends local subscriptions so clients resume: of one event, or of all (None)."""


@dataclass(slots=True)
class _EventInterest:
    """This node's NATS subscription to one event's subject (set once confirmed)."""

    ready: asyncio.Future[None]
    sub: NatsSubscription | None = None
    ready_at: float | None = None
    """When NATS confirmed it (``time.monotonic()``): frames of the event reach us from then."""


class NatsHub:
    """A :class:`~chat.gateway.hub.Hub` whose events, presence, order and per-user frames span
    every node: a :class:`LocalHub` for this node's connections, NATS for the others."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        own_floor: Callable[[], Position] = process_floor,
        node_id: str | None = None,
        presence_heartbeat: float = 1.0,
        presence_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        sequence_idle: float = SEQUENCE_IDLE,
        outbox_bytes: int = DEFAULT_OUTBOX_BYTES,
    ) -> None:
        self._base_id = node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._incarnation = 0
        self._presence = PresenceTable(clock, presence_ttl)
        self._local = LocalHub(own_floor, node_id=self._base_id, clock=clock, peers=self._presence)
        self.nc = nc
        self.heartbeat = presence_heartbeat
        self.ttl = presence_ttl
        self._clock = clock
        self.bus_up = True
        self.on_resync: Resync | None = None
        self.on_trouble: Callable[[], None] | None = None
        self._interest: dict[int, _EventInterest] = {}
        self._sent_presence: dict[int, frozenset[int]] = {}
        self._typing: dict[int, set[int]] = {}
        self._sequences = EventSequences(sequence_idle, clock())
        # The node-level stream: this node's numbering, and what its next message announces.
        self._node_seq = 0
        self._opened: list[list[Any]] = []
        self._settled: list[list[Any]] = []
        self._orphans_settled: list[list[Any]] = []
        self._flush_scheduled = False
        self._floor_asked = False
        self._busy_until = 0.0
        self._beat_no = 0
        # Retiring: the lease runs from the last own node message that came back from NATS.
        self._last_echo = clock()
        self._warm_until = clock() + 2 * presence_heartbeat
        self._retired: list[tuple[str, list[OpenSend], list[list[Any]]]] = []
        self._relays = Relays(self._node_message)
        self._tasks: list[asyncio.Task[None]] = []
        self._node_sub: NatsSubscription | None = None
        self._pending = BackgroundTasks()
        self._closing = False
        self._probe = BusProbe(nc, self._base_id)
        self._settling: Settling | None = None
        # Bound once: counting a frame on the hot path is a method call, no lookups.
        m = metrics or Metrics()
        self._outbox = Outbox(
            outbox_bytes,
            published=m.nats_published.inc,
            failed=m.nats_publish_errors.inc,
            dropped=m.nats_outbox_dropped.inc,
        )
        self._count_delivered = m.nats_delivered.inc
        self._count_retired = m.nats_retired.inc
        self._count_orphan = m.order_orphans_settled.inc
        self._observe_lag = m.nats_delivery_lag.observe

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._node_sub = await self.nc.subscribe(NODE_SUBJECT, cb=self._on_node)
        await self._probe.start()
        await self.nc.flush(READY_TIMEOUT)
        self._tasks = [
            asyncio.create_task(self._outbox.run(self.nc), name="bus-sender"),
            asyncio.create_task(self._beat_loop(), name="bus-heartbeat"),
            asyncio.create_task(self._floor_loop(), name="bus-floor"),
        ]
        self._last_echo = self._clock()
        self._warm_until = self._clock() + 2 * self.heartbeat
        self._beat()
        log.info("bus node %s joined NATS at %s", self.node_id, self._server())

    def attach_store(self, source: MessageSource) -> None:
        """Where the order reads and fences (the chat service's stores)."""
        self._settling = Settling(lambda: self.order, source, self._orphan_settled)

    async def close(self) -> None:
        """Say goodbye (other nodes drop this node's presence at once and settle what it left
        open) and stop.

        From here on the connection closing is this node's own doing, not a loss of the bus:
        :meth:`disconnected` stays quiet and resyncs nobody. Safe to call twice, and after a
        :meth:`start` that failed (then there is nobody to say goodbye to: it only cleans up).
        """
        self._closing = True
        self._relays.close()
        # Interest being set up or torn down: the connection is about to be drained anyway.
        await self._pending.cancel()
        if self._settling is not None:
            await self._settling.close()
        for interest in self._interest.values():
            if not interest.ready.done():
                interest.ready.set_exception(ServiceUnavailable("the event bus is closing"))
                interest.ready.exception()  # retrieved: waiters may have given up
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return  # never started (or closed already): no sender to drain the outbox
        self._node_message({"k": "bye", "open": encode_opens(self.order.local_opens())})
        sender, *others = tasks
        for task in others:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.drained(), 2.0)
        sender.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def relay_membership(self, membership: Membership) -> None:
        """Carry participant changes made on this node to the others' caches and sessions."""
        self._relays.membership(membership)

    def relay_statuses(self, statuses: EventStatuses) -> None:
        """Carry event status changes made on this node to the others' caches."""
        self._relays.statuses(statuses)

    # ---------------------------------------------------------------- Hub

    @property
    def node_id(self) -> str:
        """The name this node goes by in the order (a new one after each retirement)."""
        return self._local.node_id

    @property
    def order(self) -> OrderMerge:
        """The cross-node order merge of the current node id."""
        return self._local.order

    @property
    def on_message(self) -> MessageListener | None:
        return self._local.on_message

    @on_message.setter
    def on_message(self, listener: MessageListener | None) -> None:
        self._local.on_message = listener

    def connect(self, mailbox: Mailbox) -> None:
        self._local.connect(mailbox)

    def disconnect(self, mailbox: Mailbox) -> list[int]:
        events = self._local.disconnect(mailbox)
        for event_id in events:
            self._local_changed(event_id)
        return events

    def subscribe(self, mailbox: Mailbox, event_id: int) -> Subscription:
        return self._local.subscribe(mailbox, event_id)

    def replay_bound(self, event_id: int) -> Position:
        return self._local.replay_bound(event_id)

    def subscribers(self, event_id: int) -> list[Mailbox]:
        return self._local.subscribers(event_id)

    def changed(self, event_id: int | None) -> None:
        self._local.changed(event_id)

    def may_write(self) -> bool:
        now = self._clock()
        return self.bus_up and not self._closing and now >= self._warm_until and self._leased(now)

    def owns(self, ticket: SendTicket) -> bool:
        return ticket.node_id == self.node_id and self._leased(self._clock())

    def _leased(self, now: float) -> bool:
        """Whether the others still count on this node id: its own messages came back from
        NATS recently enough that nobody can have taken it for dead."""
        return now - self._last_echo < self.ttl / 2

    async def ready(self, subscription: Subscription) -> None:
        if self._closing:
            raise ServiceUnavailable("this node is shutting down; reconnect to another node")
        if not self.bus_up:
            raise ServiceUnavailable("the event bus is reconnecting; subscribe again shortly")
        if self._clock() < self._warm_until:
            raise ServiceUnavailable("this node is joining the others; subscribe again shortly")
        event_id = subscription.event_id
        interest = self._interest.get(event_id)
        if interest is None:
            loop = asyncio.get_running_loop()
            interest = _EventInterest(loop.create_future())
            self._interest[event_id] = interest
            self._background(self._listen(event_id, interest))
        try:
            await asyncio.wait_for(asyncio.shield(interest.ready), READY_TIMEOUT)
        except (TimeoutError, ServiceUnavailable, OSError) as exc:
            if self._interest.get(event_id) is interest and not interest.ready.done():
                self._drop_interest(event_id)
            raise ServiceUnavailable("the event bus did not answer; subscribe again") from exc

    async def _listen(self, event_id: int, interest: _EventInterest) -> None:
        async def deliver(msg: Msg) -> None:
            if self._interest.get(event_id) is interest:
                self._on_event(event_id, msg)

        try:
            interest.sub = await self.nc.subscribe(EVENT_SUBJECT.format(event_id), cb=deliver)
            # The server has processed the SUB once a PING sent after it is answered. nats-py
            # (2.16) queues the SUB for its flusher task but writes flush()'s PING to the socket
            # at once, so the first PONG may come back before the SUB was even sent; by then
            # the flusher has written it, and the second PING follows it on the wire.
            await self.nc.flush(READY_TIMEOUT)
            await self.nc.flush(READY_TIMEOUT)
        except Exception as exc:
            if not interest.ready.done():
                interest.ready.set_exception(ServiceUnavailable(f"bus subscribe failed: {exc!r}"))
                interest.ready.exception()  # retrieved: waiters may have given up
            return
        if not interest.ready.done():
            interest.ready_at = time.monotonic()
            interest.ready.set_result(None)
        self.order.listening(event_id)  # every frame published from now on comes here
        self._run_settling()
        if self._interest.get(event_id) is not interest:
            await self._unlisten(interest)  # everyone left while it was being set up

    async def _unlisten(self, interest: _EventInterest) -> None:
        if interest.sub is not None:
            with contextlib.suppress(Exception):
                await interest.sub.unsubscribe()

    def announce(self, subscription: Subscription) -> None:
        self._local.announce(subscription)
        self._local_changed(subscription.event_id)

    def unsubscribe(self, mailbox: Mailbox, event_id: int) -> bool:
        found = self._local.unsubscribe(mailbox, event_id)
        if found:
            self._local_changed(event_id)
        return found

    def open_send(self, event_id: int, message_id: uuid.UUID, claim_key: str) -> SendTicket:
        ticket = self._local.open_send(event_id, message_id, claim_key)
        self._opened.append([event_id, position_hex(ticket.position), claim_key])
        self._busy_until = self._clock() + BUSY_SECONDS
        self._schedule_flush()
        return ticket

    def settle_send(self, ticket: SendTicket, message: Message | None) -> None:
        if not self.owns(ticket):
            return  # opened under a retired id: the node settling its orphans decides
        if message is not None:
            self._publish_event(
                ticket.event_id,
                frames.message(message),
                _message_headers(ticket.position, message),
            )
        self._local.settle_send(ticket, message)
        self._settled.append(
            [ticket.event_id, position_hex(ticket.position), int(message is not None)]
        )
        self._schedule_flush()

    def publish(
        self,
        event_id: int,
        frame: bytes,
        *,
        exclude_user: int | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        self._local.publish(event_id, frame, exclude_user=exclude_user, latest=latest)
        headers = {"k": "frame"}
        if exclude_user is not None:
            headers["x"] = str(exclude_user)
        self._publish_event(event_id, frame, headers)

    def publish_typing(
        self, event_id: int, user_ids: Iterable[int], *, exclude_user: int | None = None
    ) -> None:
        """This node's typists, merged with the other nodes' for local subscribers; the
        others get this node's set and merge it with theirs."""
        users = sorted(user_ids)
        set_typing(self._typing, event_id, users)
        self._local.publish_typing(event_id, self._typists(event_id), exclude_user=exclude_user)
        headers = {"k": "typing", "ty": ",".join(map(str, users))}
        if exclude_user is not None:
            headers["x"] = str(exclude_user)
        self._publish_event(event_id, frames.typing(event_id, users), headers)

    def send_to_user(
        self,
        user_id: int,
        frame: bytes,
        *,
        exclude: Mailbox | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        self._local.send_to_user(user_id, frame, exclude=exclude, latest=latest)
        body: dict[str, Any] = {"k": "user", "u": user_id, "f": frame.decode()}
        if latest is not None:
            body["l"] = list(latest)
        self._node_message(body)

    def online(self, event_id: int) -> set[int]:
        return self._local.online(event_id)

    def unchanged_since(self, event_id: int) -> float | None:
        """As in one process, but other nodes' changes arrive over NATS: known only while the
        bus is up and this node's interest in the event is confirmed, and from then on. A gap
        in a node's frames, a node taken for dead or a reconnect of the bus counts as a change
        (:meth:`_resync`, :meth:`_trouble`)."""
        interest = self._interest.get(event_id)
        if not self.bus_up or interest is None or interest.ready_at is None:
            return None
        since = self._local.unchanged_since(event_id)
        return None if since is None else max(since, interest.ready_at)

    # ---------------------------------------------------------------- outgoing

    def _publish_event(self, event_id: int, frame: bytes, headers: dict[str, str]) -> None:
        seq = self._sequences.next(event_id)
        headers.update(n=self.node_id, s=str(seq), t=repr(time.time()))
        self._enqueue(EVENT_SUBJECT.format(event_id), frame, headers)

    def _enqueue(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        if self.bus_up:
            self._outbox.put(subject, data, headers)

    def _node_message(self, body: dict[str, Any]) -> None:
        """Publish on ``chat.node``, with this node's number, floor and low, and what it
        opened and settled since its last message (a floor must never pass an open send
        that was not announced with it or before)."""
        if not self.bus_up:
            return
        floor, low = self.order.announce()
        self._node_seq += 1
        body.update(n=self.node_id, s=self._node_seq, fl=position_hex(floor), lo=position_hex(low))
        body["c"] = self._clock()  # when it was sent: its echo proves the bus carried it then
        if self._opened:
            body["o"], self._opened = self._opened, []
        if self._settled:
            body["d"], self._settled = self._settled, []
        if self._orphans_settled:
            body["x"], self._orphans_settled = self._orphans_settled, []
        self._enqueue(NODE_SUBJECT, orjson.dumps(body), None)

    def _schedule_flush(self) -> None:
        """Announce what was opened and settled at the end of this pass of the loop: one
        message for everything that happened in it."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        force, self._floor_asked = self._floor_asked, False
        if force or self._opened or self._settled or self._orphans_settled:
            self._node_message({"k": "q"})

    def _local_changed(self, event_id: int) -> None:
        """Tell other nodes this node's users of the event changed; drop unused interest."""
        if not self._local.has_topic(event_id):
            interest = self._drop_interest(event_id)
            if interest is not None and interest.ready.done():
                self._background(self._unlisten(interest))
        users = frozenset(self._local.local_online(event_id))
        if self._sent_presence.get(event_id, frozenset()) == users:
            return
        if users:
            self._sent_presence[event_id] = users
        else:
            self._sent_presence.pop(event_id, None)
        self._node_message({"k": "delta", "e": event_id, "users": sorted(users)})

    def _drop_interest(self, event_id: int) -> _EventInterest | None:
        """Stop tracking the event: what was learnt while listening to it is stale from here.

        A new interest starts from new baselines: the first frame of each other node is not a
        gap however far its sequence number moved meanwhile, and nobody types until told so.
        """
        self._sequences.stop_listening(event_id)
        self._presence.stop_listening(event_id)
        return self._interest.pop(event_id, None)

    async def _beat_loop(self) -> None:
        held_since: float | None = None
        while True:
            await asyncio.sleep(self.heartbeat)
            # This node's own silence first: after a freeze every other node looks silent too,
            # and taking live nodes for dead would drop what they send. It retires instead.
            if not self._check_lease():
                self._expire()
            self._beat()
            self._sequences.sweep(self._clock())
            self._run_settling()
            holding = self.order.holding()
            now = self._clock()
            if not holding:
                held_since = None
            elif held_since is None:
                held_since = now
            elif now - held_since > self.ttl:
                log.warning("order held back for %.1f s: %s", now - held_since, "; ".join(holding))
                held_since = now

    async def _floor_loop(self) -> None:
        """While sends are under way anywhere, announce the floor often: a node waiting to
        release a frame waits for every other node's floor to pass it."""
        while True:
            await asyncio.sleep(FLOOR_INTERVAL)
            if self._clock() < self._busy_until:
                self._node_message({"k": "q"})
                self._run_settling()  # idle, the heartbeat's pass is soon enough

    def _run_settling(self) -> None:
        if self._settling is not None and self.bus_up and not self._closing:
            self._settling.run(orphans_older_than=self.ttl)

    def _beat(self) -> None:
        """The whole presence map, in parts that stay far below NATS's ``max_payload``."""
        limit = min(PRESENCE_PART_BYTES, max(1024, self._max_payload() // 4))
        parts = presence_parts(self._sent_presence, limit)
        self._beat_no += 1
        for i, part in enumerate(parts):
            body = {"k": "beat", "b": self._beat_no, "i": i, "m": len(parts), "events": part}
            self._node_message({**body, "ttl": self.ttl})

    def _max_payload(self) -> int:
        with contextlib.suppress(Exception):
            return int(self.nc.max_payload)
        return 1024 * 1024

    # ---------------------------------------------------------------- incoming

    def _on_event(self, event_id: int, msg: Msg) -> None:
        headers = msg.headers or {}
        origin = headers.get("n", "")
        if origin == self.node_id:
            return
        seq = int(headers.get("s", "0"))
        last = self._sequences.received(event_id, origin, seq)
        if last is not None:
            log.warning(
                "bus gap from %s on event %d (%d -> %d): resync", origin, event_id, last, seq
            )
            self._resync(event_id)
            return
        self._count_delivered()
        stamp = headers.get("t")
        if stamp is not None:
            self._observe_lag(max(0.0, time.time() - float(stamp)))
        position = headers.get("p")
        if position is not None:  # a message frame (``k`` says so too; older nodes omit it)
            held = Held(position_of(position), msg.data.decode(), int(headers.get("u", "0")))
            self.order.message_frame(event_id, held, origin)
            return
        exclude = headers.get("x")
        exclude_user = int(exclude) if exclude is not None else None
        if headers.get("k") == "typing":
            typists = [int(u) for u in headers.get("ty", "").split(",") if u]
            set_typing(self._presence.node(origin).typing, event_id, typists)
            users = self._typists(event_id)
            self._local.publish_typing(event_id, users, exclude_user=exclude_user)
            return
        self._local.publish(event_id, msg.data, exclude_user=exclude_user)

    async def _on_node(self, msg: Msg) -> None:
        try:
            body: dict[str, Any] = orjson.loads(msg.data)
            origin = str(body["n"])
            if origin == self.node_id:
                # The bus carried this node's message; what counts is when it was sent (after
                # a freeze, messages sent before it come back and prove nothing about now).
                self._last_echo = max(self._last_echo, float(body["c"]))
                return
            if self.order.is_gone(origin):
                return  # a retired or dead node's late frames: what it left is being settled
            self._node_frame(origin, body)
            self._node_kind(origin, body)
        except Exception:
            log.exception("bad node message on the bus")

    def _node_frame(self, origin: str, body: dict[str, Any]) -> None:
        facts = SequenceFacts.of(body)
        if facts.opened:
            self._busy_until = self._clock() + BUSY_SECONDS
            self._schedule_floor()
        lost = self.order.node_frame(
            origin,
            facts.seq,
            facts.floor,
            facts.low,
            facts.opened,
            facts.settled,
            facts.orphans_settled,
        )
        if lost:
            self._trouble()

    def _schedule_floor(self) -> None:
        """Another node opened a send: answer with this node's floor at the end of the pass,
        so the frame it is about to publish is not held back waiting for it."""
        self._floor_asked = True
        self._schedule_flush()

    def _node_kind(self, origin: str, body: dict[str, Any]) -> None:
        kind = body["k"]
        if kind == "delta":
            self._set_presence(origin, {int(body["e"]): set(body["users"])}, full=False)
        elif kind == "beat":
            self._presence_part(origin, body)
        elif kind in ("bye", "retire"):
            gone = str(body.get("old", origin))
            opens = decode_opens(gone, body.get("open", ()))
            settled = [
                Settled(int(e), position_of(p), bool(ok)) for e, p, ok in body.get("done", ())
            ]
            self.order.node_gone(gone, opens, settled)
            self._forget(gone)
            self._trouble()
            self._run_settling()
        elif kind == "user":
            self._count_delivered()
            key = body.get("l")
            latest = (str(key[0]), int(key[1])) if key else None
            self._local.send_to_user(int(body["u"]), str(body["f"]).encode(), latest=latest)
        else:
            self._relays.received(kind, body)

    def _presence_part(self, origin: str, body: dict[str, Any]) -> None:
        known = origin in self._presence.nodes
        events = self._presence.heartbeat_part(origin, body)
        if events is not None:
            self._set_presence(origin, events, full=True, ttl=float(body["ttl"]))
        if not known:
            self._beat()  # a newcomer learns our presence now, not a heartbeat later

    def _set_presence(
        self, origin: str, events: dict[int, set[int]], *, full: bool, ttl: float | None = None
    ) -> None:
        node = self._presence.node(origin, ttl)
        touched = set(events) | (set(node.events) if full else set())
        before = {e: self.online(e) for e in touched}
        if full:
            node.events = {e: u for e, u in events.items() if u}
        else:
            for event_id, users in events.items():
                if users:
                    node.events[event_id] = users
                else:
                    node.events.pop(event_id, None)
        self._announce_changes(before)

    def _forget(self, origin: str) -> None:
        node = self._presence.forget(origin)
        if node is None:
            return
        self._announce_changes({e: self.online(e) | u for e, u in node.events.items()})
        for event_id in node.typing:  # only events where some of its users were typing
            self._local.publish_typing(event_id, self._typists(event_id))
        self._sequences.forget_node(origin)

    def _announce_changes(self, before: dict[int, set[int]]) -> None:
        for event_id, was in before.items():
            now = self.online(event_id)
            joined, left = sorted(now - was), sorted(was - now)
            if (joined or left) and self._local.has_topic(event_id):
                self._local.presence_changed(event_id, joined=joined, left=left)

    def _expire(self) -> None:
        for origin in self._presence.expired():
            log.info("bus node %s missed its heartbeats: its presence expires", origin)
            self._forget(origin)
        dead = self.order.expire(self.ttl)
        for origin in dead:
            log.warning("bus node %s is silent: the sends it left open are settled here", origin)
            self._forget(origin)
        if dead:
            self._trouble()

    def _typists(self, event_id: int) -> set[int]:
        """Users typing in the event on any node."""
        return set(self._typing.get(event_id, ())) | self._presence.typists(event_id)

    def _orphan_settled(self, send: OpenSend, outcome: Settled, message: Message | None) -> None:
        """This node settled an orphan: publish it (when stored) and announce the outcome."""
        self._count_orphan()
        if message is not None:
            self._publish_event(
                send.event_id,
                frames.message(message),
                _message_headers(send.position, message),
            )
        entry = [send.node_id, send.event_id, position_hex(send.position), int(outcome.published)]
        self._orphans_settled.append(entry)
        self._schedule_flush()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        self._pending.spawn(work)

    def _server(self) -> str:
        """``host:port`` of the NATS server this node is connected to (for log lines)."""
        url = self.nc.connected_url
        return url.netloc if url is not None else "(none)"

    # ---------------------------------------------------------------- readiness

    async def probe(self) -> None:
        """``/readyz``: NATS carries this node's frames, and the node may write."""
        if not self.bus_up:
            raise ServiceUnavailable("the event bus is reconnecting to NATS")
        if not self.may_write():
            raise ServiceUnavailable("this node is joining the other nodes")
        await self._probe.round_trip()

    # ---------------------------------------------------------------- trouble

    def _resync(self, event_id: int | None) -> None:
        self.changed(event_id)
        if self.on_resync is not None:
            self.on_resync(event_id)

    def _trouble(self) -> None:
        """Something the others said may have been lost: re-check what was learnt from it."""
        self.changed(None)  # reads shared by resuming clients start afresh too
        if self.on_trouble is not None:
            self.on_trouble()

    def _check_lease(self) -> bool:
        """Retire this node id if its own frames stopped coming back; whether it retired."""
        if self._closing or not self.bus_up:
            return False
        silent = self._clock() - self._last_echo
        if silent >= self.ttl / 2:
            log.warning(
                "bus node %s: its own frames have not come back for %.1f s (frozen or cut "
                "off): it retires and rejoins",
                self.node_id,
                silent,
            )
            self._retire()
            self._publish_retired()
            return True
        return False

    def _retire(self) -> None:
        """Give up this node id: what it left open is for the others to settle, and this
        process rejoins under a new id (it may have been taken for dead)."""
        self._count_retired()
        self._resync(None)  # every subscription's place in the order is gone with the id
        old = self.order
        opens = old.local_opens()
        settled, self._settled = self._settled, []  # not announced yet: goes with the news
        self._incarnation += 1
        order = self._local.renew_order(f"{self._base_id}~{self._incarnation}")
        # Nothing of the old id's view is kept: it may have taken live nodes for dead (frozen,
        # it heard nobody); the new id learns every node afresh, its late frames included.
        order.node_gone(old.node_id, opens)
        for event_id in self._local.events():
            order.watch(event_id)
        self._retired.append((old.node_id, opens, settled))
        self._node_seq = 0
        self._opened, self._orphans_settled = [], []
        self._sequences.restart()
        now = self._clock()
        self._warm_until = now + 2 * self.heartbeat
        self._last_echo = now
        self._trouble()

    def _publish_retired(self) -> None:
        """Tell the others which ids this process gave up, with what they left open."""
        retired, self._retired = self._retired, []
        for old_id, opens, settled in retired:
            body = {"k": "retire", "old": old_id, "open": encode_opens(opens), "done": settled}
            self._node_message(body)
        self._beat()

    async def disconnected(self) -> None:
        """NATS is gone: live delivery has a hole, and this node may be taken for dead.

        Not when this node closed the connection itself (:meth:`close`, then a drain): its
        clients were already told to reconnect elsewhere, and a resync would be noise.
        """
        if self._closing or not self.bus_up:
            return
        log.warning("bus node %s lost NATS: subscriptions end with resync", self.node_id)
        self._retire()
        self.bus_up = False
        for origin in list(self._presence.nodes):
            self._forget(origin)
        self._sequences.forget_received()
        self._outbox.clear()

    async def reconnected(self) -> None:
        if self._closing:
            return
        log.info("bus node %s reconnected to NATS at %s", self.node_id, self._server())
        self._resync(None)  # anything that slipped in between is covered by the replay
        self.bus_up = True
        now = self._clock()
        self._warm_until = now + 2 * self.heartbeat
        self._last_echo = now
        self._publish_retired()


def _message_headers(position: Position, message: Message) -> dict[str, str]:
    """What a receiving node needs of a ``message`` frame: its place in the order, its sender."""
    return {"k": "message", "p": position_hex(position), "u": str(message.sender_id)}
