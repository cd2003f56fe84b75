"""The reference Python client: :class:`ChatClient`, asyncio on the ``websockets`` library.

It only moves frames: every protocol decision - what to resend, when to retry, where to
resume - is made by :class:`chat.client.session.ClientSession`. The adapter opens connections
(reconnecting with jittered back-off for as long as the client lives), writes the session's
frames in order from one writer task, feeds it what arrives, resolves the futures of awaiting
requests and queues events for :meth:`ChatClient.events`.

Usage::

    async with ChatClient("ws://localhost:8000/v1/ws", token) as chat:
        await chat.subscribe(event_id)
        ack = await chat.send(event_id, "hello")       # returns once the message is durable
        async for event in chat.events():              # typed frames, Disconnected, ...
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from chat.client.backoff import DEFAULT_BACKOFF, Backoff
from chat.client.errors import ClientClosed, ConnectionLost, RequestFailed
from chat.client.events import Event, UnknownFrame
from chat.client.session import ClientSession, Phase
from chat.gateway.codes import ErrorCode
from chat.gateway.server_frames import (
    Ack,
    HistoryPage,
    Ok,
    ServerFrame,
    ServerPong,
    Subscribed,
    UnreadCount,
    Unsubscribed,
    Welcome,
)

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
"""Returns a fresh access token; called when the server refuses the current one."""

_Answer = TypeVar("_Answer", bound=ServerFrame)
_ABNORMAL_CLOSURE = 1006


class ChatClient:
    """A chat connection that survives the network: see the module docstring and
    docs/clients.md. ``auth="header"`` sends the token in the upgrade request, ``"hello"`` in
    the first frame. ``events_buffer`` bounds the events not yet taken from :meth:`events`;
    while it is full the client stops reading (and a server that finds it too slow closes the
    connection, after which the client resumes from its cursors)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        token_provider: TokenProvider | None = None,
        auth: Literal["header", "hello"] = "header",
        backoff: Backoff = DEFAULT_BACKOFF,
        events_buffer: int = 1000,
        open_timeout: float = 10.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self._token_provider = token_provider
        self._open_timeout = open_timeout
        self._loop = asyncio.get_running_loop()
        self.session = ClientSession(
            auth_by_hello=auth == "hello",
            token=token,
            clock=self._loop.time,
            rng=rng,
            backoff=backoff,
        )
        self._events: deque[Event] = deque()
        self._events_buffer = events_buffer
        self._event_added = asyncio.Event()
        self._event_taken = asyncio.Event()
        self._consuming = False
        self._waiters: dict[int, asyncio.Future[ServerFrame | UnknownFrame | None]] = {}
        self._outgoing: asyncio.Queue[str] | None = None
        self._ws: ClientConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ChatClient:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"chat client {self.url}")

    async def close(self) -> None:
        """Close the connection and stop; requests still waiting fail with ClientClosed."""
        self.session.close()
        self._dispatch()
        self._wake.set()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._event_added.set()

    async def wait_connected(self) -> Welcome:
        """The ``welcome`` of the current connection, once there is one."""
        while True:
            await self._connected.wait()
            welcome = self.session.welcome
            if self.session.phase is Phase.OPEN and welcome is not None:
                return welcome
            if self.session.phase is Phase.CLOSED:
                raise ClientClosed("the client is closed")
            self._connected.clear()

    @property
    def connected(self) -> bool:
        return self.session.phase is Phase.OPEN

    def events(self) -> AsyncIterator[Event]:
        """Pushed frames (``message``, ``presence``, ...), ``welcome`` on every connection,
        :class:`Disconnected`, and :class:`UnknownFrame`; ends when the client is closed.

        Events are kept only once this has been called: a client used just to send keeps
        none (and so never stops reading for want of a consumer)."""
        self._consuming = True
        return self._take_events()

    async def _take_events(self) -> AsyncIterator[Event]:
        while True:
            while self._events:
                event = self._events.popleft()
                self._event_taken.set()
                yield event
            if self.session.phase is Phase.CLOSED and (self._task is None or self._task.done()):
                return
            self._event_added.clear()
            await self._event_added.wait()

    async def refresh_token(self, token: str) -> None:
        """Use ``token`` from now on: on the live session with a ``refresh`` frame, or - when
        the server answers ``unknown_type`` (it has no in-session refresh) - by reconnecting
        with it (subscriptions resume from their cursors, unanswered requests are written
        again). Without a connection, the next one uses it."""
        self.session.new_token(token)
        if not self.connected:
            return
        try:
            await self.request({"type": "refresh", "token": token})
        except ConnectionLost:
            return  # the reconnect authenticates with the new token
        except RequestFailed as refused:
            if refused.error_code != ErrorCode.UNKNOWN_TYPE:
                raise
            if self._ws is not None:
                await self._ws.close(1000, "token refresh")

    # ------------------------------------------------------------------ requests

    async def request(self, frame: dict[str, Any]) -> ServerFrame | UnknownFrame | None:
        """Any client frame (without ``id``); its answer (an :class:`UnknownFrame` when this
        version does not know the answer's type). Raises RequestFailed on an error answer that
        retrying cannot fix."""
        return await self._await(self.session.request(frame))

    async def subscribe(self, event_id: int, since: str | None = None) -> Subscribed:
        return self._expect(Subscribed, await self._await(self.session.subscribe(event_id, since)))

    async def unsubscribe(self, event_id: int) -> Unsubscribed:
        return self._expect(Unsubscribed, await self._await(self.session.unsubscribe(event_id)))

    async def send(
        self,
        event_id: int,
        text: str = "",
        *,
        client_msg_id: str | None = None,
        message_type: str | None = None,
        attachments: list[str] | None = None,
        reply_to: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Ack:
        """Post a message; returns its ``ack`` once it is durable, however many connections
        that takes. Cancelling the wait withdraws the message if it was not written yet; one
        already written may still be stored (a later send with the same ``client_msg_id``
        returns its ack)."""
        handle, _ = self.session.send(
            event_id,
            text,
            client_msg_id=client_msg_id,
            message_type=message_type,
            attachments=attachments,
            reply_to=reply_to,
            metadata=metadata,
        )
        return self._expect(Ack, await self._await(handle))

    async def edit(self, event_id: int, message_id: str, text: str) -> Ok:
        frame = {"type": "edit", "event_id": event_id, "message_id": message_id, "text": text}
        return self._expect(Ok, await self.request(frame))

    async def delete(self, event_id: int, message_id: str) -> Ok:
        frame = {"type": "delete", "event_id": event_id, "message_id": message_id}
        return self._expect(Ok, await self.request(frame))

    async def react(self, event_id: int, message_id: str, emoji: str) -> Ok:
        frame = {"type": "react", "event_id": event_id, "message_id": message_id, "emoji": emoji}
        return self._expect(Ok, await self.request(frame))

    async def unreact(self, event_id: int, message_id: str, emoji: str) -> Ok:
        frame = {"type": "unreact", "event_id": event_id, "message_id": message_id}
        return self._expect(Ok, await self.request(frame | {"emoji": emoji}))

    async def typing(self, event_id: int, state: Literal["start", "stop"]) -> Ok:
        frame = {"type": "typing", "event_id": event_id, "state": state}
        return self._expect(Ok, await self.request(frame))

    async def read(self, event_id: int, message_id: str) -> UnreadCount:
        frame = {"type": "read", "event_id": event_id, "message_id": message_id}
        return self._expect(UnreadCount, await self.request(frame))

    async def history(
        self,
        event_id: int,
        *,
        before: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        frame: dict[str, Any] = {"type": "history", "event_id": event_id}
        frame |= {k: v for k, v in (("before", before), ("after", after), ("limit", limit)) if v}
        return self._expect(HistoryPage, await self.request(frame))

    async def ping(self) -> ServerPong:
        return self._expect(ServerPong, await self.request({"type": "ping"}))

    @staticmethod
    def _expect(kind: type[_Answer], answer: ServerFrame | UnknownFrame | None) -> _Answer:
        if not isinstance(answer, kind):
            raise TypeError(f"expected a {kind.__name__} answer, got {answer!r}")
        return answer

    async def _await(self, handle: int) -> ServerFrame | UnknownFrame | None:
        future: asyncio.Future[ServerFrame | UnknownFrame | None] = self._loop.create_future()
        self._waiters[handle] = future
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            self.session.abandon(handle)
            raise
        finally:
            self._waiters.pop(handle, None)

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        while self.session.phase is not Phase.CLOSED:
            close_code, reason = await self._connect_once()
            plan = self.session.connection_lost(close_code, reason)
            self._connected.set()  # wakes wait_connected() to look again
            self._dispatch()
            if plan.delay is None:
                break
            if plan.needs_token:
                if self._token_provider is None:
                    self.session.stop_unauthenticated()
                    self._dispatch()
                    break
                try:
                    self.session.new_token(await self._token_provider())
                except Exception:
                    log.exception("the token provider failed; retrying after the back-off")
            log.info(
                "chat connection ended (%s %s); reconnecting in %.2f s",
                close_code,
                reason,
                plan.delay,
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), plan.delay)
        self._event_added.set()

    async def _connect_once(self) -> tuple[int | None, str]:
        headers = (
            {} if self.session.auth_by_hello else {"Authorization": f"Bearer {self.session.token}"}
        )
        try:
            async with connect(
                self.url, additional_headers=headers, open_timeout=self._open_timeout
            ) as ws:
                self._ws = ws
                outgoing: asyncio.Queue[str] = asyncio.Queue()
                self._outgoing = outgoing
                writer = asyncio.create_task(self._write(ws, outgoing))
                try:
                    self.session.connection_opened()
                    self._dispatch()
                    await self._read(ws)
                finally:
                    self._outgoing = None
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writer
            return ws.close_code, ws.close_reason or ""
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.info("cannot connect to %s: %s", self.url, exc)
            return None, str(exc)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else _ABNORMAL_CLOSURE
            return code, exc.rcvd.reason if exc.rcvd is not None else ""
        except Exception as exc:  # a bug must not end the reconnect loop silently
            log.exception("the chat connection failed unexpectedly")
            return None, repr(exc)
        finally:
            self._ws = None

    async def _read(self, ws: ClientConnection) -> None:
        async for text in ws:
            self.session.receive_text(text)
            if self.session.phase is Phase.OPEN:
                self._connected.set()
            self._dispatch()
            while len(self._events) >= self._events_buffer:
                self._event_taken.clear()
                await self._event_taken.wait()

    @staticmethod
    async def _write(ws: ClientConnection, outgoing: asyncio.Queue[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await outgoing.get())

    def _dispatch(self) -> None:
        """Carry out what the session produced: frames, events, completions, its next timer."""
        frames = self.session.frames_to_send()
        if self._outgoing is not None:
            for text in frames:
                self._outgoing.put_nowait(text)
        events = self.session.events()
        if events and self._consuming:
            self._events.extend(events)
            self._event_added.set()
        for done in self.session.completions():
            future = self._waiters.get(done.handle)
            if future is None or future.done():
                continue
            if done.error is not None:
                future.set_exception(done.error)
            else:
                future.set_result(done.answer)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.next_deadline()
        if deadline != float("inf"):
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.session.tick()
        self._dispatch()
