"""The ``/v1/ws`` endpoint: moves frames between the socket, the session and the service.

A thin adapter in the python-websockets mould: every protocol decision is the
:class:`~chat.gateway.protocol.Session`'s, every chat decision the
:class:`~chat.gateway.service.ChatService`'s. A connection runs four small loops:

- the **reader**: each received frame is handed to :meth:`Connection._on_frame` by a plain
  call from the gateway's uvicorn protocol's ``data_received`` (:meth:`TransportControl.
  on_frame`) — no ASGI queue, no task wake-up, no pausing and resuming of the socket per
  frame — and the endpoint coroutine only waits for the disconnect;
- the **worker** runs the session's commands on the service one at a time, in order (a client
  that sends ``subscribe`` then ``send`` relies on it), and reports each outcome back;
- the **writer** drains the bounded :class:`~chat.gateway.hub.Mailbox` into the socket. A
  put into the mailbox schedules one *flush* callback (once
  per pass of the event loop, however many frames arrive in it) that writes everything queued
  in one transport write (:meth:`TransportControl.write_texts`) — no task wake-up per write-up,
  and not one ASGI ``send`` per frame, which was the largest cost of a fanned-out message.
  Only when the transport is paused (the client does not read) does the writer *task* take
  over: it waits for the transport, so a slow client slows only itself.
  The socket's buffers are bounded (:mod:`chat.gateway.transport`), so a client that stops
  reading stalls the writer, its frames pile up in the mailbox, and when it falls
  ``outgoing_queue_size`` frames (or twice ``outgoing_queue_bytes``) behind the hub cuts it off
  with 4008: the stalled writer is cancelled and the close frame is sent (or, when the client
  never reads it, the socket is dropped after ``CLOSE_TIMEOUT``). Large answers (``history``,
  a resume's replay) wait for room in the mailbox instead of piling up, and a mailbox that
  stays full (over ``outgoing_queue_bytes``, or with an answer waiting for room) while the
  client takes nothing for ``write_stall_ms`` is cut off the same way (the *stall watch*);
- reading is **paused** while too much work waits for the worker (``COMMANDS_HIGH`` commands
  or ``COMMAND_BYTES_HIGH`` of them) and while the session's frame bucket is empty (a timer
  resumes it when a token is back): a client sending faster than it may is slowed by TCP, and
  costs the gateway nothing for the frames it cannot send yet;
- the **ticker** — a timer of the event loop, not a task — calls ``session.tick()`` at the
  session's next deadline (auth timeout, pings, idle timeout) and re-arms itself for the next
  one (a task that polled every second cost every idle connection a wake-up per second).

An unexpected exception anywhere closes the connection with 1011; the traceback is logged and
nothing internal reaches the client. Server shutdown calls :meth:`Connection.shutdown` (through
the transport's shutdown hook, or from ``Gateway.close``): every command already received is
answered or failed, then the connection closes with 1001.

There is one I/O path: the gateway runs on its own uvicorn protocol
(:class:`~chat.gateway.transport.GatewayWebSocketProtocol`, which ``chat serve`` uses), and
the endpoint refuses a WebSocket served by anything else (see :mod:`chat.gateway.runtime`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from chat.auth import bearer_token
from chat.domain.messages import SendAck
from chat.errors import ChatError, ServiceUnavailable, Unauthorized
from chat.gateway.codes import CloseCode
from chat.gateway.hub import EndReason, Mailbox
from chat.gateway.protocol import (
    Authenticate,
    Command,
    Delete,
    Edit,
    History,
    React,
    Read,
    Refresh,
    Send,
    Session,
    State,
    Subscribe,
    Typing,
    Unreact,
    Unsubscribe,
    command_bytes,
)
from chat.gateway.service import Client
from chat.gateway.transport import WRITE_BUFFER_HIGH, TransportControl
from chat.metrics import Metrics
from chat.store.driver.failures import DEPENDENCY_ERRORS

if TYPE_CHECKING:
    from chat.gateway.runtime import Gateway

log = logging.getLogger(__name__)

CLIENT_GONE = (OSError, RuntimeError, WebSocketDisconnect)
"""What a write raises when the client is gone or the socket closing (uvicorn's
``ClientDisconnected`` is an OSError, Starlette's send after close a RuntimeError). Anything
else from the write path is our bug and closes the connection with 1011 — it must not leave
the connection open and silent until the idle timeout."""

CLOSE_TIMEOUT = 5.0
"""How long closing waits for a client that does not read (then the socket is dropped)."""

COMMANDS_HIGH = 128
"""Commands waiting for the worker at which the connection stops reading the socket.

Frames arrive by a direct call from ``data_received``, which reads whatever the client sends;
without this bound a client pipelining unthrottled commands (``history``, ``read``, ...)
faster than the store answers them would grow the queue — memory — without limit. Paused,
the client is slowed by TCP instead; nothing is dropped."""
COMMANDS_LOW = 32
"""Commands waiting at or below which a paused connection reads again."""
COMMAND_BYTES_HIGH = 1024 * 1024
"""Bytes of waiting commands (:func:`~chat.gateway.protocol.command_bytes`) at which the
connection stops reading too: 128 ``send`` frames of 64 KiB would be megabytes."""
COMMAND_BYTES_LOW = 256 * 1024
"""Bytes of waiting commands at or below which (and ``COMMANDS_LOW``) reading resumes."""

TIMER_SLACK = 0.002
"""Added to a timer that must fire *after* a token is back (the loop's clock has millisecond
steps: a timer firing a fraction early would find the bucket still empty)."""

WRITE_BATCH_CHARS = WRITE_BUFFER_HIGH
"""About the most text one transport write of the writer carries (it may exceed it by one
frame): a batch never overfills the transport's bounded buffer by more than that."""


class FrameCounter:
    """``chat_ws_frames_out_total{type}`` counted per written batch, not per frame.

    A counter increment is locked; the writer writes a batch at a time, so it counts the
    batch's frames by type first (server frames start with ``{"type":"<type>"``) and
    increments each type's counter once.
    """

    MAX_TYPES = 64
    """Server frame types are few; the label set stays bounded whatever is written."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._children: dict[str, Any] = {}

    def count(self, batch: list[str]) -> None:
        if len(batch) == 1:
            self._inc(_frame_type(batch[0]), 1)
            return
        types: dict[str, int] = {}
        for frame in batch:
            kind = _frame_type(frame)
            types[kind] = types.get(kind, 0) + 1
        for kind, n in types.items():
            self._inc(kind, n)

    def _inc(self, kind: str, n: int) -> None:
        child = self._children.get(kind)
        if child is None:
            if not kind or len(self._children) >= self.MAX_TYPES:
                kind = "other"
            child = self._children[kind] = self._metrics.frames_out.labels(kind)
        child.inc(n)


def _frame_type(frame: str) -> str:
    """The ``type`` of an encoded server frame ("" when it does not start with it)."""
    if frame.startswith('{"type":"'):
        return frame[9 : frame.find('"', 9)]
    return ""


class Connection:
    """One WebSocket client: its session, its mailbox and the tasks that serve it."""

    def __init__(self, websocket: WebSocket, gateway: Gateway, control: TransportControl) -> None:
        self.ws = websocket
        self.gateway = gateway
        loop = asyncio.get_running_loop()
        self.session = Session(gateway.limits, clock=loop.time)
        self.mailbox = Mailbox(
            0,
            gateway.limits.outgoing_queue_size,
            on_overflow=self._too_slow,
            on_removed=self._removed,
            max_bytes=gateway.limits.outgoing_queue_bytes,
            on_full=self._watch_stall,
        )
        self.client: Client | None = None
        self._admitted: int | None = None
        """The user whose connection count this connection holds (released at the end)."""
        self._stall_timer: asyncio.TimerHandle | None = None
        self._stall_mark = (0, 0)
        # Why reading is paused: too much work waiting, or the frame bucket is empty (the
        # timer resumes it when a token is back).
        self._busy = False
        self._frame_timer: asyncio.TimerHandle | None = None
        self.metrics = gateway.metrics
        self._wake = asyncio.Event()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._acked: Send | None = None
        # The worker's queue: a deque and a future while it waits (an asyncio.Queue costs
        # twice the calls per command and maintains join() bookkeeping nobody uses).
        self._commands: collections.deque[tuple[Command | None, int]] = collections.deque()
        self._command_bytes = 0
        self._command_waiter: asyncio.Future[None] | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._abort = False
        self._shutting_down = False
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self.control = control
        self._loop = loop
        self._flush_pending = False
        self._write_stopped = False
        self._frames_out = gateway.frames_out
        self.mailbox.set_waiter(self._frames_queued)
        self.done = asyncio.Event()

    @property
    def queued_commands(self) -> int:
        """Commands received and waiting for the worker (not counting the one it runs)."""
        return len(self._commands)

    @property
    def queued_command_bytes(self) -> int:
        """About the memory the waiting commands hold."""
        return self._command_bytes

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
            ]
            self._schedule_tick()
            self.control.on_shutdown(self._server_shutting_down)
            self.control.on_frame(self._on_frame)
            self._pump()
            await self._read()
        except Exception:
            log.exception("WebSocket connection failed")
            await self._close_now(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self.control.on_shutdown(None)
            if self._tick_handle is not None:
                self._tick_handle.cancel()
                self._tick_handle = None
            for timer in (self._stall_timer, self._frame_timer):
                if timer is not None:
                    timer.cancel()
            self._stall_timer = self._frame_timer = None
            tasks = [t for t in (*self._tasks, self._closer) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.client is not None:
                self.gateway.service.disconnected(self.client)
            if self._admitted is not None:
                self.gateway.quotas.release(self._admitted)
                self._admitted = None
            if self.session.state is not State.CLOSED:
                self.session.connection_closed()
            self.done.set()

    async def _read(self) -> None:
        """Until the disconnect: frames come through :meth:`_on_frame`
        (:meth:`TransportControl.on_frame`), so the disconnect is all ASGI brings."""
        while (await self.ws.receive())["type"] != "websocket.disconnect":
            pass

    def _on_frame(self, frame: str | bytes) -> None:
        """A frame from the client, called from the protocol's ``data_received``: it must not
        raise (the event loop would get the exception), so a bug closes with 1011 here."""
        session = self.session
        if session.state >= State.CLOSING:
            return
        try:
            self.metrics.frames_received.inc()
            if isinstance(frame, str):
                session.receive_text(frame)
            else:
                session.receive_bytes(frame)
            self._pump()
            if self._frame_timer is None and session.state < State.CLOSING:
                wait = session.frame_wait()
                if wait > 0:
                    # Out of frame tokens: read nothing more until one is back (the client
                    # waits in TCP; the next frame is not refused).
                    self._frame_timer = self._loop.call_later(
                        wait + TIMER_SLACK, self._frame_token_back
                    )
                    self._update_reading()
        except Exception:
            self._failed()

    def _frame_token_back(self) -> None:
        self._frame_timer = None
        try:
            self._update_reading()  # may deliver held-back frames at once (and pause again)
        except Exception:
            self._failed()

    def _update_reading(self) -> None:
        """Pause the socket's reading while commands pile up or the frame bucket is empty;
        read again when neither holds (and always once closing: the close must get through)."""
        control = self.control
        if self._close_code is None and (self._busy or self._frame_timer is not None):
            control.pause_reading()
        else:
            control.resume_reading()

    def _failed(self) -> None:
        """A bug in a callback of the event loop (which must not raise): log it and close
        with 1011, as the endpoint coroutine does for its own exceptions."""
        log.exception("WebSocket connection failed")
        with contextlib.suppress(Exception):
            self.session.close(CloseCode.INTERNAL_ERROR, "internal error")
        self._request_close(int(CloseCode.INTERNAL_ERROR), "internal error", abort=True)

    # ---------------------------------------------------------------- session outputs

    def _pump(self) -> None:
        """Move the session's answers to the mailbox and its commands to the worker."""
        for frame in self.session.frames_to_send():
            self.mailbox.put(frame.decode())
        for command in self.session.commands():
            self.metrics.command_in(command)
            self._queue_command(command)
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
        # Frames are ignored from now on; reading again lets the close handshake (or the
        # disconnect) through even while commands wait.
        self.control.resume_reading()
        if abort and self._writer is not None:
            self._writer.cancel()  # it waits for writability at most; nothing half-written
            self._closer = asyncio.create_task(self._close_now(code, reason), name="ws-closer")
        self._wake.set()

    def _frames_queued(self) -> None:
        """The mailbox's waiter: flush once the current callback is done
        (so a fan-out to many mailboxes, or several frames for one, cost one write each)."""
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is queued if the transport takes it; else leave it to the writer task."""
        self._flush_pending = False
        control = self.control
        if self._abort or self._write_stopped:
            return
        if control.writable:
            try:
                self._write_available(control)
            except CLIENT_GONE:
                # The socket went away under us (the reader sees the disconnect and ends).
                log.debug("WebSocket write failed", exc_info=True)
                self._write_stopped = True
                return
            except Exception:
                self._write_stopped = True
                self._failed()  # our bug: 1011, not a silent connection
                return
        if len(self.mailbox):
            self._wake.set()  # the transport is paused: the writer task waits for it

    def _write_available(self, control: TransportControl) -> None:
        """Write batches while frames are queued and the transport is not paused (no await:
        a batch is never half-written, and while the client does not read the frames stay in
        the mailbox, where ``outgoing_queue_size`` bounds them)."""
        mailbox = self.mailbox
        count = self._frames_out.count
        while len(mailbox) and control.writable:
            batch = mailbox.pop_batch(WRITE_BATCH_CHARS)
            control.write_texts(batch)
            count(batch)

    async def _write(self) -> None:
        """The writer task: takes over from :meth:`_flush` while the transport is paused, and
        sends the close frame once everything queued before it is written."""
        control = self.control
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while not self._abort and not self._write_stopped and len(self.mailbox):
                    await control.wait_writable()
                    if self._abort:
                        return
                    self._write_available(control)
                if self._abort:
                    return  # the closer task sends the close frame
                if self._close_code is not None and not len(self.mailbox):
                    await self._close_now(self._close_code, self._close_reason)
                    return
        except CLIENT_GONE:
            # The socket went away under us (the reader sees the disconnect and ends).
            log.debug("WebSocket writer stopped", exc_info=True)
            self._write_stopped = True
        except Exception:
            self._write_stopped = True
            self._failed()  # our bug: 1011, not a silent connection

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
        """Abort the socket: the reader then sees the disconnect."""
        self.control.abort()

    def _too_slow(self, mailbox: Mailbox) -> None:
        self.metrics.slow_consumer_disconnects.inc()
        self.session.close(CloseCode.TOO_SLOW, "too slow; resume from your cursor")
        self._request_close(int(CloseCode.TOO_SLOW), self.session.close_reason, abort=True)

    def _watch_stall(self) -> None:
        """The mailbox is full (over its byte budget, or an answer waits for room): unless the
        client takes bytes within ``write_stall_ms``, it is cut off like an overflow."""
        if self._stall_timer is None and not self.mailbox.closed:
            self._stall_mark = self._write_progress()
            delay = self.gateway.limits.write_stall_ms / 1000
            self._stall_timer = self._loop.call_later(delay, self._check_stall)

    def _write_progress(self) -> tuple[int, int]:
        """Frames taken from the mailbox, and bytes the transport still holds: a client that
        reads moves one or the other (a megabyte page leaves the mailbox at once and then
        drains from the transport as fast as the client reads)."""
        return self.mailbox.progress, self.control.unsent_bytes

    def _check_stall(self) -> None:
        self._stall_timer = None
        mailbox = self.mailbox
        if mailbox.closed or not mailbox.full:
            return
        (taken, unsent), (taken_before, unsent_before) = self._write_progress(), self._stall_mark
        if taken != taken_before or unsent < unsent_before:
            self._watch_stall()  # the client reads, if slowly: watch the next period
            return
        log.info(
            "WebSocket client took nothing for %d ms with %d bytes queued; closing (4008)",
            self.gateway.limits.write_stall_ms,
            mailbox.queued_bytes,
        )
        mailbox.overflow()

    def _removed(self, event_id: int, reason: EndReason) -> None:
        if self.session.state is State.OPEN:
            self.session.subscription_ended(event_id, reason)
            self._pump()

    # ---------------------------------------------------------------- deadlines

    def _schedule_tick(self) -> None:
        """Arm the timer for the session's next deadline (none once it is closing)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self.session.state >= State.CLOSING:
            return
        deadline = self.session.next_deadline()
        if deadline != math.inf:
            self._tick_handle = self._loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        """The timer fired: tick the session if a deadline passed (activity moves them later,
        so it often has not), then re-arm. A timer callback must not raise."""
        self._tick_handle = None
        session = self.session
        if session.state >= State.CLOSING:
            return
        try:
            if self._loop.time() >= session.next_deadline():
                session.tick()
                self._pump()
            self._schedule_tick()
        except Exception:
            self._failed()

    # ---------------------------------------------------------------- commands

    def _queue_command(self, command: Command | None) -> None:
        """Queue a command for the worker (None: stop after the ones before it); past
        ``COMMANDS_HIGH`` waiting (or ``COMMAND_BYTES_HIGH``), stop reading the socket until
        the worker catches up."""
        size = 0 if command is None else command_bytes(command)
        self._commands.append((command, size))
        self._command_bytes += size
        if not self._busy and (
            len(self._commands) >= COMMANDS_HIGH or self._command_bytes >= COMMAND_BYTES_HIGH
        ):
            self._busy = True
            self._update_reading()
        waiter = self._command_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next_command(self) -> Command | None:
        while not self._commands:
            self._command_waiter = self._loop.create_future()
            try:
                await self._command_waiter
            finally:
                self._command_waiter = None
        command, size = self._commands.popleft()
        self._command_bytes -= size
        if (
            self._busy
            and len(self._commands) <= COMMANDS_LOW
            and self._command_bytes <= COMMAND_BYTES_LOW
        ):
            self._busy = False
            self._update_reading()
        return command

    async def _work(self) -> None:
        while True:
            command = await self._next_command()
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
                await self._authenticate(command)
                return
            client = self.client
            assert client is not None, "the session sent a command before authentication"
            service = self.gateway.service
            if isinstance(command, Refresh):
                token = service.verify_token(command.token)
                if token.user_id != client.user_id:
                    raise Unauthorized("the new token is for another user")
                await service.load_identity(token.user_id)  # still active
                session.refreshed(command, token.expires_at)
                self._schedule_tick()  # the session's end moved
            elif isinstance(command, Subscribe):
                cursor, count, pending = await service.subscribe(client, command)
                session.subscribed(command, cursor)
                self._pump()  # `subscribed` after the replay, before anything live
                pending.go_live(count)
            elif isinstance(command, Unsubscribe):
                service.unsubscribe(client, command.event_id)
                session.unsubscribed(command)
            elif isinstance(command, Send):
                send_ack = await service.send(client, command, on_ack=self._ack_now)
                if self._acked is not command:  # the store finished but the callback failed
                    self._ack_now(command, send_ack)
                self._acked = None
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
                # A page can be megabytes: read it only once the client has taken the last.
                await self.mailbox.wait_for_room()
                if self.mailbox.closed:
                    return
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

    async def _authenticate(self, command: Authenticate) -> None:
        """Verify the token (no I/O), count the connection against the user's cap (before the
        database round trip, so a flood of one user's connections is refused cheaply), then
        load the user (active?) and open the session until the token expires."""
        service, quotas, session = self.gateway.service, self.gateway.quotas, self.session
        token = service.verify_token(command.token)
        quotas.admit(token.user_id)
        self._admitted = token.user_id
        try:
            identity = await service.load_identity(token.user_id)
        except BaseException:
            self._admitted = None
            quotas.release(token.user_id)
            raise
        if session.state is not State.AWAITING_AUTH:
            return
        self.client = service.connected(identity, self.mailbox)
        session.authenticated(
            command,
            identity.user_id,
            secrets.token_hex(8),
            expires_at=token.expires_at,
            user_writes=quotas.writes(identity.user_id),
        )
        self._schedule_tick()  # the deadlines are now pings, idleness and the token's expiry

    def _ack_now(self, command: Send, send_ack: SendAck) -> None:
        """Answer a send the moment the store has it, from the store's completion callback:
        the ack then leaves in the same write as the ``message`` frames the send fans out to
        this connection, instead of one more write after the worker task wakes up."""
        if self.session.state is not State.OPEN:
            self._acked = command  # closing or gone: the answer is dropped, as any other
            return
        self.session.acked(command, send_ack)
        self._acked = command
        self.metrics.messages_acked.inc()
        self._pump()

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
        self._queue_command(None)
        worker = self._tasks[1] if len(self._tasks) > 1 else None
        if worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(worker), CLOSE_TIMEOUT)
        # Whatever arrived after the marker is failed, not run: the store is closing next.
        while self._commands:
            command, size = self._commands.popleft()
            self._command_bytes -= size
            if command is not None:
                self.session.failed(command, ServiceUnavailable("the server is shutting down"))
        self.session.close(CloseCode.GOING_AWAY, "the server is shutting down")
        self._pump()
