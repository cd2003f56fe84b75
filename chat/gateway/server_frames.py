"""The declarations of every frame the gateway sends: one pydantic model per ``type``.

The builders in :mod:`chat.gateway.frames` write these frames as plain dicts (the fan-out path
encodes each frame once, with no model in between); the models here say what those dicts hold.
They are the single description of the server's side of the protocol: the AsyncAPI document
(:mod:`chat.gateway.asyncapi`) is generated from them and from the client frame models, a test
checks every builder's output against that document, and the reference client
(:mod:`chat.client`) parses what it receives into them.

The models *ignore* fields they do not know, so a client built on them keeps working when a
newer server adds one; their JSON Schema still says ``additionalProperties: false``, because
that is what this version of the server sends. Fields that the server leaves out when they have
no value (``ref``, ``field``, ...) are optional and never null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from chat.config import Settings
from chat.domain.messages import encode_cursor
from chat.gateway.codes import ErrorCode
from chat.gateway.limits import Limits

EXAMPLE_MESSAGE_ID = "1b3e0c80-f5e1-11ef-8000-010000000001"
EXAMPLE_CURSOR = encode_cursor(uuid.UUID(EXAMPLE_MESSAGE_ID))
"""A cursor the gateway accepts, for the examples of the client and server frames."""
DEFAULT_LIMITS = Limits.from_settings(Settings.model_construct()).as_dict()
"""``welcome.limits`` with every setting at its default (not read from the environment)."""


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _omitted(description: str) -> Any:
    """A field the server leaves out when it has no value (so: optional, never null)."""
    return Field(None, description=description, json_schema_extra=_no_default)


Ref = Annotated[
    int | str | SkipJsonSchema[None],
    _omitted("The `id` of the client frame this frame answers; absent on pushed frames."),
]


class ServerFrame(BaseModel):
    """Base of the server frames: lenient when parsing, exact in the schema."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, json_schema_extra={"additionalProperties": False}
    )

    type: str


class ChatMessage(BaseModel):
    """A message as clients see it. A deleted message keeps its id, time and sender (threads
    and cursors stay intact) but is sent with empty ``text``, ``attachments`` and ``metadata``."""

    model_config = ServerFrame.model_config

    event_id: int
    message_id: uuid.UUID
    cursor: str = Field(description="Resume position just after this message (opaque).")
    created_at: datetime
    sender_id: int
    sender_name: str | None
    sender_profile_url: str | None
    client_msg_id: str
    message_type: Literal["text", "system", "image", "file"]
    text: str
    attachments: list[str]
    metadata: dict[str, str]
    reply_to: uuid.UUID | None
    edited_at: datetime | None
    is_deleted: bool


_EXAMPLE_MESSAGE: dict[str, Any] = {
    "event_id": 7,
    "message_id": EXAMPLE_MESSAGE_ID,
    "cursor": EXAMPLE_CURSOR,
    "created_at": "2025-03-01T09:30:00.123000+00:00",
    "sender_id": 5,
    "sender_name": "Bo",
    "sender_profile_url": None,
    "client_msg_id": "bo-17",
    "message_type": "text",
    "text": "see you at 10?",
    "attachments": [],
    "metadata": {},
    "reply_to": None,
    "edited_at": None,
    "is_deleted": False,
}


def _examples(*payloads: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"additionalProperties": False, "examples": [*payloads]})


class Welcome(ServerFrame):
    """Authentication succeeded: the session is open. Answers ``hello`` (or, with the token in
    the upgrade request, comes unasked as the first frame)."""

    model_config = _examples(
        {
            "type": "welcome",
            "ref": 1,
            "user_id": 42,
            "session_id": "3f2c9a1e",
            "expires_at": "2025-03-01T10:30:00+00:00",
            "heartbeat_ms": 20000,
            "limits": DEFAULT_LIMITS,
        }
    )

    type: Literal["welcome"]
    ref: Ref = None
    user_id: int
    session_id: str
    expires_at: datetime | None = Field(
        None, description="When the session ends unless refreshed (the token's `exp`); null: never."
    )
    heartbeat_ms: int
    limits: Limits


class Refreshed(ServerFrame):
    """The answer to ``refresh``: the session now lasts until the new token's ``exp``."""

    model_config = _examples(
        {
            "type": "refreshed",
            "ref": 9,
            "user_id": 42,
            "session_id": "3f2c9a1e",
            "expires_at": "2025-03-01T10:30:00+00:00",
        }
    )

    type: Literal["refreshed"]
    ref: Ref = None
    user_id: int
    session_id: str
    expires_at: datetime | None


class Subscribed(ServerFrame):
    """The subscription is live; any replay after ``since`` came before this frame."""

    model_config = _examples(
        {"type": "subscribed", "ref": 2, "event_id": 7, "cursor": EXAMPLE_CURSOR}
    )

    type: Literal["subscribed"]
    ref: Ref = None
    event_id: int
    cursor: str | None = Field(
        description=(
            "The newest message the client now has; when the event has none yet, a cursor of"
            " its beginning, so there is always one to resume from."
        )
    )


class Unsubscribed(ServerFrame):
    """The subscription ended: asked for (``requested``), the user was removed from the event
    (``removed``), or live delivery was interrupted (``resync``: subscribe again with
    ``since``)."""

    model_config = _examples(
        {"type": "unsubscribed", "ref": 8, "event_id": 7, "reason": "requested"}
    )

    type: Literal["unsubscribed"]
    ref: Ref = None
    event_id: int
    reason: Literal["requested", "removed", "resync"]


class Ack(ServerFrame):
    """The message is durable. A retried ``send`` gets the original ack with ``duplicate``."""

    model_config = _examples(
        {
            "type": "ack",
            "ref": 4,
            "event_id": 7,
            "client_msg_id": "ada-1",
            "message_id": EXAMPLE_MESSAGE_ID,
            "cursor": EXAMPLE_CURSOR,
            "created_at": "2025-03-01T09:31:02.004000+00:00",
            "duplicate": False,
        }
    )

    type: Literal["ack"]
    ref: Ref = None
    event_id: int
    client_msg_id: str
    message_id: uuid.UUID
    cursor: str
    created_at: datetime
    duplicate: bool


class Ok(ServerFrame):
    """The request was carried out; the frames pushed to the event describe its effect."""

    model_config = _examples({"type": "ok", "ref": 3, "op": "typing"})

    type: Literal["ok"]
    ref: Ref = None
    op: Literal["edit", "delete", "react", "unreact", "typing"]


class MessagePosted(ServerFrame):
    """A new message in a subscribed event (also to the sender's own connections)."""

    model_config = _examples({"type": "message", "event_id": 7, "message": _EXAMPLE_MESSAGE})

    type: Literal["message"]
    event_id: int
    message: ChatMessage


class MessageUpdated(ServerFrame):
    """A message was edited or deleted; ``message`` is its new state."""

    model_config = _examples(
        {
            "type": "message_updated",
            "event_id": 7,
            "message": _EXAMPLE_MESSAGE | {"edited_at": "2025-03-01T09:32:00+00:00"},
        }
    )

    type: Literal["message_updated"]
    event_id: int
    message: ChatMessage


class ReactionChanged(ServerFrame):
    """Someone added or removed a reaction; ``counts`` is the message's new tally."""

    model_config = _examples(
        {
            "type": "reaction",
            "event_id": 7,
            "message_id": EXAMPLE_MESSAGE_ID,
            "user_id": 42,
            "emoji": "👍",
            "action": "add",
            "counts": {"👍": 2},
        }
    )

    type: Literal["reaction"]
    event_id: int
    message_id: uuid.UUID
    user_id: int
    emoji: str
    action: Literal["add", "remove"]
    counts: dict[str, int]


class TypingChanged(ServerFrame):
    """Who is typing in the event now (sorted); sent to the event's other subscribers."""

    model_config = _examples({"type": "typing", "event_id": 7, "user_ids": [5]})

    type: Literal["typing"]
    event_id: int
    user_ids: list[int]


class UnreadCount(ServerFrame):
    """The user's unread count for the event: after ``subscribed``, on new messages, and as the
    answer to ``read``. A current value, not a delta."""

    model_config = _examples({"type": "unread", "event_id": 7, "count": 1})

    type: Literal["unread"]
    ref: Ref = None
    event_id: int
    count: int


class PresenceChanged(ServerFrame):
    """Who is connected and subscribed to the event, and who just joined or left."""

    model_config = _examples(
        {"type": "presence", "event_id": 7, "user_ids": [5, 42], "joined": [42], "left": []}
    )

    type: Literal["presence"]
    event_id: int
    user_ids: list[int]
    joined: list[int]
    left: list[int]


class HistoryPage(ServerFrame):
    """A page of messages: newest first, or oldest first when asked with ``after``."""

    model_config = _examples(
        {
            "type": "history",
            "ref": 7,
            "event_id": 7,
            "messages": [_EXAMPLE_MESSAGE],
            "next_cursor": None,
        }
    )

    type: Literal["history"]
    ref: Ref = None
    event_id: int
    messages: list[ChatMessage]
    next_cursor: str | None = Field(description="Pass as `before`/`after` for the next page.")


class FieldErrorDetail(BaseModel):
    model_config = ServerFrame.model_config

    field: str
    message: str


class ErrorFrame(ServerFrame):
    """A request failed (``ref`` names it), or the session is ending (``unauthorized``).
    Branch on ``code``, never on ``message``."""

    model_config = _examples(
        {
            "type": "error",
            "ref": 5,
            "code": "wrong_type",
            "field": "event_id",
            "message": "`event_id`: Input should be a valid integer",
        },
        {
            "type": "error",
            "ref": 9,
            "code": "rate_limited",
            "message": "too many writes; retry in 100 ms",
            "retry_after_ms": 100,
        },
    )

    type: Literal["error"]
    ref: Ref = None
    code: Annotated[str, Field(json_schema_extra={"enum": [code.value for code in ErrorCode]})]
    message: str
    field: Annotated[
        str | SkipJsonSchema[None],
        _omitted("The offending field, `/`-separated when nested (`attachments/2`)."),
    ] = None
    retry_after_ms: Annotated[
        int | SkipJsonSchema[None], _omitted("With `rate_limited`: when to try again.")
    ] = None
    errors: Annotated[
        list[FieldErrorDetail] | SkipJsonSchema[None],
        _omitted("With `validation_failed`: each field's problem."),
    ] = None


class ServerPong(ServerFrame):
    """The answer to a client ``ping``."""

    model_config = _examples({"type": "pong", "ref": "p1"})

    type: Literal["pong"]
    ref: Ref = None


class ServerPing(ServerFrame):
    """The heartbeat, every ``heartbeat_ms``: answer with ``pong`` (any frame will do)."""

    model_config = _examples({"type": "ping"})

    type: Literal["ping"]


SERVER_FRAMES: Mapping[str, type[ServerFrame]] = {
    "welcome": Welcome,
    "refreshed": Refreshed,
    "subscribed": Subscribed,
    "unsubscribed": Unsubscribed,
    "ack": Ack,
    "ok": Ok,
    "message": MessagePosted,
    "message_updated": MessageUpdated,
    "reaction": ReactionChanged,
    "typing": TypingChanged,
    "unread": UnreadCount,
    "presence": PresenceChanged,
    "history": HistoryPage,
    "error": ErrorFrame,
    "pong": ServerPong,
    "ping": ServerPing,
}
"""Every frame the gateway sends, by ``type``."""

ANSWERS: Mapping[str, tuple[str, ...]] = {
    "hello": ("welcome",),
    "refresh": ("refreshed",),
    "ping": ("pong",),
    "pong": (),
    "subscribe": ("subscribed",),
    "unsubscribe": ("unsubscribed",),
    "send": ("ack",),
    "edit": ("ok",),
    "delete": ("ok",),
    "react": ("ok",),
    "unreact": ("ok",),
    "typing": ("ok",),
    "read": ("unread",),
    "history": ("history",),
}
"""The direct answer to each client frame when it succeeds (any of them may get ``error``
instead; ``pong`` gets no answer)."""

PUSHED: tuple[str, ...] = (
    "welcome",
    "message",
    "message_updated",
    "reaction",
    "typing",
    "unread",
    "presence",
    "unsubscribed",
    "ping",
    "error",
)
"""Frames the gateway sends without a request: fan-out, heartbeats, the ``welcome`` of a
header-authenticated connection, ``unsubscribed`` when a subscription ends unasked, and an
``error`` before the session closes."""
