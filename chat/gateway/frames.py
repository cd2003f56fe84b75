"""The gateway's wire format: client frames in, server frames out, error and close codes.

Every frame is one JSON object in one WebSocket text frame, with a ``type``. Client frames are
pydantic models validated *strictly* (``"5"`` is not an event id, ``true`` is not an integer;
an integral number written ``7.0`` is 7, as JSON Schema and the REST API read it) with unknown
fields rejected, because a mobile client that sends a typo should hear about it
at once rather than have a field silently ignored. Decoding never raises anything but
:class:`FrameError`, which carries the :class:`ErrorCode` to answer with and, when the frame
had a usable ``id``, the ``ref`` to answer it under — so a broken frame still gets an answer
the client can match to its request.

Limits that depend on settings (text length, attachments) are not in the models — the models
are the static schema, shared by every connection and by the docs — but are checked by
:func:`check_limits` against a :class:`Limits` built once from the settings.

Server frames are built by small functions that return the encoded bytes (orjson), so the hub
can encode a fan-out frame once and hand the same bytes to every recipient.

Nothing here does I/O. See ``docs/protocol.md`` for the protocol as clients see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, cast

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic_core import ErrorDetails

from chat.config import Settings
from chat.domain.messages import (
    CLIENT_MSG_ID_PATTERN,
    Message,
    MessageType,
    SendAck,
    decode_cursor,
    encode_cursor,
)
from chat.domain.numbers import integral
from chat.errors import ChatError

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 100
MAX_FRAME_ID_CHARS = 64
MAX_TOKEN_CHARS = 8192
MAX_EMOJI_CHARS = 32
_MAX_ID = 2**63 - 1


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame. Stable: clients branch on these, never on messages.

    The first group means the frame itself was wrong (fix the client); the second means the
    frame was fine but not allowed now; the third comes from the service (see ``chat.errors``).
    None of them closes the connection except ``unauthorized`` during authentication.
    """

    # The frame is broken.
    MALFORMED_JSON = "malformed_json"
    """The text frame is not valid JSON (or not valid UTF-8)."""
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    """A binary WebSocket frame arrived; the protocol uses text frames only."""
    INVALID_FRAME = "invalid_frame"
    """The JSON value is not an object, or its ``id`` is neither a string nor an integer."""
    UNKNOWN_TYPE = "unknown_type"
    """The ``type`` names no client frame."""
    MISSING_FIELD = "missing_field"
    """A required field (named in ``field``) is absent."""
    UNKNOWN_FIELD = "unknown_field"
    """The frame has a field (named in ``field``) that its type does not define."""
    WRONG_TYPE = "wrong_type"
    """A field has the wrong JSON type, e.g. a string where an integer belongs."""
    INVALID_VALUE = "invalid_value"
    """A field has the right type but a value out of range or of the wrong form."""
    # The frame is well-formed but not allowed now.
    NOT_AUTHENTICATED = "not_authenticated"
    """Only ``hello``, ``ping`` and ``pong`` are allowed before ``welcome``."""
    ALREADY_AUTHENTICATED = "already_authenticated"
    """A ``hello`` arrived after authentication had started or finished."""
    RATE_LIMITED = "rate_limited"
    """Too many frames, or too many writes (of the connection or of the user); the frame was
    not acted on and ``retry_after_ms`` says when the next one will be accepted."""
    TOO_MANY_CONNECTIONS = "too_many_connections"
    """The user already has ``limits.max_connections_per_user`` connections open on this
    server; the connection closes with 4429."""
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    """The connection already has ``limits.max_subscriptions`` subscriptions."""
    ALREADY_SUBSCRIBED = "already_subscribed"
    """The connection is already subscribed (or subscribing) to that event."""
    NOT_SUBSCRIBED = "not_subscribed"
    """``unsubscribe`` for an event the connection is not subscribed to."""
    TEXT_TOO_LONG = "text_too_long"
    """``text`` is longer than ``limits.max_text_chars`` characters."""
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    """More than ``limits.max_attachments`` attachments."""
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    """One attachment reference is longer than ``limits.max_attachment_bytes`` UTF-8 bytes."""
    # From the service (the ChatError codes).
    UNAUTHORIZED = "unauthorized"
    """The token is missing, invalid or expired; the connection closes with 4401."""
    FORBIDDEN = "forbidden"
    """The user may not do this (e.g. edit someone else's message)."""
    NOT_FOUND = "not_found"
    """No such event or message — also what a non-participant hears about an event."""
    VALIDATION_FAILED = "validation_failed"
    """The service's rules rejected the content; ``errors`` lists each field."""
    CONFLICT = "conflict"
    """E.g. a ``client_msg_id`` reused with different content."""
    UNAVAILABLE = "unavailable"
    """The store is overloaded or down; retry later with the same ``client_msg_id``."""
    INTERNAL_ERROR = "internal_error"
    """A server bug; nothing internal is disclosed. Retrying may work."""


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses, and why."""

    NORMAL = 1000
    """The client or the server ended the session normally."""
    GOING_AWAY = 1001
    """The server is shutting down; reconnect and resume from your cursors."""
    MESSAGE_TOO_BIG = 1009
    """A frame exceeded ``limits.max_frame_bytes``."""
    INTERNAL_ERROR = 1011
    """A server bug; nothing internal is disclosed. Reconnect and resume."""
    TRY_AGAIN_LATER = 1013
    """Authentication could not be checked (the database is unavailable); the token may well
    be good: reconnect with it after a delay."""
    TOO_SLOW = 4008
    """The client fell too far behind its outgoing queue; reconnect and resume from the cursor."""
    UNAUTHORIZED = 4401
    """No valid token within ``limits.auth_timeout_ms``, the token was rejected, or it expired
    while the connection was open."""
    IDLE_TIMEOUT = 4408
    """Nothing was received from the client for ``limits.idle_timeout_ms``."""
    TOO_MANY_CONNECTIONS = 4429
    """The user already has ``limits.max_connections_per_user`` connections on this server."""


@with_config(ConfigDict(json_schema_extra={"additionalProperties": False}))
@dataclass(frozen=True, slots=True)
class Limits:
    """Every per-connection limit, as the client sees it in ``welcome.limits``."""

    max_frame_bytes: int
    send_rate_per_second: float
    send_burst: int
    max_subscriptions: int
    max_text_chars: int
    max_attachments: int
    max_attachment_bytes: int
    heartbeat_ms: int
    idle_timeout_ms: int
    auth_timeout_ms: int
    outgoing_queue_size: int
    outgoing_queue_bytes: int
    write_stall_ms: int
    frame_rate_per_second: float
    frame_burst: int
    max_connections_per_user: int
    user_send_rate_per_second: float
    user_send_burst: int
    history_max_limit: int = HISTORY_MAX_LIMIT

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_frame_bytes=settings.ws_max_frame_bytes,
            send_rate_per_second=settings.ws_send_rate_per_second,
            send_burst=settings.ws_send_burst,
            max_subscriptions=settings.ws_max_subscriptions,
            max_text_chars=settings.ws_max_text_chars,
            max_attachments=settings.ws_max_attachments,
            max_attachment_bytes=settings.ws_max_attachment_bytes,
            heartbeat_ms=settings.ws_heartbeat_ms,
            idle_timeout_ms=settings.ws_idle_timeout_ms,
            auth_timeout_ms=settings.ws_auth_timeout_ms,
            outgoing_queue_size=settings.ws_outgoing_queue_size,
            outgoing_queue_bytes=settings.ws_outgoing_queue_bytes,
            write_stall_ms=settings.ws_write_stall_ms,
            frame_rate_per_second=settings.ws_frame_rate_per_second,
            frame_burst=settings.ws_frame_burst,
            max_connections_per_user=settings.ws_max_connections_per_user,
            user_send_rate_per_second=settings.ws_user_send_rate_per_second,
            user_send_burst=settings.ws_user_send_burst,
        )

    def as_dict(self) -> dict[str, int | float]:
        return asdict(self)


# --------------------------------------------------------------------------- client frames

FrameId = int | str
"""A client-chosen request id, echoed as ``ref`` on the direct answer."""


def _uuid_from_text(value: object) -> object:
    # Strict mode accepts no str for UUID from Python objects; JSON carries ids as strings.
    # Non-strings pass through so that strict validation reports them as wrong_type.
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ValueError("must be a UUID string") from None
    return value


def _require_message_id(value: uuid.UUID) -> uuid.UUID:
    if value.version != 1:
        raise ValueError("must be a message id (a time-based UUID)")
    return value


def _require_cursor(value: str) -> str:
    try:
        decode_cursor(value)
    except ChatError:
        raise ValueError("must be a cursor this service issued, unchanged") from None
    return value


EventId = Annotated[int, BeforeValidator(integral), Field(gt=0, le=_MAX_ID)]
MessageId = Annotated[
    uuid.UUID, BeforeValidator(_uuid_from_text), AfterValidator(_require_message_id)
]
Cursor = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_require_cursor)]


class _ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: (
        Annotated[int, BeforeValidator(integral), Field(ge=-_MAX_ID - 1, le=_MAX_ID)]
        | Annotated[str, Field(min_length=1, max_length=MAX_FRAME_ID_CHARS)]
        | None
    ) = None


class Hello(_ClientFrame):
    """Authenticate with an access token (instead of an ``Authorization`` header)."""

    type: Literal["hello"]
    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]


class RefreshFrame(_ClientFrame):
    """Extend the session with a fresh access token of the same user before the current one
    expires; answered with ``refreshed``."""

    type: Literal["refresh"]
    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]


class Ping(_ClientFrame):
    """Ask for a ``pong``; also proves the client is alive."""

    type: Literal["ping"]


class Pong(_ClientFrame):
    """The answer to a server ``ping``; needs no answer."""

    type: Literal["pong"]


class SubscribeFrame(_ClientFrame):
    """Start receiving an event's frames; with ``since``, replay what came after that cursor."""

    type: Literal["subscribe"]
    event_id: EventId
    since: Cursor | None = None


class UnsubscribeFrame(_ClientFrame):
    """Stop receiving an event's frames."""

    type: Literal["unsubscribe"]
    event_id: EventId


class SendFrame(_ClientFrame):
    """Post a message; ``client_msg_id`` makes retries safe."""

    type: Literal["send"]
    event_id: EventId
    client_msg_id: Annotated[str, Field(pattern=f"^(?:{CLIENT_MSG_ID_PATTERN.pattern})$")]
    text: str = ""
    message_type: MessageType = "text"
    attachments: list[str] = Field(default_factory=list)
    reply_to: MessageId | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class EditFrame(_ClientFrame):
    """Replace the text of one of your messages; everyone gets ``message_updated``."""

    type: Literal["edit"]
    event_id: EventId
    message_id: MessageId
    text: str


class DeleteFrame(_ClientFrame):
    """Delete a message (your own; the event's creator may delete any)."""

    type: Literal["delete"]
    event_id: EventId
    message_id: MessageId


class ReactFrame(_ClientFrame):
    """Add a reaction to a message; everyone gets ``reaction``."""

    type: Literal["react"]
    event_id: EventId
    message_id: MessageId
    emoji: Annotated[str, Field(min_length=1, max_length=MAX_EMOJI_CHARS)]


class UnreactFrame(_ClientFrame):
    """Remove your reaction from a message."""

    type: Literal["unreact"]
    event_id: EventId
    message_id: MessageId
    emoji: Annotated[str, Field(min_length=1, max_length=MAX_EMOJI_CHARS)]


class TypingFrame(_ClientFrame):
    """Show (``start``) or clear (``stop``) your typing indicator."""

    type: Literal["typing"]
    event_id: EventId
    state: Literal["start", "stop"]


class ReadFrame(_ClientFrame):
    """The user has read up to and including ``message_id``."""

    type: Literal["read"]
    event_id: EventId
    message_id: MessageId


class HistoryFrame(_ClientFrame):
    """A page of older (``before``) or newer (``after``) messages; neither means the latest."""

    type: Literal["history"]
    event_id: EventId
    before: Cursor | None = None
    after: Cursor | None = None
    limit: Annotated[int, BeforeValidator(integral), Field(ge=1, le=HISTORY_MAX_LIMIT)] = (
        HISTORY_DEFAULT_LIMIT
    )

    @model_validator(mode="after")
    def _one_direction(self) -> HistoryFrame:
        if self.before is not None and self.after is not None:
            raise ValueError("give `before` or `after`, not both")
        return self


ClientFrame = Annotated[
    Hello
    | RefreshFrame
    | Ping
    | Pong
    | SubscribeFrame
    | UnsubscribeFrame
    | SendFrame
    | EditFrame
    | DeleteFrame
    | ReactFrame
    | UnreactFrame
    | TypingFrame
    | ReadFrame
    | HistoryFrame,
    Field(discriminator="type"),
]
"""Every client frame, discriminated on ``type``."""

CLIENT_FRAMES: Mapping[str, type[_ClientFrame]] = {
    "hello": Hello,
    "refresh": RefreshFrame,
    "ping": Ping,
    "pong": Pong,
    "subscribe": SubscribeFrame,
    "unsubscribe": UnsubscribeFrame,
    "send": SendFrame,
    "edit": EditFrame,
    "delete": DeleteFrame,
    "react": ReactFrame,
    "unreact": UnreactFrame,
    "typing": TypingFrame,
    "read": ReadFrame,
    "history": HistoryFrame,
}


class FrameError(Exception):
    """A client frame that cannot be acted on; becomes one ``error`` frame, never a close."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        ref: FrameId | None = None,
        field: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.field = field
        self.retry_after_ms = retry_after_ms

    def to_frame(self) -> bytes:
        return error(
            self.code,
            self.message,
            ref=self.ref,
            field=self.field,
            retry_after_ms=self.retry_after_ms,
        )


def decode_client_frame(text: str | bytes) -> ClientFrame:
    """Parse and validate one client frame; raises :class:`FrameError` and nothing else."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorCode.MALFORMED_JSON, f"the frame is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise FrameError(ErrorCode.INVALID_FRAME, "a frame must be a JSON object with a `type`")
    ref = _usable_ref(raw.get("id"))
    if "id" in raw and raw["id"] is not None and ref is None:
        raise FrameError(
            ErrorCode.INVALID_FRAME,
            f"`id` must be an integer or a string of 1-{MAX_FRAME_ID_CHARS} characters",
            field="id",
        )
    kind = raw.get("type")
    if kind is None:
        raise FrameError(ErrorCode.MISSING_FIELD, "the frame needs a `type`", ref=ref, field="type")
    if not isinstance(kind, str):
        raise FrameError(ErrorCode.WRONG_TYPE, "`type` must be a string", ref=ref, field="type")
    model = CLIENT_FRAMES.get(kind)
    if model is None:
        known = ", ".join(CLIENT_FRAMES)
        raise FrameError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown frame type {kind[:40]!r}; known types: {known}",
            ref=ref,
            field="type",
        )
    try:
        return cast(ClientFrame, model.model_validate(raw))
    except ValidationError as exc:
        raise _frame_error(exc.errors(include_url=False, include_input=False)[0], ref) from None


def peek_frame(text: str | bytes) -> tuple[str | None, FrameId | None]:
    """The ``type`` and usable ``id`` of a frame, without validating it (both None when it is
    not a JSON object): enough to answer a frame that is refused before it is looked at."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(raw, dict):
        return None, None
    kind = raw.get("type")
    return (kind if isinstance(kind, str) else None), _usable_ref(raw.get("id"))


def _usable_ref(value: object) -> FrameId | None:
    if isinstance(value, bool):
        return None
    value = integral(value)
    if isinstance(value, int) and -_MAX_ID - 1 <= value <= _MAX_ID:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_FRAME_ID_CHARS:
        return value
    return None


_WRONG_TYPE_ERRORS = frozenset(
    {
        "int_type",
        "float_type",
        "string_type",
        "bool_type",
        "list_type",
        "dict_type",
        "uuid_type",
        "none_required",
        "model_type",
        "is_instance_of",
    }
)


def _frame_error(detail: ErrorDetails, ref: FrameId | None) -> FrameError:
    # Union members (the ``id`` field) add their type name to ``loc``; keep only field names.
    loc = [str(part) for part in detail["loc"] if not _is_union_tag(part)]
    field = "/".join(loc) or None
    where = f"`{field}`" if field else "the frame"
    kind = detail["type"]
    if kind == "missing":
        return FrameError(ErrorCode.MISSING_FIELD, f"{where} is required", ref=ref, field=field)
    if kind == "extra_forbidden":
        return FrameError(
            ErrorCode.UNKNOWN_FIELD, f"{where} is not a field of this frame", ref=ref, field=field
        )
    if kind in _WRONG_TYPE_ERRORS:
        said = "must be a UUID string" if kind == "is_instance_of" else detail["msg"]
        return FrameError(ErrorCode.WRONG_TYPE, f"{where}: {said}", ref=ref, field=field)
    message = detail["msg"].removeprefix("Value error, ")
    return FrameError(ErrorCode.INVALID_VALUE, f"{where}: {message}", ref=ref, field=field)


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part in {"int", "str"} or part.startswith(("constrained-",)))


def check_limits(frame: _ClientFrame, limits: Limits) -> None:
    """Raise :class:`FrameError` when a frame breaks a size limit that comes from settings."""
    ref = frame.id
    if isinstance(frame, SendFrame | EditFrame) and len(frame.text) > limits.max_text_chars:
        raise FrameError(
            ErrorCode.TEXT_TOO_LONG,
            f"`text` is {len(frame.text)} characters; at most {limits.max_text_chars}",
            ref=ref,
            field="text",
        )
    if isinstance(frame, SendFrame):
        if len(frame.attachments) > limits.max_attachments:
            raise FrameError(
                ErrorCode.TOO_MANY_ATTACHMENTS,
                f"{len(frame.attachments)} attachments; at most {limits.max_attachments}",
                ref=ref,
                field="attachments",
            )
        for i, attachment in enumerate(frame.attachments):
            size = len(attachment.encode("utf-8", "surrogatepass"))
            if size > limits.max_attachment_bytes:
                raise FrameError(
                    ErrorCode.ATTACHMENT_TOO_LARGE,
                    f"attachment {i} is {size} bytes; at most {limits.max_attachment_bytes}",
                    ref=ref,
                    field=f"attachments/{i}",
                )


# --------------------------------------------------------------------------- server frames


def _encode(frame: dict[str, Any], ref: FrameId | None = None) -> bytes:
    if ref is not None:
        frame["ref"] = ref
    return orjson.dumps(frame)


def message_payload(message: Message) -> dict[str, Any]:
    """A message as clients see it, in ``message``, ``message_updated`` and ``history``.

    A deleted message keeps its place (id, time, sender) so threads and cursors stay intact,
    but its content is blanked: a deletion must not keep showing what was deleted.
    """
    deleted = message.is_deleted
    return {
        "event_id": message.event_id,
        "message_id": str(message.message_id),
        "cursor": encode_cursor(message.message_id),
        "created_at": message.created_at,
        "sender_id": message.sender_id,
        "sender_name": message.sender_name,
        "sender_profile_url": message.sender_profile_url,
        "client_msg_id": message.client_msg_id,
        "message_type": message.message_type,
        "text": "" if deleted else message.text,
        "attachments": [] if deleted else list(message.attachments),
        "metadata": {} if deleted else dict(message.metadata),
        "reply_to": None if message.reply_to is None else str(message.reply_to),
        "edited_at": message.edited_at,
        "is_deleted": deleted,
    }


def welcome(
    *,
    user_id: int,
    session_id: str,
    limits: Limits,
    expires_at: float | None = None,
    ref: FrameId | None = None,
) -> bytes:
    """``expires_at``: the token's ``exp`` (Unix seconds), when the session ends unless
    refreshed."""
    return _encode(
        {
            "type": "welcome",
            "user_id": user_id,
            "session_id": session_id,
            "expires_at": _timestamp(expires_at),
            "heartbeat_ms": limits.heartbeat_ms,
            "limits": limits.as_dict(),
        },
        ref,
    )


def refreshed(
    *, user_id: int, session_id: str, expires_at: float | None, ref: FrameId | None = None
) -> bytes:
    """The answer to ``refresh``: the session now lasts until the new token's ``exp``."""
    return _encode(
        {
            "type": "refreshed",
            "user_id": user_id,
            "session_id": session_id,
            "expires_at": _timestamp(expires_at),
        },
        ref,
    )


def _timestamp(unix_seconds: float | None) -> str | None:
    if unix_seconds is None:
        return None
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()


def subscribed(event_id: int, cursor: str | None, *, ref: FrameId | None = None) -> bytes:
    return _encode({"type": "subscribed", "event_id": event_id, "cursor": cursor}, ref)


def unsubscribed(
    event_id: int,
    reason: Literal["requested", "removed", "resync"],
    *,
    ref: FrameId | None = None,
) -> bytes:
    return _encode({"type": "unsubscribed", "event_id": event_id, "reason": reason}, ref)


def ack(client_msg_id: str, send_ack: SendAck, *, ref: FrameId | None = None) -> bytes:
    return _encode(
        {
            "type": "ack",
            "event_id": send_ack.event_id,
            "client_msg_id": client_msg_id,
            "message_id": str(send_ack.message_id),
            "cursor": encode_cursor(send_ack.message_id),
            "created_at": send_ack.created_at,
            "duplicate": send_ack.duplicate,
        },
        ref,
    )


def ok(op: str, *, ref: FrameId | None = None) -> bytes:
    """The direct answer to a request whose effect other frames describe (edit, react, ...)."""
    return _encode({"type": "ok", "op": op}, ref)


def message(msg: Message) -> bytes:
    return _encode({"type": "message", "event_id": msg.event_id, "message": message_payload(msg)})


def message_updated(msg: Message) -> bytes:
    return _encode(
        {"type": "message_updated", "event_id": msg.event_id, "message": message_payload(msg)}
    )


def reaction(
    *,
    event_id: int,
    message_id: uuid.UUID,
    user_id: int,
    emoji: str,
    action: Literal["add", "remove"],
    counts: Mapping[str, int],
) -> bytes:
    return _encode(
        {
            "type": "reaction",
            "event_id": event_id,
            "message_id": str(message_id),
            "user_id": user_id,
            "emoji": emoji,
            "action": action,
            "counts": dict(counts),
        }
    )


def typing(event_id: int, user_ids: Iterable[int]) -> bytes:
    return _encode({"type": "typing", "event_id": event_id, "user_ids": sorted(user_ids)})


def unread(event_id: int, count: int, *, ref: FrameId | None = None) -> bytes:
    return _encode({"type": "unread", "event_id": event_id, "count": count}, ref)


def presence(
    event_id: int,
    user_ids: Iterable[int],
    *,
    joined: Iterable[int] = (),
    left: Iterable[int] = (),
) -> bytes:
    return _encode(
        {
            "type": "presence",
            "event_id": event_id,
            "user_ids": sorted(user_ids),
            "joined": sorted(joined),
            "left": sorted(left),
        }
    )


def history(
    event_id: int,
    messages: Iterable[Message],
    next_cursor: str | None,
    *,
    ref: FrameId | None = None,
) -> bytes:
    return _encode(
        {
            "type": "history",
            "event_id": event_id,
            "messages": [message_payload(m) for m in messages],
            "next_cursor": next_cursor,
        },
        ref,
    )


def error(
    code: ErrorCode | str,
    message: str,
    *,
    ref: FrameId | None = None,
    field: str | None = None,
    retry_after_ms: int | None = None,
    errors: Iterable[Mapping[str, str]] = (),
) -> bytes:
    frame: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if field is not None:
        frame["field"] = field
    if retry_after_ms is not None:
        frame["retry_after_ms"] = retry_after_ms
    details = [dict(e) for e in errors]
    if details:
        frame["errors"] = details
    return _encode(frame, ref)


def error_from(exc: ChatError, *, ref: FrameId | None = None) -> bytes:
    """The ``error`` frame for a service error: its code, its detail, its field errors."""
    return error(exc.code, exc.detail, ref=ref, errors=[e.as_dict() for e in exc.errors])


def pong(*, ref: FrameId | None = None) -> bytes:
    return _encode({"type": "pong"}, ref)


def ping() -> bytes:
    """The server's heartbeat; the client answers with ``pong`` (any frame will do)."""
    return _PING


_PING = orjson.dumps({"type": "ping"})
