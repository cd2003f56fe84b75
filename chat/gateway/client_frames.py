"""Client frames in: the frame schema, its parsing, and the checks of the settings' limits.

Every frame is one JSON object in one WebSocket text frame, with a ``type``. Client frames are
pydantic models validated *strictly* (``"5"`` is not an event id, ``true`` is not an integer;
an integral number written ``7.0`` is 7, as JSON Schema and the REST API read it) with unknown
fields rejected, because a mobile client that sends a typo should hear about it
at once rather than have a field silently ignored. Decoding never raises anything but
:class:`~chat.errors.FrameError`, which carries the :class:`~chat.gateway.codes.ErrorCode` to
answer with and, when the frame had a usable ``id``, the ``ref`` to answer it under — so a
broken frame still gets an answer the client can match to its request.

Limits that depend on settings (text length, attachments) are not in the models — the models
are the static schema, shared by every connection and by the docs — but are checked by
:func:`check_limits` against a :class:`~chat.gateway.limits.Limits` built once from the
settings.

Nothing here does I/O. See ``docs/protocol.md`` for the protocol as clients see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Literal, cast

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from chat.domain.messages import CLIENT_MSG_ID_PATTERN, MessageType, decode_cursor
from chat.domain.numbers import integral
from chat.errors import ChatError, FrameError
from chat.gateway.codes import ErrorCode
from chat.gateway.limits import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, Limits

MAX_FRAME_ID_CHARS = 64
MAX_TOKEN_CHARS = 8192
MAX_EMOJI_CHARS = 32
_MAX_ID = 2**63 - 1

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
