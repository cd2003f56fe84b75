"""A client that does exactly what docs/protocol.md tells a client to do, and records its view.

It authenticates with the upgrade header and waits for ``welcome``; subscribes to its events
with ``since`` = the cursor of the last message it saw (none the first time); on
``unsubscribed resync``, a close or a dropped connection it reconnects (to any of the nodes)
and resubscribes the same way; it resends every unacknowledged ``send`` with its original
``client_msg_id``; it backs off on ``unavailable`` and ``rate_limited``; it answers ``ping``.

What it saw is kept for verification (:mod:`bench.load.views`): per event, every ``message``
id in arrival order from its first ``subscribed`` on, the positions where it was removed from
the event and any frame of the event that arrived while it was not subscribed, and its sends
with their acks. :meth:`ResumingClient.drop` cuts the connection abruptly (no close frame), as
a phone losing its network does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

log = logging.getLogger(__name__)

BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds to wait before retrying after ``unavailable`` or a failed connect (then the last)."""
CONNECT_TIMEOUT = 10.0
JOURNAL_ENTRIES = 20_000


@dataclass
class EventView:
    """One event as this client saw it."""

    start: str | None = None
    """The cursor of its first ``subscribed``: it owes the client every message after it."""
    started: bool = False
    cursor: str | None = None
    received: list[str] = field(default_factory=list)
    live: bool = False
    member: bool = True
    removed_at: list[int] = field(default_factory=list)
    """Indexes into ``received`` where the client was removed from the event."""
    stray: list[str] = field(default_factory=list)
    """Frames of the event that came while the client was not subscribed (after a removal)."""


@dataclass
class Sent:
    event_id: int
    client_msg_id: str
    text: str
    seq: int
    message_id: str | None = None
    refused: str | None = None
    """Why the service refused it for good (``conflict``, ``not_found``), if it did."""


class ResumingClient:
    """One user, one connection at a time, to whichever of ``urls`` it picks."""

    def __init__(
        self,
        urls: Sequence[str],
        user_id: int,
        token: str,
        events: Sequence[int],
        *,
        rng: random.Random,
        tag: str = "c",
    ) -> None:
        self.urls = [u.replace("http://", "ws://", 1) + "/v1/ws" for u in urls]
        self.user_id = user_id
        self.token = token
        self.rng = rng
        self.tag = tag
        self.views = {event_id: EventView() for event_id in events}
        self.sent: dict[str, Sent] = {}
        self.unacked: dict[str, Sent] = {}
        self.errors: dict[str, int] = {}
        self.connects = 0
        self.drops = 0
        self.url: str | None = None
        """The node it is connected to now (None while it is not)."""
        self._seq = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._welcomed = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._resend: set[asyncio.Task[None]] = set()
        self._requests = itertools.count(1)
        self.on_frame: Callable[[dict[str, Any]], None] | None = None
        self.journal: list[tuple[Any, ...]] = []

    # ------------------------------------------------------------------ driving

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"client-{self.tag}")

    async def stop(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        for task in [self._task, *self._resend]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._resend] if t is not None), return_exceptions=True
        )

    def drop(self) -> None:
        """Lose the connection abruptly, as a phone going through a tunnel does."""
        ws = self._ws
        if ws is not None:
            self.drops += 1
            self._note("drop", None)
            ws.transport.abort()

    def send(self, event_id: int) -> str | None:
        """Queue a new message to the event; its client_msg_id.

        One send is in flight at a time (the next goes when the previous was answered), so a
        client's messages are stored in the order it wrote them, retries and all.
        """
        view = self.views[event_id]
        if not view.member:
            return None
        seq = next(self._seq)
        cmid = f"{self.tag}-{self.user_id}-{seq}"
        sent = Sent(event_id, cmid, f"{cmid} says hi", seq)
        self.sent[cmid] = sent
        self.unacked[cmid] = sent
        if len(self.unacked) == 1:
            self._transmit(sent)
        return cmid

    def _next(self) -> None:
        """The send in flight was answered: the next one goes."""
        if self.unacked:
            self._transmit(next(iter(self.unacked.values())))

    def readded(self, event_id: int) -> None:
        """The user was added back to the event (told out of band): subscribe again."""
        view = self.views[event_id]
        view.member = True
        self._subscribe(event_id)

    def settled(self) -> bool:
        """Every send answered and every member event subscribed live (and connected)."""
        return (
            self._ws is not None
            and self._welcomed.is_set()
            and not self.unacked
            and all(v.live or not v.member for v in self.views.values())
        )

    # ------------------------------------------------------------------ the connection

    async def _run(self) -> None:
        for attempt in itertools.count():
            if self._stopping:
                return
            url = self.rng.choice(self.urls)
            try:
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=CONNECT_TIMEOUT,
                    ping_interval=None,
                    max_size=2**22,
                ) as ws:
                    self.connects += 1
                    self.url = url
                    self._ws = ws
                    await self._session(ws)
                attempt = -1
            except (OSError, TimeoutError, WebSocketException, InvalidStatus) as exc:
                self._count(f"connect_{type(exc).__name__}")
            finally:
                self._ws = None
                self.url = None
                self._welcomed.clear()
                for view in self.views.values():
                    view.live = False
            if not self._stopping:
                await asyncio.sleep(BACKOFF[min(max(attempt, 0), len(BACKOFF) - 1)])

    async def _session(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._received(orjson.loads(raw))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            self._count(f"close_{code}")

    def _note(self, *entry: Any) -> None:
        """Keep what happened on the connection (bounded), to explain a failed check."""
        if len(self.journal) < JOURNAL_ENTRIES:
            self.journal.append((round(asyncio.get_running_loop().time(), 3), *entry))

    def excerpt(self, event_id: int, message_id: str, around: int = 6) -> list[tuple[Any, ...]]:
        """The journal entries of the event around the first mention of ``message_id``."""
        mine = [e for e in self.journal if len(e) < 3 or e[2] in (event_id, None)]
        hits = [i for i, e in enumerate(mine) if message_id in e]
        if not hits:
            return mine[-around:]
        return mine[max(0, hits[0] - around) : hits[-1] + around]

    def _received(self, frame: dict[str, Any]) -> None:
        if self.on_frame is not None:
            self.on_frame(frame)
        kind = frame.get("type")
        if kind == "message":
            self._note("message", frame["event_id"], frame["message"]["message_id"])
        elif kind in ("subscribed", "unsubscribed", "error", "welcome", "ack"):
            detail = frame.get("reason") or frame.get("code") or frame.get("message_id")
            self._note(kind, frame.get("event_id"), detail, frame.get("cursor"), frame.get("ref"))
        if kind == "message":
            self._message(frame)
        elif kind == "welcome":
            self._welcomed.set()
            for event_id, view in self.views.items():
                if view.member:
                    self._subscribe(event_id)
            self._next()
        elif kind == "subscribed":
            view = self.views[frame["event_id"]]
            if not view.started:
                view.started, view.start = True, frame["cursor"]
            view.cursor = frame["cursor"]
            view.live = True
        elif kind == "unsubscribed":
            self._unsubscribed(frame)
        elif kind == "ack":
            self._acked(frame)
        elif kind == "error":
            self._error(frame)
        elif kind == "ping":
            self._write({"type": "pong"})
        elif kind in ("presence", "typing", "unread", "reaction", "message_updated"):
            self._check_subscribed(frame)

    def _message(self, frame: dict[str, Any]) -> None:
        event_id = frame["event_id"]
        view = self.views.get(event_id)
        if view is None or not self._check_subscribed(frame):
            return
        message = frame["message"]
        view.received.append(message["message_id"])
        view.cursor = message["cursor"]

    def _check_subscribed(self, frame: dict[str, Any]) -> bool:
        """A frame of an event this client is not subscribed to is recorded as stray."""
        view = self.views.get(frame.get("event_id", -1))
        if view is None:
            return False
        if not view.member:
            view.stray.append(str(frame.get("type")))
            return False
        return True

    def _unsubscribed(self, frame: dict[str, Any]) -> None:
        event_id = frame["event_id"]
        view = self.views[event_id]
        view.live = False
        if frame["reason"] == "removed":
            view.member = False
            view.removed_at.append(len(view.received))
        elif frame["reason"] == "resync":
            self._subscribe(event_id)

    def _acked(self, frame: dict[str, Any]) -> None:
        sent = self.unacked.pop(frame["client_msg_id"], None) or self.sent.get(
            frame["client_msg_id"]
        )
        if sent is not None:
            if sent.message_id is not None and sent.message_id != frame["message_id"]:
                self._count("ack_changed_id")
            sent.message_id = frame["message_id"]
        self._next()

    def _error(self, frame: dict[str, Any]) -> None:
        code = str(frame.get("code"))
        self._count(code)
        ref = str(frame.get("ref", ""))
        if ref.startswith("sub:"):
            event_id = int(ref.split(":")[1])
            if code == "not_found":
                self.views[event_id].member = False
            elif code != "already_subscribed":
                self._later(self._subscribe, event_id)
            return
        sent = self.unacked.get(ref)
        if sent is None:
            return
        if code in ("unavailable", "rate_limited", "internal_error"):
            delay = frame.get("retry_after_ms", 0) / 1000
            self._later(self._transmit, sent, at_least=delay)
        else:  # refused for good: a removed member, a canceled event
            sent.refused = code
            del self.unacked[ref]
            self._next()

    # ------------------------------------------------------------------ writing

    def _subscribe(self, event_id: int) -> None:
        view = self.views[event_id]
        if not view.member or view.live:
            return
        frame: dict[str, Any] = {
            "type": "subscribe",
            "id": f"sub:{event_id}:{next(self._requests)}",
            "event_id": event_id,
        }
        if view.cursor is not None:
            frame["since"] = view.cursor
        self._note("subscribe", event_id, view.cursor, self.url)
        self._write(frame)

    def _transmit(self, sent: Sent) -> None:
        if sent.client_msg_id not in self.unacked:
            return
        self._write(
            {
                "type": "send",
                "id": sent.client_msg_id,
                "event_id": sent.event_id,
                "client_msg_id": sent.client_msg_id,
                "text": sent.text,
            }
        )

    def _write(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or (not self._welcomed.is_set() and frame["type"] != "pong"):
            return  # sent again after the next welcome
        task = asyncio.get_running_loop().create_task(self._write_now(ws, frame))
        self._resend.add(task)
        task.add_done_callback(self._resend.discard)

    async def _write_now(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.send(orjson.dumps(frame).decode())

    def _later(self, action: Callable[..., None], arg: Any, *, at_least: float = 0.0) -> None:
        delay = max(at_least, self.rng.choice(BACKOFF[:3]))

        async def run() -> None:
            await asyncio.sleep(delay)
            action(arg)

        task = asyncio.get_running_loop().create_task(run())
        self._resend.add(task)
        task.add_done_callback(self._resend.discard)

    def _count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
