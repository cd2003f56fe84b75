"""The multi-node :class:`~chat.gateway.hub.Hub`: local mailboxes plus NATS between nodes.

Each node keeps its own connections in the in-process :class:`LocalHub` (reused, not copied)
and uses core NATS (no JetStream: the store is the source of truth, the bus only fans out):

- ``chat.event.<id>`` carries every frame published to an event, **encoded once** by the node
  that made it; headers say which node sent it (``n``), its per-(node, event) sequence number
  (``s``), the message's id for the resume seam (``p``) and the user to leave out (``x``). A
  sender forgets the number of an event idle for ``sequence_idle`` seconds and starts again at
  1; a receiver takes 1, and the first frame of each node after it starts listening to an
  event, as a new baseline. A node subscribes to an event's subject only while one of its
  connections does, and
  :meth:`NatsHub.ready` waits until NATS confirmed that interest, so the replay that follows
  cannot miss a message published elsewhere meanwhile.
- ``chat.node`` is the node-level subject: presence deltas, periodic presence heartbeats (a
  node's whole presence map), per-user frames (``unread`` to a user's other connections),
  membership invalidations and a goodbye. Each node's presence expires ``presence_ttl``
  seconds after its last heartbeat, so a killed node's users vanish (``left``) by themselves.
- ``chat.ready.<node id>`` is private to one node: ``/readyz`` publishes a token there and
  waits for it to come back (:meth:`NatsHub.probe`), which proves the bus path end to end.

Event frames also carry the publisher's wall clock (``t``), so a receiving node can measure
the delivery lag (``chat_nats_delivery_lag_seconds``, see :mod:`chat.metrics`).

The node that publishes delivers to its own mailboxes directly, so local order is the
Sequencer's; other nodes deliver in the order NATS gives them (one publisher's frames stay in
order). When the bus is lost, or a node sees a gap in another node's sequence numbers for an
event, the affected local subscriptions end with ``unsubscribed`` ``reason: "resync"`` and the
client subscribes again with ``since`` (see docs/protocol.md): the store replays what the bus
dropped, nothing acknowledged is lost.
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
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from chat.bus.connect_options import is_encrypted
from chat.errors import ServiceUnavailable
from chat.gateway import frames
from chat.gateway.hub import LatestKey, LocalHub, Mailbox, Subscription
from chat.gateway.membership import Membership
from chat.metrics import Metrics
from chat.store.message_history import Position

log = logging.getLogger(__name__)

EVENT_SUBJECT = "chat.event.{}"
NODE_SUBJECT = "chat.node"
READY_SUBJECT = "chat.ready.{}"
PROBE_TIMEOUT = 1.0
"""How long a readiness probe waits for its token to come back through NATS."""
READY_TIMEOUT = 5
"""How long a subscribe waits for NATS to confirm the node's interest in an event."""
SEQUENCE_IDLE = 60.0
"""After this many seconds (up to twice that) without a frame from this node to an event, the
node forgets the event's sequence number and starts again at 1, a new baseline for receivers."""
_TYPING_PREFIX = b'{"type":"typing"'

Resync = Callable[[int | None], None]
"""Ends local subscriptions so clients resume: of one event, or of all (None)."""


@dataclass(slots=True)
class _Node:
    """What this node knows of another: its presence map, typists, and when it expires."""

    expires: float
    events: dict[int, set[int]] = field(default_factory=dict)
    typing: dict[int, set[int]] = field(default_factory=dict)


@dataclass(slots=True)
class _EventInterest:
    """This node's NATS subscription to one event's subject (set once confirmed)."""

    ready: asyncio.Future[None]
    sub: NatsSubscription | None = None
    ready_at: float | None = None
    """When NATS confirmed it (``time.monotonic()``): frames of the event reach us from then."""


class NatsHub(LocalHub):
    """A :class:`LocalHub` whose events, presence and per-user frames span every node."""

    distributed = True

    def __init__(
        self,
        nc: NatsClient,
        *,
        node_id: str | None = None,
        presence_heartbeat: float = 1.0,
        presence_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        sequence_idle: float = SEQUENCE_IDLE,
    ) -> None:
        super().__init__()
        self.nc = nc
        self.node_id = node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.heartbeat = presence_heartbeat
        self.ttl = presence_ttl
        self._clock = clock
        self.bus_up = True
        self.on_resync: Resync | None = None
        self._nodes: dict[str, _Node] = {}
        self._interest: dict[int, _EventInterest] = {}
        self._sent_presence: dict[int, frozenset[int]] = {}
        self._typing: dict[int, set[int]] = {}
        # Outgoing sequence numbers per event, in two generations: a sweep every
        # ``sequence_idle`` seconds drops the entries of the older one (no frame for a whole
        # period) and demotes the current one, so the hot path is one dict lookup.
        self._seq_out: dict[int, int] = {}
        self._seq_idle: dict[int, int] = {}
        self._sequence_idle = sequence_idle
        self._next_seq_sweep = clock() + sequence_idle
        # The last sequence number seen per event and origin node; an event's entry lives only
        # while this node listens to the event (a new interest starts from new baselines).
        self._seq_in: dict[int, dict[str, int]] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes, dict[str, str] | None]] = asyncio.Queue()
        self._membership: Membership | None = None
        self._relaying = False
        self._tasks: list[asyncio.Task[None]] = []
        self._node_sub: NatsSubscription | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._closing = False
        self._ready_sub: NatsSubscription | None = None
        self._probes: dict[bytes, asyncio.Future[None]] = {}
        # Bound once: counting a frame on the hot path is a method call, no lookups.
        m = metrics or Metrics()
        self._count_published = m.nats_published.inc
        self._count_publish_error = m.nats_publish_errors.inc
        self._count_delivered = m.nats_delivered.inc
        self._observe_lag = m.nats_delivery_lag.observe

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._node_sub = await self.nc.subscribe(NODE_SUBJECT, cb=self._on_node)
        self._ready_sub = await self.nc.subscribe(
            READY_SUBJECT.format(self.node_id), cb=self._on_probe
        )
        await self.nc.flush(READY_TIMEOUT)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="bus-sender"),
            asyncio.create_task(self._beat_loop(), name="bus-heartbeat"),
        ]
        self._beat()
        log.info("bus node %s joined NATS at %s", self.node_id, self._server())

    async def close(self) -> None:
        """Say goodbye (other nodes drop this node's presence at once) and stop.

        From here on the connection closing is this node's own doing, not a loss of the bus:
        :meth:`disconnected` stays quiet and resyncs nobody. Safe to call twice, and after a
        :meth:`start` that failed (then there is nobody to say goodbye to: it only cleans up).
        """
        self._closing = True
        if self._membership is not None:
            self._membership.remove_listener(self._membership_changed)
        # Interest being set up or torn down: the connection is about to be drained anyway.
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for interest in self._interest.values():
            if not interest.ready.done():
                interest.ready.set_exception(ServiceUnavailable("the event bus is closing"))
                interest.ready.exception()  # retrieved: waiters may have given up
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return  # never started (or closed already): no sender to drain the outbox
        self._node_message({"k": "bye"})
        sender, *others = tasks
        for task in others:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), 2.0)
        sender.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def relay_membership(self, membership: Membership) -> None:
        """Carry participant changes made on this node to the others' caches and sessions."""
        self._membership = membership
        membership.add_listener(self._membership_changed)

    # ---------------------------------------------------------------- Hub

    async def ready(self, subscription: Subscription) -> None:
        if self._closing:
            raise ServiceUnavailable("this node is shutting down; reconnect to another node")
        if not self.bus_up:
            raise ServiceUnavailable("the event bus is reconnecting; subscribe again shortly")
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
        if self._interest.get(event_id) is not interest:
            await self._unlisten(interest)  # everyone left while it was being set up

    async def _unlisten(self, interest: _EventInterest) -> None:
        if interest.sub is not None:
            with contextlib.suppress(Exception):
                await interest.sub.unsubscribe()

    def announce(self, subscription: Subscription) -> None:
        super().announce(subscription)
        self._local_changed(subscription.event_id)

    def unsubscribe(self, mailbox: Mailbox, event_id: int) -> bool:
        found = super().unsubscribe(mailbox, event_id)
        if found:
            self._local_changed(event_id)
        return found

    def publish(
        self,
        event_id: int,
        frame: bytes,
        *,
        position: Position | None = None,
        exclude_user: int | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        if frame.startswith(_TYPING_PREFIX):
            _set_typing(self._typing, event_id, orjson.loads(frame)["user_ids"])
            LocalHub.publish(
                self,
                event_id,
                self._merged_typing(event_id),
                exclude_user=exclude_user,
                latest=_typing_key(event_id),
            )
        else:
            LocalHub.publish(
                self, event_id, frame, position=position, exclude_user=exclude_user, latest=latest
            )
        seq = self._seq_out.get(event_id)
        if seq is None:
            seq = self._seq_idle.pop(event_id, 0)
        seq += 1
        self._seq_out[event_id] = seq
        headers = {"n": self.node_id, "s": str(seq), "t": repr(time.time())}
        if position is not None:
            headers["p"] = uuid.UUID(bytes=position.id_bytes).hex
        if exclude_user is not None:
            headers["x"] = str(exclude_user)
        self._enqueue(EVENT_SUBJECT.format(event_id), frame, headers)

    def send_to_user(
        self,
        user_id: int,
        frame: bytes,
        *,
        exclude: Mailbox | None = None,
        latest: LatestKey | None = None,
    ) -> None:
        super().send_to_user(user_id, frame, exclude=exclude, latest=latest)
        body: dict[str, Any] = {"k": "user", "u": user_id, "f": frame.decode()}
        if latest is not None:
            body["l"] = list(latest)
        self._node_message(body)

    def online(self, event_id: int) -> set[int]:
        users = self.local_online(event_id)
        for node in self._nodes.values():
            users |= node.events.get(event_id, set())
        return users

    def _present_elsewhere(self, event_id: int, user_id: int) -> bool:
        return any(user_id in n.events.get(event_id, ()) for n in self._nodes.values())

    def unchanged_since(self, event_id: int) -> float | None:
        """As in one process, but other nodes' changes arrive over NATS: known only while the
        bus is up and this node's interest in the event is confirmed, and from then on. A gap
        in a node's frames or a reconnect of the bus counts as a change (:meth:`_resync`)."""
        interest = self._interest.get(event_id)
        if not self.bus_up or interest is None or interest.ready_at is None:
            return None
        since = super().unchanged_since(event_id)
        return None if since is None else max(since, interest.ready_at)

    # ---------------------------------------------------------------- outgoing

    def _enqueue(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        if self.bus_up:
            self._outbox.put_nowait((subject, data, headers))

    def _node_message(self, body: dict[str, Any]) -> None:
        body["n"] = self.node_id
        self._enqueue(NODE_SUBJECT, orjson.dumps(body), None)

    async def _send_loop(self) -> None:
        """One task publishes, so NATS sees this node's frames in the order they were made."""
        while True:
            subject, data, headers = await self._outbox.get()
            try:
                await self.nc.publish(subject, data, headers=headers)
            except Exception as exc:
                # Subscribers elsewhere see the gap in our sequence numbers and resync.
                self._count_publish_error()
                log.warning("bus publish to %s failed: %r", subject, exc)
            else:
                self._count_published()
            finally:
                self._outbox.task_done()

    def _local_changed(self, event_id: int) -> None:
        """Tell other nodes this node's users of the event changed; drop unused interest."""
        if event_id not in self._topics:
            interest = self._drop_interest(event_id)
            if interest is not None and interest.ready.done():
                self._background(self._unlisten(interest))
        users = frozenset(self.local_online(event_id))
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
        self._seq_in.pop(event_id, None)
        for node in self._nodes.values():
            node.typing.pop(event_id, None)
        return self._interest.pop(event_id, None)

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._beat()
            self._expire()
            self._forget_idle_sequences()

    def _forget_idle_sequences(self) -> None:
        """Drop the sequence numbers of events this node sent nothing to for a whole period."""
        now = self._clock()
        if now < self._next_seq_sweep:
            return
        self._next_seq_sweep = now + self._sequence_idle
        self._seq_idle, self._seq_out = self._seq_out, {}

    def _beat(self) -> None:
        events = {str(e): sorted(u) for e, u in self._sent_presence.items()}
        self._node_message({"k": "beat", "events": events, "ttl": self.ttl})

    # ---------------------------------------------------------------- incoming

    def _on_event(self, event_id: int, msg: Msg) -> None:
        headers = msg.headers or {}
        origin = headers.get("n", "")
        if origin == self.node_id:
            return
        seq = int(headers.get("s", "0"))
        seen = self._seq_in.get(event_id)
        if seen is None:
            seen = self._seq_in[event_id] = {}
        last = seen.get(origin)
        seen[origin] = seq
        # 1 starts a new count (the sender forgot an idle event's number): a new baseline.
        if last is not None and seq != last + 1 and seq != 1:
            log.warning(
                "bus gap from %s on event %d (%d -> %d): resync", origin, event_id, last, seq
            )
            self._resync(event_id)
            return
        self._count_delivered()
        stamp = headers.get("t")
        if stamp is not None:
            self._observe_lag(max(0.0, time.time() - float(stamp)))
        exclude = headers.get("x")
        exclude_user = int(exclude) if exclude is not None else None
        if msg.data.startswith(_TYPING_PREFIX):
            node = self._node(origin)
            _set_typing(node.typing, event_id, orjson.loads(msg.data)["user_ids"])
            frame = self._merged_typing(event_id)
            LocalHub.publish(
                self, event_id, frame, exclude_user=exclude_user, latest=_typing_key(event_id)
            )
            return
        hex_id = headers.get("p")
        position = Position.of(uuid.UUID(hex=hex_id)) if hex_id else None
        LocalHub.publish(self, event_id, msg.data, position=position, exclude_user=exclude_user)

    async def _on_node(self, msg: Msg) -> None:
        try:
            body: dict[str, Any] = orjson.loads(msg.data)
            origin = str(body["n"])
            if origin == self.node_id:
                return
            kind = body["k"]
            if kind == "delta":
                self._set_presence(origin, {int(body["e"]): set(body["users"])}, full=False)
            elif kind == "beat":
                events = {int(e): set(u) for e, u in body["events"].items()}
                known = origin in self._nodes
                self._set_presence(origin, events, full=True, ttl=float(body["ttl"]))
                if not known:
                    self._beat()  # a newcomer learns our presence now, not a heartbeat later
            elif kind == "bye":
                self._forget(origin)
            elif kind == "user":
                self._count_delivered()
                key = body.get("l")
                latest = (str(key[0]), int(key[1])) if key else None
                LocalHub.send_to_user(self, int(body["u"]), str(body["f"]).encode(), latest=latest)
            elif kind == "member" and self._membership is not None:
                self._relaying = True
                try:
                    self._membership.changed(int(body["e"]), int(body["u"]), present=body["p"])
                finally:
                    self._relaying = False
        except Exception:
            log.exception("bad node message on the bus")

    def _node(self, origin: str, ttl: float | None = None) -> _Node:
        node = self._nodes.get(origin)
        expires = self._clock() + (ttl if ttl is not None else self.ttl)
        if node is None:
            node = self._nodes[origin] = _Node(expires)
        node.expires = max(node.expires, expires)
        return node

    def _set_presence(
        self, origin: str, events: dict[int, set[int]], *, full: bool, ttl: float | None = None
    ) -> None:
        node = self._node(origin, ttl)
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
        node = self._nodes.pop(origin, None)
        if node is None:
            return
        self._announce_changes({e: self.online(e) | u for e, u in node.events.items()})
        for event_id in node.typing:  # only events where some of its users were typing
            LocalHub.publish(
                self, event_id, self._merged_typing(event_id), latest=_typing_key(event_id)
            )
        for seen in self._seq_in.values():
            seen.pop(origin, None)

    def _announce_changes(self, before: dict[int, set[int]]) -> None:
        for event_id, was in before.items():
            now = self.online(event_id)
            joined, left = sorted(now - was), sorted(was - now)
            if (joined or left) and event_id in self._topics:
                self._presence_changed(event_id, joined=joined, left=left)

    def _expire(self) -> None:
        now = self._clock()
        for origin in [o for o, n in self._nodes.items() if n.expires <= now]:
            log.info("bus node %s missed its heartbeats: its presence expires", origin)
            self._forget(origin)

    def _merged_typing(self, event_id: int) -> bytes:
        users = set(self._typing.get(event_id, ()))
        for node in self._nodes.values():
            users |= node.typing.get(event_id, set())
        return frames.typing(event_id, users)

    def _membership_changed(self, event_id: int, user_id: int, present: bool) -> None:
        if not self._relaying:
            self._node_message({"k": "member", "e": event_id, "u": user_id, "p": present})

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _server(self) -> str:
        """``host:port`` of the NATS server this node is connected to (for log lines)."""
        url = self.nc.connected_url
        return url.netloc if url is not None else "(none)"

    # ---------------------------------------------------------------- readiness

    async def probe(self) -> None:
        """Publish a token on this node's private subject and wait for it to come back.

        A TCP connection to NATS is not enough: the probe passes only if the server takes the
        publish and routes it back to this node's subscription, the path every frame takes.
        """
        if not self.bus_up:
            raise ServiceUnavailable("the event bus is reconnecting to NATS")
        token = secrets.token_bytes(8)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[token] = waiter
        try:
            await self.nc.publish(READY_SUBJECT.format(self.node_id), token)
            await asyncio.wait_for(waiter, PROBE_TIMEOUT)
        except TimeoutError:
            raise ServiceUnavailable(
                f"the event bus did not echo a probe within {PROBE_TIMEOUT:g} s"
            ) from None
        finally:
            self._probes.pop(token, None)

    async def _on_probe(self, msg: Msg) -> None:
        waiter = self._probes.get(msg.data)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---------------------------------------------------------------- bus loss

    def _resync(self, event_id: int | None) -> None:
        self.changed(event_id)
        if self.on_resync is not None:
            self.on_resync(event_id)

    async def disconnected(self) -> None:
        """NATS is gone: live delivery has a hole; every local subscription must resume.

        Not when this node closed the connection itself (:meth:`close`, then a drain): its
        clients were already told to reconnect elsewhere, and a resync would be noise.
        """
        if self._closing or not self.bus_up:
            return
        self.bus_up = False
        log.warning("bus node %s lost NATS: subscriptions end with resync", self.node_id)
        self._resync(None)
        for origin in list(self._nodes):
            self._forget(origin)
        self._seq_in.clear()
        while not self._outbox.empty():  # stale: every receiver resyncs anyway
            self._outbox.get_nowait()
            self._outbox.task_done()

    async def reconnected(self) -> None:
        if self._closing:
            return
        log.info("bus node %s reconnected to NATS at %s", self.node_id, self._server())
        self._resync(None)  # anything that slipped in between is covered by the replay
        self.bus_up = True
        self._beat()


def _typing_key(event_id: int) -> LatestKey:
    """``typing`` frames carry the whole current set: a newer one supersedes a queued one."""
    return ("typing", event_id)


def _set_typing(typing: dict[int, set[int]], event_id: int, user_ids: list[int]) -> None:
    """Record who types in the event; an event nobody types in has no entry."""
    if user_ids:
        typing[event_id] = set(user_ids)
    else:
        typing.pop(event_id, None)


@contextlib.asynccontextmanager
async def open_nats_hub(
    url: str, connect_options: Mapping[str, Any] | None = None, **options: Any
) -> AsyncIterator[NatsHub]:
    """Connect to NATS (reconnecting forever) and run a :class:`NatsHub` on it.

    ``connect_options`` carry the credentials and TLS context
    (:func:`chat.bus.connect_options.nats_connect_options`); with a TLS context, a connection
    the server left in plaintext is refused (closed), at start and after every reconnect.
    """
    hub: NatsHub | None = None
    tls_required = (connect_options or {}).get("tls") is not None

    async def on_disconnect() -> None:
        if hub is not None:
            await hub.disconnected()

    async def on_reconnect() -> None:
        if tls_required and not is_encrypted(nc):
            log.error("NATS server %s did not start TLS; closing the bus connection", url)
            await nc.close()
            return
        if hub is not None:
            await hub.reconnected()

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %r", exc)

    nc = await nats.connect(
        servers=[url],
        name=f"timingle-chat-{os.getpid()}",
        connect_timeout=2,
        reconnect_time_wait=0.25,
        max_reconnect_attempts=-1,
        ping_interval=5,
        max_outstanding_pings=2,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        **(connect_options or {}),
    )
    if tls_required and not is_encrypted(nc):
        await nc.close()
        raise ConnectionError(
            f"the NATS server at {url} did not start TLS, which the CHAT_NATS_TLS* settings "
            "ask for; enable TLS on the server (a `tls {}` block makes it require TLS)"
        )
    hub = NatsHub(nc, **options)
    try:
        await hub.start()
        yield hub
    finally:
        await hub.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 2.0)
        with contextlib.suppress(Exception):
            await nc.close()
