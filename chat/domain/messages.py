"""Chat messages without I/O: ids, time buckets, cursors, and the rules a new message obeys.

A message's key is fixed the moment its id is chosen: the id is a version-1 (time-based) UUID
— a CQL ``timeuuid`` — and both ``created_at`` and the 10-day ``bucket`` of its partition are
derived from it. A retried send that reuses the id therefore writes exactly the same rows.

Ids are strictly increasing per process (two sends in the same 100 ns tick still get distinct,
ordered ids) so that ``(created_at, message_id)`` orders one process's messages in the order it
accepted them. The node field is random per process (not the MAC address), with the multicast
bit set as RFC 9562 asks of random nodes, so two processes never collide.

The clock is injectable (:class:`MessageIdGenerator`) so that tests can place messages on both
sides of a bucket boundary.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from chat.errors import FieldError, ValidationFailed

BUCKET_MS: int = 10 * 24 * 3600 * 1000
"""Width of a message partition in time (10 days), as in Discord's ``(channel_id, bucket)``."""

MessageType = Literal["text", "system", "image", "file"]
MESSAGE_TYPES: tuple[str, ...] = get_args(MessageType)

# Size limits. The text limit is in characters (what a user sees) and in UTF-8 bytes (what the
# store holds); the byte limit keeps a row well under ScyllaDB's large-cell warnings.
MAX_TEXT_CHARS = 4000
MAX_TEXT_BYTES = 16 * 1024
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_URL_CHARS = 2048
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1024
MAX_METADATA_BYTES = 4 * 1024
MAX_SENDER_NAME_CHARS = 200
MAX_PROFILE_URL_CHARS = 2048
CLIENT_MSG_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_URL_PATTERN = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")
_METADATA_KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]+")

# 100-ns intervals between the Gregorian epoch of UUIDv1 (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000
_TICKS_PER_MS = 10_000
_CURSOR_VERSION = b"\x01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_of(created_at_ms: int) -> int:
    """The partition bucket of a message created at ``created_at_ms`` (Unix milliseconds)."""
    return created_at_ms // BUCKET_MS


class MessageIdGenerator:
    """Strictly increasing timeuuids from a clock (``clock`` returns Unix nanoseconds).

    When the clock stands still or steps back (NTP), the next id is one 100-ns tick after the
    last one, so ids never repeat and never go backwards within the process.
    """

    def __init__(
        self,
        clock: Callable[[], int] = time.time_ns,
        *,
        node: int | None = None,
        clock_seq: int | None = None,
    ) -> None:
        self._clock = clock
        self._node = (secrets.randbits(48) | (1 << 40)) if node is None else node
        self._clock_seq = secrets.randbits(14) if clock_seq is None else clock_seq
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> uuid.UUID:
        """A new id, later than every id this generator returned before."""
        return self.next_with_ms()[0]

    def next_with_ms(self) -> tuple[uuid.UUID, int]:
        """A new id and its :func:`created_at_ms_of`, without decoding the id again."""
        with self._lock:
            ticks = self._clock() // 100 + _UUID_EPOCH_OFFSET
            if ticks <= self._last:
                ticks = self._last + 1
            self._last = ticks
        return (
            _timeuuid(ticks, self._clock_seq, self._node),
            (ticks - _UUID_EPOCH_OFFSET) // _TICKS_PER_MS,
        )

    def floor_ticks(self) -> int:
        """A promise, in 100-ns ticks: every id returned from now on has a later timestamp.

        Every id returned so far has this timestamp or an earlier one. Nodes publish the
        promise so that others know no message of theirs can appear below it (the cross-node
        order, ``chat/bus/order.py``); keeping it costs at most one tick of the clock.
        """
        with self._lock:
            ticks = max(self._clock() // 100 + _UUID_EPOCH_OFFSET, self._last)
            self._last = ticks
        return ticks


def _timeuuid(ticks: int, clock_seq: int, node: int) -> uuid.UUID:
    # The 128-bit value assembled directly (version 1, RFC 4122 variant): the same UUID that
    # ``uuid.UUID(fields=...)`` builds, at a third of the cost — this runs once per send.
    time_low = ticks & 0xFFFFFFFF
    time_mid = (ticks >> 32) & 0xFFFF
    time_hi_version = ((ticks >> 48) & 0x0FFF) | 0x1000
    seq = (((clock_seq >> 8) & 0x3F) | 0x80) << 8 | (clock_seq & 0xFF)
    return uuid.UUID(
        int=(time_low << 96) | (time_mid << 80) | (time_hi_version << 64) | (seq << 48) | node
    )


_default_generator = MessageIdGenerator()


def new_message_id() -> uuid.UUID:
    """A new timeuuid from the wall clock, strictly increasing within this process."""
    return _default_generator.next()


def default_id_floor_ticks() -> int:
    """:meth:`MessageIdGenerator.floor_ticks` of the generator behind :func:`new_message_id`."""
    return _default_generator.floor_ticks()


def ms_of_ticks(ticks: int) -> int:
    """Unix milliseconds of a timeuuid timestamp in 100-ns ticks since 1582 (``uuid.time``)."""
    return (ticks - _UUID_EPOCH_OFFSET) // _TICKS_PER_MS


def created_at_ms_of(message_id: uuid.UUID) -> int:
    """Unix milliseconds of a timeuuid (truncated, as a CQL ``timestamp`` holds it)."""
    if message_id.version != 1:
        raise ValueError(f"{message_id} is not a time-based (version 1) UUID")
    return (message_id.time - _UUID_EPOCH_OFFSET) // _TICKS_PER_MS


def first_tick_of_ms(created_at_ms: int) -> int:
    """The first 100-ns timeuuid tick of a Unix millisecond."""
    return created_at_ms * _TICKS_PER_MS + _UUID_EPOCH_OFFSET


def created_at_us_of(message_id: uuid.UUID) -> int:
    """Unix microseconds of a timeuuid (its 100-ns ticks truncated)."""
    if message_id.version != 1:
        raise ValueError(f"{message_id} is not a time-based (version 1) UUID")
    return (message_id.time - _UUID_EPOCH_OFFSET) // 10


def created_at_of(message_id: uuid.UUID) -> datetime:
    """The message's creation time: UTC, millisecond precision, derived from its id."""
    return datetime_from_ms(created_at_ms_of(message_id))


def datetime_from_ms(ms: int) -> datetime:
    """A UTC datetime from Unix milliseconds, exactly (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)  # integer arithmetic: exact, and cheap


def ms_of(when: datetime) -> int:
    """Unix milliseconds of an aware datetime (naive ones are taken as UTC, as the driver does)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def message_id_at(created_at_ms: int, *, clock_seq: int = 0, node: int = 0) -> uuid.UUID:
    """A deterministic timeuuid for a given millisecond (tests, and range bounds)."""
    return _timeuuid(created_at_ms * _TICKS_PER_MS + _UUID_EPOCH_OFFSET, clock_seq, node)


def encode_cursor(message_id: uuid.UUID) -> str:
    """An opaque paging cursor naming a message (clients must not parse it)."""
    return base64.urlsafe_b64encode(_CURSOR_VERSION + message_id.bytes).rstrip(b"=").decode()


def decode_cursor(text: str) -> uuid.UUID:
    """The message id inside a cursor from :func:`encode_cursor`; ValidationFailed on junk."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 17 and raw[:1] == _CURSOR_VERSION:
        message_id = uuid.UUID(bytes=raw[1:])
        if message_id.version == 1:
            return message_id
    raise ValidationFailed(
        "the cursor is not one this service issued; pass back a next_cursor value unchanged",
        errors=[FieldError("cursor", "invalid cursor")],
    )


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What a sender asks to post; ``client_msg_id`` makes the send idempotent."""

    event_id: int
    sender_id: int
    client_msg_id: str
    text: str
    message_type: MessageType = "text"
    attachments: tuple[str, ...] = ()
    reply_to: uuid.UUID | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    sender_name: str | None = None
    sender_profile_url: str | None = None

    def stored(self, ack: SendAck) -> Message:
        """The message as readers see it once the store acknowledged it with ``ack``."""
        return Message(
            event_id=self.event_id,
            message_id=ack.message_id,
            created_at=ack.created_at,
            sender_id=self.sender_id,
            sender_name=self.sender_name,
            sender_profile_url=self.sender_profile_url,
            client_msg_id=self.client_msg_id,
            text=self.text,
            message_type=self.message_type,
            attachments=self.attachments,
            reply_to=self.reply_to,
            edited_at=None,
            is_deleted=False,
            metadata=dict(self.metadata),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message as readers see it."""

    event_id: int
    message_id: uuid.UUID
    created_at: datetime
    sender_id: int
    sender_name: str | None
    sender_profile_url: str | None
    client_msg_id: str
    text: str
    message_type: MessageType
    attachments: tuple[str, ...]
    reply_to: uuid.UUID | None
    edited_at: datetime | None
    is_deleted: bool
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SendAck:
    """The answer to a send: the message's key, and whether it was a retry of an earlier one."""

    event_id: int
    message_id: uuid.UUID
    created_at: datetime
    duplicate: bool


def content_hash(msg: NewMessage) -> bytes:
    """A digest of what a send *says*, so a reused ``client_msg_id`` with other content is caught.

    Display fields (sender name, profile URL) are left out: a retry after the user renamed
    themselves is still the same message.
    """
    parts: list[str] = [
        str(msg.event_id),
        msg.message_type,
        msg.text,
        str(msg.reply_to or ""),
        *msg.attachments,
    ]
    # The digest of: part count, then each part length-prefixed. Built as one buffer and
    # hashed in one call (this runs once per send). These bytes are part of the stored
    # claims: changing them would make a retry of an already claimed send a Conflict.
    chunks = [len(parts).to_bytes(4, "big")]
    for part in [*parts, *(f"{k}\x00{v}" for k, v in sorted(msg.metadata.items()))]:
        data = part.encode("utf-8", "surrogatepass")
        chunks += (len(data).to_bytes(4, "big"), data)
    return hashlib.sha256(b"".join(chunks)).digest()[:16]


def validate_text(text: str, *, field_name: str = "text") -> list[FieldError]:
    """Errors in a message text (also used by edit)."""
    errors: list[FieldError] = []
    if len(text) > MAX_TEXT_CHARS:
        errors.append(FieldError(field_name, f"at most {MAX_TEXT_CHARS} characters"))
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        errors.append(FieldError(field_name, f"at most {MAX_TEXT_BYTES} bytes of UTF-8"))
    if "\x00" in text:
        errors.append(FieldError(field_name, "must not contain NUL characters"))
    if _has_lone_surrogate(text):
        errors.append(FieldError(field_name, "must be valid Unicode (lone surrogate)"))
    return errors


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def validate_new_message(msg: NewMessage) -> None:
    """Raise :class:`ValidationFailed` listing every rule ``msg`` breaks."""
    errors: list[FieldError] = []
    if msg.event_id <= 0:
        errors.append(FieldError("event_id", "must be a positive integer"))
    if msg.sender_id <= 0:
        errors.append(FieldError("sender_id", "must be a positive integer"))
    if not CLIENT_MSG_ID_PATTERN.fullmatch(msg.client_msg_id):
        errors.append(
            FieldError("client_msg_id", "1-100 characters of letters, digits and . _ : -")
        )
    if msg.message_type not in MESSAGE_TYPES:
        errors.append(FieldError("message_type", f"one of {', '.join(MESSAGE_TYPES)}"))
    errors.extend(validate_text(msg.text))
    if not msg.text.strip() and not msg.attachments:
        errors.append(FieldError("text", "a message needs text or at least one attachment"))
    errors.extend(_validate_attachments(msg.attachments))
    errors.extend(_validate_metadata(msg.metadata))
    if msg.reply_to is not None and msg.reply_to.version != 1:
        errors.append(FieldError("reply_to", "must be a message id"))
    if msg.sender_name is not None and len(msg.sender_name) > MAX_SENDER_NAME_CHARS:
        errors.append(FieldError("sender_name", f"at most {MAX_SENDER_NAME_CHARS} characters"))
    if msg.sender_profile_url is not None and not _is_url(
        msg.sender_profile_url, MAX_PROFILE_URL_CHARS
    ):
        errors.append(
            FieldError(
                "sender_profile_url", f"an http(s) URL of at most {MAX_PROFILE_URL_CHARS} chars"
            )
        )
    if errors:
        raise ValidationFailed("the message breaks the rules listed in errors", errors=errors)


def _is_url(value: str, limit: int) -> bool:
    return len(value) <= limit and _URL_PATTERN.fullmatch(value) is not None


def _validate_attachments(attachments: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(attachments) > MAX_ATTACHMENTS:
        errors.append(FieldError("attachments", f"at most {MAX_ATTACHMENTS} attachments"))
    for i, url in enumerate(attachments[:MAX_ATTACHMENTS]):
        if not _is_url(url, MAX_ATTACHMENT_URL_CHARS):
            errors.append(
                FieldError(
                    f"attachments/{i}",
                    f"an http(s) URL of at most {MAX_ATTACHMENT_URL_CHARS} characters",
                )
            )
    return errors


def _validate_metadata(metadata: Mapping[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(metadata) > MAX_METADATA_ENTRIES:
        errors.append(FieldError("metadata", f"at most {MAX_METADATA_ENTRIES} entries"))
        return errors
    total = 0
    for key, value in metadata.items():
        if not (
            isinstance(key, str)
            and len(key) <= MAX_METADATA_KEY_CHARS
            and _METADATA_KEY_PATTERN.fullmatch(key)
        ):
            errors.append(
                FieldError(
                    "metadata",
                    f"keys are 1-{MAX_METADATA_KEY_CHARS} letters, digits or . _ : -",
                )
            )
            continue
        if not isinstance(value, str):
            errors.append(FieldError(f"metadata/{key}", "values must be strings"))
            continue
        if len(value) > MAX_METADATA_VALUE_CHARS or "\x00" in value or _has_lone_surrogate(value):
            errors.append(
                FieldError(
                    f"metadata/{key}", f"at most {MAX_METADATA_VALUE_CHARS} characters, no NUL"
                )
            )
            continue
        total += len(key.encode()) + len(value.encode())
    if total > MAX_METADATA_BYTES:
        errors.append(FieldError("metadata", f"at most {MAX_METADATA_BYTES} bytes in total"))
    return errors
