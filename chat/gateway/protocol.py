"""The gateway's session state machine, without I/O (the python-websockets sans-I/O model).

A :class:`Session` is one client connection's protocol state. It never touches a socket, a
task or the wall clock: the adapter (``chat/gateway/connection.py``) feeds it what happened and
carries out what it asks for. Keeping all protocol decisions here is what lets the tests feed
frames and check answers with a fake clock, and what keeps chat logic out of the socket code.

How an adapter drives a session::

    session = Session(Limits.from_settings(settings), clock=loop.time)
    if header_token:                     # token in the Authorization header at the upgrade
        session.use_header_token(header_token)
    loop:
        on a text frame:    session.receive_text(text)
        on a binary frame:  session.receive_bytes(data)
        when loop.time() >= session.next_deadline():  session.tick()
        after every input:
            for frame in session.frames_to_send(): enqueue(frame)    # direct answers, pings
            for command in session.commands():   run it on the service, in order, then report
                the outcome back with the matching method below
            if session.state is State.CLOSING:
                flush the queue, close the socket with session.close_code / close_reason,
                then session.connection_closed()

Outcomes of commands come back as method calls that take the command itself, so the session
knows the request's ``ref`` and kind without the adapter tracking them:

=====================  =====================================================================
command                report back with
=====================  =====================================================================
Authenticate           ``authenticated(cmd, user_id, session_id, expires_at=..., user_writes=...)``
Refresh                ``refreshed(cmd, expires_at)``
Subscribe              ``subscribed(cmd, cursor)`` — after queueing the replayed messages
Unsubscribe            ``unsubscribed(cmd)``
Send                   ``acked(cmd, send_ack)`` — only once the message is durable
Edit, Delete, React,   ``done(cmd)``
Unreact, Typing
Read                   ``read_done(cmd, unread_count)``
History                ``history_page(cmd, messages, next_cursor)``
any                    ``failed(cmd, chat_error)`` (``Authenticate`` failing closes: 4401,
                       1013 when the service is unavailable, 4429 with too many connections;
                       ``Refresh`` failing closes with 4401 unless the service is unavailable)
=====================  =====================================================================

Frames that arrive while authentication is pending (a ``hello`` sent, or the token of the
upgrade header being checked) are held — at most :data:`HELD_FRAMES` frames and
:data:`HELD_BYTES` bytes — and handled in order right after ``welcome``; a failed
authentication drops them with the session.

Every frame draws on the connection's frame bucket (``limits.frame_rate_per_second``); writes
also on its write bucket and, once authenticated, on the user's (``user_writes``, shared by
all of the user's connections on the server). A frame over a rate is answered with
``error rate_limited`` and not acted on. An adapter that can stop reading its socket asks
``frame_wait()`` after each frame and reads no further frame until then, so that frames over
the frame rate wait in TCP instead of being refused.

Fan-out frames (``message``, ``message_updated``, ``reaction``, ``typing``, ``unread``,
``presence``) do not pass through the session: the hub encodes each once with the builders in
:mod:`chat.gateway.frames` and puts the same bytes into every subscriber's queue. The session
only answers its own client. When a participant is removed from an event, the adapter calls
``subscription_ended(event_id)`` after the hub has dropped the subscription.

Commands of one session must be run in the order they are returned: a client that sends
``subscribe`` then ``send`` relies on it. Answers for a session that is closing are dropped;
a call that makes no sense in the current state raises :class:`InvalidState` naming it.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from chat.domain.messages import Message, MessageType, NewMessage, SendAck
from chat.errors import ChatError, FrameError
from chat.gateway import client_frames, frames
from chat.gateway.client_frames import (
    DeleteFrame,
    EditFrame,
    FrameId,
    Hello,
    HistoryFrame,
    Ping,
    Pong,
    ReactFrame,
    ReadFrame,
    RefreshFrame,
    SendFrame,
    SubscribeFrame,
    TypingFrame,
    UnreactFrame,
    UnsubscribeFrame,
)
from chat.gateway.codes import CloseCode, ErrorCode
from chat.gateway.limits import Limits
from chat.ratelimit import TokenBucket


class State(IntEnum):
    """Where a session is in its life; only ``OPEN`` serves chat frames."""

    AWAITING_AUTH = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class InvalidState(ChatError):
    """The adapter called a session method that the session's state does not allow (a bug)."""

    code = "internal_error"


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Verify ``token``; from a ``hello`` frame, or the upgrade header (``ref`` None)."""

    token: str = field(repr=False)
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """Verify ``token`` (the same user's, still active) and extend the session to its expiry."""

    token: str = field(repr=False)
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Check membership, join the hub topic, replay after ``since`` (a cursor) if given."""

    event_id: int
    since: str | None
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    event_id: int
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Post a message (idempotent on ``(sender, client_msg_id)``)."""

    event_id: int
    client_msg_id: str
    text: str
    message_type: MessageType
    attachments: tuple[str, ...]
    reply_to: uuid.UUID | None
    metadata: Mapping[str, str]
    ref: FrameId | None = None

    def to_new_message(
        self,
        sender_id: int,
        *,
        sender_name: str | None = None,
        sender_profile_url: str | None = None,
    ) -> NewMessage:
        """The store's input for this send, once the service knows who is sending."""
        return NewMessage(
            event_id=self.event_id,
            sender_id=sender_id,
            client_msg_id=self.client_msg_id,
            text=self.text,
            message_type=self.message_type,
            attachments=self.attachments,
            reply_to=self.reply_to,
            metadata=dict(self.metadata),
            sender_name=sender_name,
            sender_profile_url=sender_profile_url,
        )


@dataclass(frozen=True, slots=True)
class Edit:
    event_id: int
    message_id: uuid.UUID
    text: str
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    event_id: int
    message_id: uuid.UUID
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class React:
    event_id: int
    message_id: uuid.UUID
    emoji: str
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Unreact:
    event_id: int
    message_id: uuid.UUID
    emoji: str
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    event_id: int
    state: Literal["start", "stop"]
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """The user has read ``event_id`` up to and including ``message_id``."""

    event_id: int
    message_id: uuid.UUID
    ref: FrameId | None = None


@dataclass(frozen=True, slots=True)
class History:
    """A page: ``before`` (older, newest first), ``after`` (newer, oldest first) or latest."""

    event_id: int
    before: str | None
    after: str | None
    limit: int
    ref: FrameId | None = None


Command = (
    Authenticate
    | Refresh
    | Subscribe
    | Unsubscribe
    | Send
    | Edit
    | Delete
    | React
    | Unreact
    | Typing
    | Read
    | History
)
"""Everything a session asks the service to do."""

_OP_NAMES: dict[type[Command], str] = {
    Edit: "edit",
    Delete: "delete",
    React: "react",
    Unreact: "unreact",
    Typing: "typing",
}

RATE_LIMITED_FRAMES = (SendFrame, EditFrame, DeleteFrame, ReactFrame, UnreactFrame)
"""The frames that write chat content, and so draw on the write buckets (the connection's and
the user's) besides the frame bucket every frame draws on."""

HELD_FRAMES = 64
"""Most frames held while authentication is pending (more get ``not_authenticated``)."""
HELD_BYTES = 256 * 1024
"""Most bytes of frame text held while authentication is pending."""

WriteQuota = Callable[[], int]
"""Takes one write from a bucket shared beyond the connection (the user's): 0 when granted,
else the milliseconds until one will be available."""

COMMAND_OVERHEAD_BYTES = 256
"""About what a queued command costs besides its strings (the object, its ids, its slot)."""

_CLOSE_ON_AUTH_FAILURE: dict[str, tuple[CloseCode, str]] = {
    ErrorCode.UNAVAILABLE: (CloseCode.TRY_AGAIN_LATER, "authentication is unavailable; retry"),
    ErrorCode.TOO_MANY_CONNECTIONS: (CloseCode.TOO_MANY_CONNECTIONS, "too many connections"),
}
"""How a failed authentication closes, by error code; anything else is 4401."""


def command_bytes(command: Command) -> int:
    """About the memory a command holds while it waits to run: its strings and an overhead.

    The adapter bounds the bytes of queued commands with it, not only their number (a ``send``
    can carry 64 KiB of text, attachments and metadata).
    """
    size = COMMAND_OVERHEAD_BYTES
    if isinstance(command, Send):
        size += sys.getsizeof(command.text)
        size += sum(sys.getsizeof(a) for a in command.attachments)
        size += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in command.metadata.items())
    elif isinstance(command, Edit):
        size += sys.getsizeof(command.text)
    elif isinstance(command, Authenticate | Refresh):
        size += sys.getsizeof(command.token)
    return size


# --------------------------------------------------------------------------- session


class Session:
    """One connection's protocol state: frames in, answers and commands out. No I/O.

    ``clock`` returns monotonic seconds (the adapter passes ``loop.time``; tests a fake);
    ``wall_clock`` Unix seconds, to turn a token's ``exp`` into a deadline of ``clock``.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        now = clock()
        self._state = State.AWAITING_AUTH
        self.close_code: CloseCode | None = None
        self.close_reason = ""
        self.user_id: int | None = None
        self.session_id: str | None = None
        self._frames: list[bytes] = []
        self._commands: list[Command] = []
        self._subscribed: set[int] = set()
        self._subscribing: set[int] = set()
        self._auth_pending = False
        self._auth_deadline = now + limits.auth_timeout_ms / 1000
        self._last_received = now
        self._last_ping = now
        self._bucket = TokenBucket(limits.send_rate_per_second, limits.send_burst, now)
        self._frame_bucket = TokenBucket(limits.frame_rate_per_second, limits.frame_burst, now)
        self._user_writes: WriteQuota | None = None
        self._held: list[client_frames.ClientFrame] = []
        self._held_bytes = 0
        self.expires_at: float | None = None
        """The token's ``exp`` (Unix seconds) once authenticated; the session ends then."""
        self._token_deadline = math.inf

    @property
    def state(self) -> State:
        return self._state

    def __repr__(self) -> str:
        return f"<Session {self.state.name} user={self.user_id} session={self.session_id}>"

    # ---------------------------------------------------------------- outputs

    def frames_to_send(self) -> list[bytes]:
        """Encoded frames for this client, in order; each call returns only new ones."""
        out, self._frames = self._frames, []
        return out

    def commands(self) -> list[Command]:
        """Work for the service, in the order it must be done; each call returns new ones."""
        out, self._commands = self._commands, []
        return out

    def frame_wait(self) -> float:
        """Seconds until the frame bucket has a token again (0: now). An adapter that can
        stop reading its socket does so for that long, so that a client sending faster than
        ``limits.frame_rate_per_second`` is slowed by TCP instead of answered
        ``rate_limited`` frame after frame."""
        bucket = self._frame_bucket
        tokens = bucket.tokens(self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / bucket.rate

    @property
    def subscriptions(self) -> frozenset[int]:
        """Events this connection is subscribed to (confirmed by ``subscribed``)."""
        return frozenset(self._subscribed)

    def next_deadline(self) -> float:
        """The clock time at which :meth:`tick` has something to do."""
        if self.state is State.AWAITING_AUTH:
            return self._auth_deadline
        if self.state is State.OPEN:
            return min(
                self._last_received + self.limits.idle_timeout_ms / 1000,
                self._last_ping + self.limits.heartbeat_ms / 1000,
                self._token_deadline,
            )
        return math.inf

    # ---------------------------------------------------------------- inputs from the socket

    def receive_text(self, text: str) -> None:
        """A text frame from the client. Never raises for anything the client can send."""
        if self._ignoring_input("receive a text frame"):
            return
        now = self._last_received = self._clock()
        if self._too_big(text):
            return
        retry_after_ms = self._frame_bucket.take(now)
        if retry_after_ms:
            kind, ref = client_frames.peek_frame(text)  # parsed only to answer under its `id`
            if kind != "pong":  # a pong never gets an answer
                self._frames.append(frames.refused(self._too_many_frames(retry_after_ms, ref)))
            return
        try:
            frame = client_frames.decode_client_frame(text)
            self._handle(frame, len(text))
        except FrameError as exc:
            self._frames.append(frames.refused(exc))

    def receive_bytes(self, data: bytes) -> None:
        """A binary frame: the protocol has none, so it gets an error (or 1009 if huge)."""
        if self._ignoring_input("receive a binary frame"):
            return
        now = self._last_received = self._clock()
        if len(data) > self.limits.max_frame_bytes:
            self._close_too_big(len(data))
            return
        retry_after_ms = self._frame_bucket.take(now)
        if retry_after_ms:
            self._frames.append(frames.refused(self._too_many_frames(retry_after_ms, None)))
            return
        self._frames.append(
            frames.error(
                ErrorCode.BINARY_NOT_SUPPORTED, "send JSON in text frames; binary frames are unused"
            )
        )

    def use_header_token(self, token: str) -> None:
        """The token came in the ``Authorization`` header of the upgrade request."""
        self._require(State.AWAITING_AUTH, "authenticate")
        if self._auth_pending:
            raise InvalidState("cannot authenticate twice: authentication is already pending")
        self._auth_pending = True
        self._commands.append(Authenticate(token))

    def tick(self) -> None:
        """Act on the clock: auth deadline, idle deadline, heartbeat pings."""
        if self.state >= State.CLOSING:
            return
        now = self._clock()
        if self.state is State.AWAITING_AUTH:
            if now >= self._auth_deadline:
                self._frames.append(
                    frames.error(ErrorCode.UNAUTHORIZED, "no valid token arrived in time")
                )
                self._start_closing(CloseCode.UNAUTHORIZED, "authentication timed out")
            return
        if now >= self._token_deadline:
            self._frames.append(
                frames.error(
                    ErrorCode.UNAUTHORIZED,
                    "the access token has expired; connect again with a new one "
                    "(send `refresh` with a new token before `expires_at` to stay connected)",
                )
            )
            self._start_closing(CloseCode.UNAUTHORIZED, "the access token expired")
            return
        if now - self._last_received >= self.limits.idle_timeout_ms / 1000:
            self._start_closing(CloseCode.IDLE_TIMEOUT, "no frame from the client in time")
            return
        if now - self._last_ping >= self.limits.heartbeat_ms / 1000:
            self._last_ping = now
            self._frames.append(frames.ping())

    def close(self, code: CloseCode = CloseCode.NORMAL, reason: str = "") -> None:
        """The server ends the session (shutdown 1001, too slow 4008, ...). Idempotent."""
        if self.state >= State.CLOSING:
            return
        self._start_closing(code, reason)

    def connection_closed(self) -> None:
        """The socket is gone (either side closed it); nothing more will be sent."""
        if self.close_code is None:
            self.close_code = CloseCode.NORMAL
        self._state = State.CLOSED
        self._commands.clear()

    # ---------------------------------------------------------------- answers from the service

    def authenticated(
        self,
        cmd: Authenticate,
        user_id: int,
        session_id: str,
        *,
        expires_at: float | None = None,
        user_writes: WriteQuota | None = None,
    ) -> None:
        """``expires_at``: the token's ``exp`` (Unix seconds; None: never). ``user_writes``:
        the user's write bucket, shared with their other connections."""
        if self._dropping_answer():
            return
        self._require(State.AWAITING_AUTH, "complete authentication")
        self._state = State.OPEN
        self.user_id = user_id
        self.session_id = session_id
        self._auth_pending = False
        self._user_writes = user_writes
        now = self._clock()
        self._last_ping = now
        self._expire_at(expires_at)
        self._frames.append(
            frames.welcome(
                user_id=user_id,
                session_id=session_id,
                limits=self.limits,
                expires_at=expires_at,
                ref=cmd.ref,
            )
        )
        held, self._held, self._held_bytes = self._held, [], 0
        for frame in held:
            try:
                self._handle_open(frame)
            except FrameError as exc:
                self._frames.append(frames.refused(exc))

    def refreshed(self, cmd: Refresh, expires_at: float | None) -> None:
        """A fresh token of the same user was accepted: the session now ends at its expiry."""
        if self._dropping_answer():
            return
        self._require(State.OPEN, "confirm a refresh")
        self._expire_at(expires_at)
        assert self.user_id is not None
        assert self.session_id is not None
        self._frames.append(
            frames.refreshed(
                user_id=self.user_id,
                session_id=self.session_id,
                expires_at=expires_at,
                ref=cmd.ref,
            )
        )

    def _expire_at(self, expires_at: float | None) -> None:
        self.expires_at = expires_at
        if expires_at is None:
            self._token_deadline = math.inf
        else:
            self._token_deadline = self._clock() + (expires_at - self._wall_clock())

    def subscribed(self, cmd: Subscribe, cursor: str | None) -> None:
        """The subscription is live; the replay (if any) is already queued before this."""
        if self._dropping_answer():
            return
        self._require(State.OPEN, "confirm a subscription")
        if cmd.event_id in self._subscribing:
            self._subscribing.discard(cmd.event_id)
            self._subscribed.add(cmd.event_id)
        self._frames.append(frames.subscribed(cmd.event_id, cursor, ref=cmd.ref))

    def unsubscribed(self, cmd: Unsubscribe) -> None:
        if self._dropping_answer():
            return
        self._require(State.OPEN, "confirm an unsubscription")
        self._frames.append(frames.unsubscribed(cmd.event_id, "requested", ref=cmd.ref))

    def subscription_ended(
        self, event_id: int, reason: Literal["removed", "resync"] = "removed"
    ) -> None:
        """The subscription ended without the client asking (``removed`` from the event, or
        ``resync``: live delivery was interrupted); tell the client."""
        if self._dropping_answer():
            return
        self._require(State.OPEN, "end a subscription")
        if event_id in self._subscribed or event_id in self._subscribing:
            self._subscribed.discard(event_id)
            self._subscribing.discard(event_id)
            self._frames.append(frames.unsubscribed(event_id, reason))

    def acked(self, cmd: Send, send_ack: SendAck) -> None:
        """The message is durable (or was already: ``send_ack.duplicate``)."""
        if self._dropping_answer():
            return
        self._require(State.OPEN, "acknowledge a send")
        self._frames.append(frames.ack(cmd.client_msg_id, send_ack, ref=cmd.ref))

    def done(self, cmd: Edit | Delete | React | Unreact | Typing) -> None:
        if self._dropping_answer():
            return
        self._require(State.OPEN, "confirm a request")
        self._frames.append(frames.ok(_OP_NAMES[type(cmd)], ref=cmd.ref))

    def read_done(self, cmd: Read, unread_count: int) -> None:
        if self._dropping_answer():
            return
        self._require(State.OPEN, "confirm a read")
        self._frames.append(frames.unread(cmd.event_id, unread_count, ref=cmd.ref))

    def history_page(
        self, cmd: History, messages: Iterable[Message], next_cursor: str | None
    ) -> None:
        if self._dropping_answer():
            return
        self._require(State.OPEN, "answer a history request")
        self._frames.append(frames.history(cmd.event_id, messages, next_cursor, ref=cmd.ref))

    def failed(self, cmd: Command, error: ChatError) -> None:
        """The service refused or could not do ``cmd``; the client hears ``error.code``.

        A failed authentication ends the session: 4401, or 1013 when the service could not
        check the token (``unavailable``: the token may be good), or 4429 for one connection
        too many. A failed refresh ends it with 4401 unless the service was unavailable (the
        current token is still good). Anything else leaves it usable.
        """
        if self._dropping_answer():
            return
        if isinstance(cmd, Subscribe):
            self._subscribing.discard(cmd.event_id)
        self._frames.append(frames.error_from(error, ref=cmd.ref))
        if isinstance(cmd, Authenticate):
            self._auth_pending = False
            self._held, self._held_bytes = [], 0
            code, reason = _CLOSE_ON_AUTH_FAILURE.get(
                error.code, (CloseCode.UNAUTHORIZED, "authentication failed")
            )
            self._start_closing(code, reason)
        elif isinstance(cmd, Refresh) and error.code != ErrorCode.UNAVAILABLE:
            self._start_closing(CloseCode.UNAUTHORIZED, "the refresh token was rejected")

    # ---------------------------------------------------------------- internals

    def _handle(self, frame: client_frames.ClientFrame, size: int) -> None:
        if isinstance(frame, Ping):
            self._frames.append(frames.pong(ref=frame.id))
            return
        if isinstance(frame, Pong):
            return
        if isinstance(frame, Hello):
            if self.state is not State.AWAITING_AUTH or self._auth_pending:
                raise FrameError(
                    ErrorCode.ALREADY_AUTHENTICATED,
                    "this connection has already authenticated (or is authenticating)",
                    ref=frame.id,
                )
            self._auth_pending = True
            self._commands.append(Authenticate(frame.token, frame.id))
            return
        if self.state is not State.OPEN:
            if self._auth_pending:
                self._hold(frame, size)
                return
            raise FrameError(
                ErrorCode.NOT_AUTHENTICATED,
                f"send `hello` with a token first; `{frame.type}` needs an authenticated session",
                ref=frame.id,
            )
        self._handle_open(frame)

    def _hold(self, frame: client_frames.ClientFrame, size: int) -> None:
        """Keep a frame that arrived while authentication is pending, for after ``welcome``."""
        if len(self._held) >= HELD_FRAMES or self._held_bytes + size > HELD_BYTES:
            raise FrameError(
                ErrorCode.NOT_AUTHENTICATED,
                f"at most {HELD_FRAMES} frames ({HELD_BYTES // 1024} KiB) are held while "
                f"authentication is pending; wait for `welcome` before sending `{frame.type}`",
                ref=frame.id,
            )
        self._held.append(frame)
        self._held_bytes += size

    def _handle_open(self, frame: client_frames.ClientFrame) -> None:
        if isinstance(frame, RATE_LIMITED_FRAMES):
            now = self._clock()
            # The connection's token is taken only once the user's was granted: a write
            # refused by one bucket costs the other nothing.
            tokens = self._bucket.tokens(now)
            if tokens < 1.0:
                retry_after_ms = max(1, math.ceil((1.0 - tokens) / self._bucket.rate * 1000))
                raise FrameError(
                    ErrorCode.RATE_LIMITED,
                    f"too many writes; at most {self.limits.send_rate_per_second:g} per second "
                    f"(bursts of {self.limits.send_burst}); retry in {retry_after_ms} ms",
                    ref=frame.id,
                    retry_after_ms=retry_after_ms,
                )
            if self._user_writes is not None and (retry_after_ms := self._user_writes()):
                raise FrameError(
                    ErrorCode.RATE_LIMITED,
                    "too many writes from all your connections together; at most "
                    f"{self.limits.user_send_rate_per_second:g} per second (bursts of "
                    f"{self.limits.user_send_burst}); retry in {retry_after_ms} ms",
                    ref=frame.id,
                    retry_after_ms=retry_after_ms,
                )
            self._bucket.take(now)
        client_frames.check_limits(frame, self.limits)
        self._commands.append(self._command_for(frame))

    def _too_many_frames(self, retry_after_ms: int, ref: FrameId | None) -> FrameError:
        return FrameError(
            ErrorCode.RATE_LIMITED,
            f"too many frames; at most {self.limits.frame_rate_per_second:g} per second "
            f"(bursts of {self.limits.frame_burst}); retry in {retry_after_ms} ms",
            ref=ref,
            retry_after_ms=retry_after_ms,
        )

    def _command_for(self, frame: client_frames.ClientFrame) -> Command:
        ref = frame.id
        if isinstance(frame, RefreshFrame):
            return Refresh(frame.token, ref)
        if isinstance(frame, SubscribeFrame):
            event_id = frame.event_id
            if event_id in self._subscribed or event_id in self._subscribing:
                raise FrameError(
                    ErrorCode.ALREADY_SUBSCRIBED,
                    f"already subscribed to event {event_id}; unsubscribe first to resubscribe",
                    ref=ref,
                    field="event_id",
                )
            if len(self._subscribed) + len(self._subscribing) >= self.limits.max_subscriptions:
                raise FrameError(
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"at most {self.limits.max_subscriptions} subscriptions per connection; "
                    "unsubscribe from one first",
                    ref=ref,
                )
            self._subscribing.add(event_id)
            return Subscribe(event_id, frame.since, ref)
        if isinstance(frame, UnsubscribeFrame):
            event_id = frame.event_id
            if event_id not in self._subscribed and event_id not in self._subscribing:
                raise FrameError(
                    ErrorCode.NOT_SUBSCRIBED,
                    f"not subscribed to event {event_id}",
                    ref=ref,
                    field="event_id",
                )
            self._subscribed.discard(event_id)
            self._subscribing.discard(event_id)
            return Unsubscribe(event_id, ref)
        if isinstance(frame, SendFrame):
            return Send(
                event_id=frame.event_id,
                client_msg_id=frame.client_msg_id,
                text=frame.text,
                message_type=frame.message_type,
                attachments=tuple(frame.attachments),
                reply_to=frame.reply_to,
                metadata=dict(frame.metadata),
                ref=ref,
            )
        if isinstance(frame, EditFrame):
            return Edit(frame.event_id, frame.message_id, frame.text, ref)
        if isinstance(frame, DeleteFrame):
            return Delete(frame.event_id, frame.message_id, ref)
        if isinstance(frame, ReactFrame):
            return React(frame.event_id, frame.message_id, frame.emoji, ref)
        if isinstance(frame, UnreactFrame):
            return Unreact(frame.event_id, frame.message_id, frame.emoji, ref)
        if isinstance(frame, TypingFrame):
            return Typing(frame.event_id, frame.state, ref)
        if isinstance(frame, ReadFrame):
            return Read(frame.event_id, frame.message_id, ref)
        if isinstance(frame, HistoryFrame):
            return History(frame.event_id, frame.before, frame.after, frame.limit, ref)
        raise AssertionError(f"no command for frame type {frame.type!r}")  # pragma: no cover

    def _too_big(self, text: str) -> bool:
        limit = self.limits.max_frame_bytes
        if len(text) * 4 <= limit:  # the common case: cannot be too big, skip encoding
            return False
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            self._close_too_big(size)
            return True
        return False

    def _close_too_big(self, size: int) -> None:
        self._start_closing(
            CloseCode.MESSAGE_TOO_BIG,
            f"frame of {size} bytes; at most {self.limits.max_frame_bytes}",
        )

    def _start_closing(self, code: CloseCode, reason: str) -> None:
        self._state = State.CLOSING
        self.close_code = code
        self.close_reason = reason
        self._commands.clear()

    def _ignoring_input(self, action: str) -> bool:
        if self.state is State.CLOSED:
            raise InvalidState(f"cannot {action}: the session is CLOSED")
        # Like a WebSocket after sending its close frame: late client frames are discarded.
        return self.state is State.CLOSING

    def _dropping_answer(self) -> bool:
        return self.state >= State.CLOSING

    def _require(self, state: State, action: str) -> None:
        if self.state is not state:
            raise InvalidState(
                f"cannot {action}: the session is {self.state.name}, not {state.name}"
            )
