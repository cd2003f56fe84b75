"""The client side of the chat protocol, without I/O.

A :class:`ClientSession` holds everything a client must remember across connections - the
subscriptions and the cursor of each, the requests not yet answered (the *outbox*) - and
decides what to send, when, and what to tell the application. It never touches a socket, a
task or the wall clock (``clock`` and ``rng`` are injected), the same shape as the gateway's
own :class:`chat.gateway.protocol.Session`; :class:`chat.client.ChatClient` is the asyncio
adapter that moves its frames over a ``websockets`` connection.

How an adapter drives it::

    session.connection_opened()           # the WebSocket is open (token in the header or not)
    on each text frame:  session.receive_text(text)
    when clock() >= session.next_deadline():  session.tick()
    after every input:
        write every session.frames_to_send()
        hand session.events() to the application
        resolve each of session.completions() (a request's answer, or its error)
    when the socket ends:  plan = session.connection_lost(close_code, reason)
        then wait plan.delay (getting a new token first if plan.needs_token) and reconnect

The algorithm, which docs/clients.md spells out for other languages:

- **Resume.** Each subscription keeps the cursor of the last ``message`` received for it (or
  of ``subscribed``); after a reconnect it is subscribed again with ``since`` = that cursor.
  An ``ack``'s cursor is *not* taken: an ack may overtake earlier messages of other senders.
  ``unsubscribed`` with reason ``resync`` resubscribes at once, the same way.
- **Outbox.** Every request waits in the outbox until it is answered. When the connection
  drops, what was written but not answered is written again on the next connection: a
  ``send`` with its original ``client_msg_id`` (the server answers a retry with the original
  ``ack``), edits, deletions, reactions, reads and history requests as they are (each is
  idempotent). Only ``typing``, ``ping`` and ``refresh`` fail with :class:`ConnectionLost`:
  stale by then (a reconnect authenticates with the newest token anyway).
- **Back-off.** ``rate_limited`` retries after ``retry_after_ms``; ``unavailable`` and
  ``internal_error`` after a jittered exponential back-off per request. Writes are paced by a
  token bucket built from ``welcome.limits``, and a write waiting for its retry holds back the
  writes queued after it, so messages keep the order in which they were sent.
- **No duplicates.** ``message`` frames whose ``message_id`` was already delivered for the
  event are dropped (a bounded memory of recent ids per event).
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

from chat.client.backoff import DEFAULT_BACKOFF, Backoff
from chat.client.errors import (
    AuthenticationFailed,
    ClientClosed,
    ConnectionLost,
    FrameTooLarge,
    RequestFailed,
)
from chat.client.events import Disconnected, Event, UnknownFrame, parse_frame
from chat.errors import ChatError
from chat.gateway.codes import CloseCode, ErrorCode
from chat.gateway.server_frames import (
    ErrorFrame,
    MessagePosted,
    ServerFrame,
    ServerPing,
    Subscribed,
    Unsubscribed,
    Welcome,
)
from chat.ratelimit import TokenBucket

WRITES = frozenset({"send", "edit", "delete", "react", "unreact"})
"""Frames that draw on the server's per-connection write rate."""
NOT_RETRIED = frozenset({"typing", "ping", "refresh"})
"""Requests that fail on a dropped connection instead of being written again."""
RETRYABLE_ERRORS = frozenset({ErrorCode.UNAVAILABLE.value, ErrorCode.INTERNAL_ERROR.value})
RECENT_IDS_PER_EVENT = 4096
"""How many delivered message ids per event are remembered to drop a repeated one."""
_DEFAULT_MAX_FRAME_BYTES = 65536


class Phase(IntEnum):
    """Where the session is: between connections, authenticating, open, or closed for good."""

    DISCONNECTED = 0
    AUTHENTICATING = 1
    OPEN = 2
    CLOSED = 3


@dataclass(slots=True)
class _Request:
    handle: int
    frame: dict[str, Any]
    attempts: int = 0
    ready_at: float = 0.0
    sent_as: str | None = None

    @property
    def kind(self) -> str:
        return str(self.frame["type"])


@dataclass(slots=True)
class _Subscription:
    cursor: str | None
    live: bool = False
    recent: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict)


@dataclass(frozen=True, slots=True)
class Completion:
    """The outcome of the request ``handle``: its answer, or the error it failed with."""

    handle: int
    answer: ServerFrame | UnknownFrame | None = None
    error: ChatError | None = None


@dataclass(frozen=True, slots=True)
class ReconnectPlan:
    """What to do after a connection ended: wait ``delay`` seconds (None: stop), first getting
    a new token when ``needs_token``."""

    delay: float | None
    needs_token: bool = False


class ClientSession:
    """The protocol state of one client across any number of connections."""

    def __init__(
        self,
        *,
        auth_by_hello: bool,
        token: str,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.auth_by_hello = auth_by_hello
        self.token = token
        self._clock = clock
        self._rng = rng
        self._backoff = backoff
        self.phase = Phase.DISCONNECTED
        self.welcome: Welcome | None = None
        self.reconnects = 0
        self._failed_connects = 0
        self._handles = itertools.count(1)
        self._frame_ids = itertools.count(1)
        self._outbox: dict[int, _Request] = {}
        self._in_flight: dict[str, _Request] = {}
        self._subscriptions: dict[int, _Subscription] = {}
        self._bucket: TokenBucket | None = None
        self._frames: list[str] = []
        self._events: list[Event] = []
        self._completions: list[Completion] = []
        self._auth_refused = False

    # ------------------------------------------------------------------ outputs

    def frames_to_send(self) -> list[str]:
        out, self._frames = self._frames, []
        return out

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def completions(self) -> list[Completion]:
        out, self._completions = self._completions, []
        return out

    def next_deadline(self) -> float:
        """When :meth:`tick` has a delayed request to release (``inf``: nothing waits)."""
        if self.phase is not Phase.OPEN:
            return math.inf
        now = self._clock()
        waiting = [r.ready_at for r in self._outbox.values() if r.sent_as is None]
        return min((at for at in waiting if at > now), default=math.inf)

    def cursor(self, event_id: int) -> str | None:
        """The resume position of a subscription (None: not subscribed, or nothing seen)."""
        sub = self._subscriptions.get(event_id)
        return None if sub is None else sub.cursor

    @property
    def subscriptions(self) -> frozenset[int]:
        return frozenset(self._subscriptions)

    def pending(self) -> list[dict[str, Any]]:
        """The frames of the requests not answered yet, oldest first (the outbox)."""
        return [dict(r.frame) for r in self._outbox.values()]

    # ------------------------------------------------------------------ requests

    def request(self, frame: dict[str, Any]) -> int:
        """Queue a request (a client frame without ``id``); returns its handle."""
        if self.phase is Phase.CLOSED:
            raise ClientClosed("the client is closed")
        handle = next(self._handles)
        self._outbox[handle] = _Request(handle, dict(frame))
        self._pump()
        return handle

    def subscribe(self, event_id: int, since: str | None = None) -> int:
        """Subscribe (and stay subscribed across reconnects), replaying after ``since``.

        Subscribing again to an event already subscribed changes nothing: the answer is a
        ``subscribed`` with the subscription's current cursor."""
        current = self._subscriptions.get(event_id)
        if current is not None:
            handle = next(self._handles)
            answer = Subscribed(type="subscribed", event_id=event_id, cursor=current.cursor)
            self._completions.append(Completion(handle, answer=answer))
            return handle
        self._subscriptions[event_id] = _Subscription(since)
        return self.request({"type": "subscribe", "event_id": event_id})

    def unsubscribe(self, event_id: int) -> int:
        """End a subscription. Without a connection, or before its ``subscribe`` was written,
        the server holds nothing to end: the answer is given here, with no frame."""
        sub = self._subscriptions.pop(event_id, None)
        subscribing = any(
            r.kind == "subscribe" and r.frame["event_id"] == event_id and r.sent_as is not None
            for r in self._outbox.values()
        )
        if self.phase is not Phase.OPEN or (sub is not None and not sub.live and not subscribing):
            handle = next(self._handles)
            done = Unsubscribed(type="unsubscribed", event_id=event_id, reason="requested")
            self._completions.append(Completion(handle, answer=done))
            return handle
        return self.request({"type": "unsubscribe", "event_id": event_id})

    def send(self, event_id: int, text: str = "", **fields: Any) -> tuple[int, str]:
        """Queue a message; returns its handle and its ``client_msg_id`` (generated unless
        given), which every retry keeps."""
        client_msg_id = str(fields.pop("client_msg_id", None) or uuid.uuid4().hex)
        frame = {"type": "send", "event_id": event_id, "client_msg_id": client_msg_id}
        frame |= {"text": text} | {k: v for k, v in fields.items() if v is not None}
        return self.request(frame), client_msg_id

    def abandon(self, handle: int) -> None:
        """Forget a request nobody waits for. One already written may still take effect."""
        self._outbox.pop(handle, None)

    # ------------------------------------------------------------------ connection events

    def connection_opened(self) -> None:
        """The WebSocket is open; with ``auth_by_hello`` the ``hello`` goes first."""
        self.phase = Phase.AUTHENTICATING
        if self.auth_by_hello:
            self._write({"type": "hello", "token": self.token}, frame_id="hello")

    def new_token(self, token: str) -> None:
        """A fresh token for the next connection (from the application's token provider)."""
        self.token = token
        self._auth_refused = False

    def receive_text(self, text: str | bytes) -> None:
        frame = parse_frame(text)
        if isinstance(frame, UnknownFrame):
            # The answer to a request may be a frame this version does not know (a newer
            # server's): it still answers the request.
            raw = frame.raw if isinstance(frame.raw, dict) else {}
            answered = self._in_flight.pop(str(raw.get("ref")), None) if "ref" in raw else None
            if answered is not None:
                self._complete(answered, frame)
            else:
                self._events.append(frame)
            self._pump()
            return
        ref = getattr(frame, "ref", None)
        request = self._in_flight.pop(str(ref), None) if ref is not None else None
        if isinstance(frame, Welcome):
            self._opened(frame)
        elif isinstance(frame, ServerPing):
            self._write({"type": "pong"})
        elif isinstance(frame, ErrorFrame) and frame.code == ErrorCode.UNAUTHORIZED:
            self._auth_refused = True
        if request is not None:
            self._answered(request, frame)
        elif isinstance(frame, MessagePosted):
            if self._first_delivery(frame):
                self._events.append(frame)
        elif isinstance(frame, Unsubscribed):
            self._subscription_ended(frame)
        elif not isinstance(frame, ServerPing):
            self._events.append(frame)
        self._pump()

    def tick(self) -> None:
        self._pump()

    def connection_lost(self, close_code: int | None, reason: str = "") -> ReconnectPlan:
        """The socket ended. Unanswered requests go back to the outbox (``typing`` and
        ``ping`` fail); returns when and how to reconnect."""
        was_open = self.phase is Phase.OPEN
        if self.phase is not Phase.CLOSED:
            self.phase = Phase.DISCONNECTED
        for request in list(self._in_flight.values()):
            request.sent_as = None
            if request.kind in NOT_RETRIED:
                self._fail(request, ConnectionLost(f"the connection dropped ({close_code})"))
            elif request.kind == "unsubscribe":
                # Not subscribed on any new connection: the unsubscription holds.
                self._complete(
                    request,
                    Unsubscribed(
                        type="unsubscribed",
                        event_id=int(request.frame["event_id"]),
                        reason="requested",
                    ),
                )
        self._in_flight.clear()
        for sub in self._subscriptions.values():
            sub.live = False
        self._bucket = None
        if was_open:
            self.reconnects += 1
            self._failed_connects = 0
        else:
            self._failed_connects += 1
        plan = self._plan(close_code)
        self._events.append(Disconnected(close_code, reason, plan.delay))
        return plan

    def close(self) -> None:
        """Stop for good: every request still waiting fails with :class:`ClientClosed`."""
        self.phase = Phase.CLOSED
        for request in list(self._outbox.values()):
            self._fail(request, ClientClosed("the client was closed"))
        self._in_flight.clear()

    # ------------------------------------------------------------------ internals

    def _plan(self, close_code: int | None) -> ReconnectPlan:
        if self.phase is Phase.CLOSED:
            return ReconnectPlan(None)
        if self._auth_refused or close_code == CloseCode.UNAUTHORIZED:
            return ReconnectPlan(self._backoff.delay(self._failed_connects, self._rng), True)
        return ReconnectPlan(self._backoff.delay(self._failed_connects, self._rng))

    def stop_unauthenticated(self) -> None:
        """No new token can be had: fail everything with :class:`AuthenticationFailed`."""
        self.phase = Phase.CLOSED
        for request in list(self._outbox.values()):
            self._fail(request, AuthenticationFailed("the server refused the token"))
        self._in_flight.clear()

    def _opened(self, welcome: Welcome) -> None:
        self.phase = Phase.OPEN
        self.welcome = welcome
        self._auth_refused = False
        limits = welcome.limits
        self._bucket = TokenBucket(limits.send_rate_per_second, limits.send_burst, self._clock())
        # Resubscribe first, then the outbox in its order (a subscribe request still in the
        # outbox is made again there, with the cursor current when it is written).
        queued = {int(r.frame["event_id"]) for r in self._outbox.values() if r.kind == "subscribe"}
        resubscribe: dict[int, _Request] = {}
        for event_id in self._subscriptions.keys() - queued:
            handle = next(self._handles)
            resubscribe[handle] = _Request(handle, {"type": "subscribe", "event_id": event_id})
        self._outbox = resubscribe | self._outbox

    def _pump(self) -> None:
        """Write what may be written now, in outbox order."""
        if self.phase is not Phase.OPEN:
            return
        now = self._clock()
        writes_blocked = False
        for request in list(self._outbox.values()):
            if request.sent_as is not None:
                continue
            is_write = request.kind in WRITES
            if request.ready_at > now or (is_write and writes_blocked):
                writes_blocked = writes_blocked or is_write
                continue
            if is_write:
                assert self._bucket is not None
                wait_ms = self._bucket.take(now)
                if wait_ms:
                    request.ready_at = now + wait_ms / 1000
                    writes_blocked = True
                    continue
            self._send_request(request)

    def _send_request(self, request: _Request) -> None:
        frame = dict(request.frame)
        if request.kind == "subscribe":
            sub = self._subscriptions.get(int(frame["event_id"]))
            if sub is None:  # unsubscribed while the request waited
                refused = ErrorFrame(
                    type="error",
                    code=ErrorCode.NOT_SUBSCRIBED.value,
                    message="unsubscribed before the subscription was made",
                )
                self._fail(request, RequestFailed(refused))
                return
            if sub.cursor is not None:
                frame["since"] = sub.cursor
        frame_id = f"c{next(self._frame_ids)}"
        limit = self.welcome.limits.max_frame_bytes if self.welcome else _DEFAULT_MAX_FRAME_BYTES
        if not self._write(frame, frame_id=frame_id, limit=limit):
            self._fail(request, FrameTooLarge(f"the {request.kind} frame exceeds {limit} bytes"))
            return
        request.sent_as = frame_id
        request.attempts += 1
        self._in_flight[frame_id] = request

    def _write(self, frame: dict[str, Any], *, frame_id: str | None = None, limit: int = 0) -> bool:
        if frame_id is not None:
            frame = {**frame, "id": frame_id}
        text = orjson.dumps(frame).decode()
        if limit and len(text.encode()) > limit:
            return False
        self._frames.append(text)
        return True

    def _answered(self, request: _Request, frame: ServerFrame) -> None:
        if not isinstance(frame, ErrorFrame):
            if isinstance(frame, Subscribed):
                sub = self._subscriptions.get(frame.event_id)
                if sub is not None:
                    sub.live = True
                    sub.cursor = frame.cursor if frame.cursor is not None else sub.cursor
            self._complete(request, frame)
            return
        now = self._clock()
        request.sent_as = None
        if frame.code == ErrorCode.RATE_LIMITED:
            request.ready_at = now + (frame.retry_after_ms or 0) / 1000 * (1 + 0.1 * self._rng())
        elif frame.code in RETRYABLE_ERRORS and request.kind not in NOT_RETRIED:
            request.ready_at = now + self._backoff.delay(request.attempts - 1, self._rng)
        else:
            if request.kind == "subscribe":
                self._subscriptions.pop(int(request.frame["event_id"]), None)
            self._fail(request, RequestFailed(frame))

    def _first_delivery(self, frame: MessagePosted) -> bool:
        sub = self._subscriptions.get(frame.event_id)
        if sub is None:
            return True
        message_id = frame.message.message_id
        if message_id in sub.recent:
            return False
        sub.recent[message_id] = None
        if len(sub.recent) > RECENT_IDS_PER_EVENT:
            sub.recent.popitem(last=False)
        sub.cursor = frame.message.cursor
        return True

    def _subscription_ended(self, frame: Unsubscribed) -> None:
        if frame.reason == "resync" and frame.event_id in self._subscriptions:
            self._subscriptions[frame.event_id].live = False
            self.request({"type": "subscribe", "event_id": frame.event_id})
        else:
            self._subscriptions.pop(frame.event_id, None)
        self._events.append(frame)

    def _complete(self, request: _Request, answer: ServerFrame | UnknownFrame | None) -> None:
        self._outbox.pop(request.handle, None)
        self._completions.append(Completion(request.handle, answer=answer))

    def _fail(self, request: _Request, error: ChatError) -> None:
        self._outbox.pop(request.handle, None)
        self._completions.append(Completion(request.handle, error=error))
