"""The ``/v1/ws`` endpoint: moves frames between the socket, the session and the service.

A thin adapter in the python-websockets mould: every protocol decision is the
:class:`~chat.gateway.protocol.Session`'s, every chat decision the
:class:`~chat.gateway.service.ChatService`'s. A connection runs four small loops:

- the **reader** (the endpoint coroutine) feeds received frames to the session;
- the **worker** runs the session's commands on the service one at a time, in order (a client
  that sends ``subscribe`` then ``send`` relies on it), and reports each outcome back;
- the **writer** drains the bounded :class:`~chat.gateway.hub.Mailbox` into the socket — under
  the gateway's uvicorn protocol every frame queued since its last wake-up in one transport
  write (:meth:`TransportControl.write_texts`), not one ASGI ``send`` per frame, which was the
  largest cost of a fanned-out message; it is the only task that awaits the client, so a slow
  client slows only itself.
  The socket's buffers are bounded (:mod:`chat.gateway.transport`), so a client that stops
  reading stalls the writer, its frames pile up in the mailbox, and when it falls
  ``outgoing_queue_size`` frames behind the hub cuts it off with 4008: the stalled writer is
  cancelled and the close frame is sent (or, when the client never reads it, the socket is
  dropped after ``CLOSE_TIMEOUT``);
- the **ticker** calls ``session.tick()`` at the session's next deadline (auth timeout, pings,
  idle timeout).

An unexpected exception anywhere closes the connection with 1011; the traceback is logged and
nothing internal reaches the client. Server shutdown calls :meth:`Connection.shutdown` (through
the transport's shutdown hook under uvicorn, else from ``Gateway.close``): every command already
received is answered or failed, then the connection closes with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket

from chat.auth import bearer_token
from chat.errors import ChatError, ServiceUnavailable, Unauthorized
from chat.gateway.frames import CloseCode
from chat.gateway.hub import EndReason, Mailbox
from chat.gateway.protocol import (
    Authenticate,
    Command,
    Delete,
    Edit,
    History,
    React,
    Read,
    Send,
    Session,
    State,
    Subscribe,
    Typing,
    Unreact,
    Unsubscribe,
)
from chat.gateway.service import Client
from chat.gateway.transport import EXTENSION, WRITE_BUFFER_HIGH, TransportControl
from chat.store.failures import DEPENDENCY_ERRORS

if TYPE_CHECKING:
    from chat.gateway.runtime import Gateway

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0
"""How long closing waits for a client that does not read (then the socket is dropped)."""

WRITE_BATCH_CHARS = WRITE_BUFFER_HIGH
"""About the most text one transport write of the writer carries (it may exceed it by one
frame): a batch never overfills the transport's bounded buffer by more than that."""

"""Failures of a dependency, not of the gateway: the client hears ``unavailable`` and retries."""


class Connection:
    """One WebSocket client: its session, its mailbox and the tasks that serve it."""

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self.ws = websocket
        self.gateway = gateway
        loop = asyncio.get_running_loop()
        self.session = Session(gateway.limits, clock=loop.time)
        self.mailbox = Mailbox(
            0,
            gateway.limits.outgoing_queue_size,
            on_overflow=self._too_slow,
            on_removed=self._removed,
        )
        self.client: Client | None = None
        self.metrics = gateway.metrics
        self._wake = asyncio.Event()
        self._deadlines_moved = asyncio.Event()
        self.mailbox.set_waiter(self._wake.set)
        self._commands: asyncio.Queue[Command | None] = asyncio.Queue()
        self._close_code: int | None = None
        self._close_reason = ""
        self._abort = False
        self._shutting_down = False
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        extension = websocket.scope.get("extensions", {}).get(EXTENSION)
        self.control = extension if isinstance(extension, TransportControl) else None
        self.done = asyncio.Event()

    # ---------------------------------------------------------------- the endpoint

    async def serve(self) -> None:
        try:
            header = self.ws.headers.get("authorization")
            await self.ws.accept()
            if self.gateway.closing:
                await self.ws.close(CloseCode.GOING_AWAY, "the server is shutting down")
                return
            if header:
                try:
                    token = bearer_token(header)
                except Unauthorized as exc:
                    # Not `Bearer <token>` (or no token): refused like a bad token, with 4401.
                    self.session.failed(Authenticate(""), exc)
                else:
                    self.session.use_header_token(token)
            self._writer = asyncio.create_task(self._write(), name="ws-writer")
            self._tasks = [
                self._writer,
                asyncio.create_task(self._work(), name="ws-worker"),
                asyncio.create_task(self._tick(), name="ws-ticker"),
            ]
            if self.control is not None:
                self.control.on_shutdown(self._server_shutting_down)
            self._pump()
            await self._read()
        except Exception:
            log.exception("WebSocket connection failed")
            await self._close_now(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if self.control is not None:
                self.control.on_shutdown(None)
            tasks = [t for t in (*self._tasks, self._closer) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.client is not None:
                self.gateway.service.disconnected(self.client)
            if self.session.state is not State.CLOSED:
                self.session.connection_closed()
            self.done.set()

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if self.session.state >= State.CLOSING:
                continue
            self.metrics.frames_received.inc()
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                self.session.receive_text(text)
            elif data is not None:
                self.session.receive_bytes(data)
            self._pump()

    # ---------------------------------------------------------------- session outputs

    def _pump(self) -> None:
        """Move the session's answers to the mailbox and its commands to the worker."""
        for frame in self.session.frames_to_send():
            self.mailbox.put(frame.decode())
        for command in self.session.commands():
            self.metrics.command_in(command)
            self._commands.put_nowait(command)
        if self.session.state is State.CLOSING and self._close_code is None:
            code = self.session.close_code or CloseCode.NORMAL
            self._request_close(int(code), self.session.close_reason)

    def _request_close(self, code: int, reason: str, *, abort: bool = False) -> None:
        """The writer sends what is queued, then the close frame.

        With ``abort`` the queue is dropped and the writer — possibly stuck waiting for a client
        that does not read — is cancelled; a separate task sends the close frame.
        """
        if self._close_code is not None:
            return
        self._close_code, self._close_reason, self._abort = code, reason, abort
        if abort and self._writer is not None:
            self._writer.cancel()  # it waits for writability at most; nothing half-written
            self._closer = asyncio.create_task(self._close_now(code, reason), name="ws-closer")
        self._wake.set()

    async def _write(self) -> None:
        control = self.control
        batches = control if control is not None and control.can_send_batches else None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if batches is not None:
                    await self._write_batches(batches)
                else:
                    while not self._abort and (frame := self.mailbox.pop()) is not None:
                        await self.ws.send_text(frame)
                        self.metrics.frame_out(frame)
                if self._abort:
                    return  # the closer task sends the close frame
                if self._close_code is not None and not len(self.mailbox):
                    await self._close_now(self._close_code, self._close_reason)
                    return
        except Exception:
            # The socket went away under us (the reader sees the disconnect and ends).
            log.debug("WebSocket writer stopped", exc_info=True)

    async def _write_batches(self, control: TransportControl) -> None:
        """Drain the mailbox a batch per transport write (uvicorn with the gateway's protocol).

        Each batch is taken only once the transport is writable and is written without an
        await in between, so a cancelled writer never half-writes one, and while the client
        does not read the frames stay in the mailbox where ``outgoing_queue_size`` bounds them.
        """
        mailbox = self.mailbox
        while not self._abort and len(mailbox):
            await control.wait_writable()
            if self._abort:
                return
            batch = mailbox.pop_batch(WRITE_BATCH_CHARS)
            control.write_texts(batch)
            for frame in batch:
                self.metrics.frame_out(frame)

    async def _close_now(self, code: int, reason: str) -> None:
        """Send the close frame; a client that does not read it in time loses the socket."""
        try:
            await asyncio.wait_for(self.ws.close(code, reason[:120]), CLOSE_TIMEOUT)
        except TimeoutError:
            log.info("WebSocket client did not take the close frame (%d); dropping it", code)
            self._drop()
        except Exception:
            log.debug("WebSocket close failed", exc_info=True)

    def _drop(self) -> None:
        """Abort the socket (when the server lets us): the reader then sees the disconnect."""
        if self.control is not None:
            self.control.abort()

    def _too_slow(self, mailbox: Mailbox) -> None:
        self.metrics.slow_consumer_disconnects.inc()
        self.session.close(CloseCode.TOO_SLOW, "too slow; resume from your cursor")
        self._request_close(int(CloseCode.TOO_SLOW), self.session.close_reason, abort=True)

    def _removed(self, event_id: int, reason: EndReason) -> None:
        if self.session.state is State.OPEN:
            self.session.subscription_ended(event_id, reason)
            self._pump()

    # ---------------------------------------------------------------- deadlines

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self.session.state < State.CLOSING:
            delay = self.session.next_deadline() - loop.time()
            # Authentication brings the deadlines (pings, idle) forward: it wakes us.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadlines_moved.wait(), min(max(delay, 0.0), 1.0))
            self._deadlines_moved.clear()
            if loop.time() >= self.session.next_deadline():
                self.session.tick()
                self._pump()

    # ---------------------------------------------------------------- commands

    async def _work(self) -> None:
        while True:
            command = await self._commands.get()
            if command is None:
                return
            if self._shutting_down:
                self.session.failed(command, ServiceUnavailable("the server is shutting down"))
            else:
                await self._run(command)
            self._pump()

    async def _run(self, command: Command) -> None:
        session = self.session
        try:
            if isinstance(command, Authenticate):
                identity = await self.gateway.service.authenticate(command.token)
                if session.state is not State.AWAITING_AUTH:
                    return
                self.client = self.gateway.service.connected(identity, self.mailbox)
                session.authenticated(command, identity.user_id, secrets.token_hex(8))
                self._deadlines_moved.set()
                return
            client = self.client
            assert client is not None, "the session sent a command before authentication"
            service = self.gateway.service
            if isinstance(command, Subscribe):
                cursor, count, pending = await service.subscribe(client, command)
                session.subscribed(command, cursor)
                self._pump()  # `subscribed` after the replay, before anything live
                pending.go_live(count)
            elif isinstance(command, Unsubscribe):
                service.unsubscribe(client, command.event_id)
                session.unsubscribed(command)
            elif isinstance(command, Send):
                session.acked(command, await service.send(client, command))
                self.metrics.messages_acked.inc()
            elif isinstance(command, Edit):
                await service.edit(client, command)
                session.done(command)
            elif isinstance(command, Delete):
                await service.delete(client, command)
                session.done(command)
            elif isinstance(command, React | Unreact):
                await service.react(client, command)
                session.done(command)
            elif isinstance(command, Typing):
                await service.typing(client, command)
                session.done(command)
            elif isinstance(command, Read):
                session.read_done(command, await service.read(client, command))
            elif isinstance(command, History):
                messages, next_cursor = await service.history(client, command)
                session.history_page(command, messages, next_cursor)
        except ChatError as exc:
            session.failed(command, exc)
        except DEPENDENCY_ERRORS as exc:
            self.metrics.driver_error(exc)
            log.warning("%s failed in a dependency: %r", type(command).__name__, exc)
            session.failed(command, ServiceUnavailable("the store is unavailable; retry later"))
        except Exception:
            log.exception("%s failed unexpectedly", type(command).__name__)
            session.close(CloseCode.INTERNAL_ERROR, "internal error")

    # ---------------------------------------------------------------- shutdown

    def _server_shutting_down(self) -> None:
        """uvicorn is stopping: close gracefully instead of being cut off with 1012."""
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._shut_down(), name="ws-shutdown")

    async def _shut_down(self) -> None:
        await self.shutdown()
        try:
            await asyncio.wait_for(self.done.wait(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.info("WebSocket client did not close in time at shutdown; dropping it")
            self._drop()

    async def shutdown(self) -> None:
        """Answer (or fail) every command already received, then close with 1001."""
        self._shutting_down = True
        self._commands.put_nowait(None)
        worker = self._tasks[1] if len(self._tasks) > 1 else None
        if worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(worker), CLOSE_TIMEOUT)
        # Whatever arrived after the marker is failed, not run: the store is closing next.
        while not self._commands.empty():
            command = self._commands.get_nowait()
            if command is not None:
                self.session.failed(command, ServiceUnavailable("the server is shutting down"))
        self.session.close(CloseCode.GOING_AWAY, "the server is shutting down")
        self._pump()
