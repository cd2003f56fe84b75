"""Server frames out: one small function per frame, returning the encoded bytes (orjson).

The hub encodes a fan-out frame once and hands the same bytes to every recipient, so the
builders write plain dicts, with no model in between; :mod:`chat.gateway.server_frames`
declares what those dicts hold. Nothing here does I/O. See ``docs/protocol.md`` for the
protocol as clients see it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from chat.domain.messages import Message, SendAck, encode_cursor
from chat.errors import ChatError, FrameError
from chat.gateway.client_frames import FrameId
from chat.gateway.codes import ErrorCode
from chat.gateway.limits import Limits


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


def refused(exc: FrameError) -> bytes:
    """The ``error`` frame that answers a client frame the gateway cannot act on."""
    return error(
        exc.code, exc.message, ref=exc.ref, field=exc.field, retry_after_ms=exc.retry_after_ms
    )


def pong(*, ref: FrameId | None = None) -> bytes:
    return _encode({"type": "pong"}, ref)


def ping() -> bytes:
    """The server's heartbeat; the client answers with ``pong`` (any frame will do)."""
    return _PING


_PING = orjson.dumps({"type": "ping"})
