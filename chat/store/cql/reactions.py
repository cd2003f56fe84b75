"""Emoji reactions on messages: add, remove, and a per-message summary.

One row per ``(message_id, user_id, emoji)`` in ``message_reactions`` (partition: the message),
so a user may put several different emoji on one message, adding the same emoji twice is an
upsert of the same row (idempotent, safe for the driver to retry), and removing is a delete of
one row. Counts are computed from the partition when read rather than kept in a counter:
counters are not idempotent (a retried increment counts twice) — the same reason unread state
has no counter. A message's partition is bounded by :data:`MAX_EMOJI_PER_USER` per reacting
user.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.query import PreparedStatement

from chat.domain.messages import bucket_of, created_at_ms_of, datetime_from_ms
from chat.errors import Conflict, FieldError, NotFound, ValidationFailed
from chat.store.driver.prepared import PreparedOnce
from chat.store.driver.session import execute_async

MAX_EMOJI_BYTES = 32
"""Long enough for any emoji ZWJ sequence or flag tag sequence, short enough to bound rows."""

MAX_EMOJI_PER_USER = 20
"""Different emoji one user may put on one message (keeps a message's partition bounded)."""

# Format characters that legitimately occur inside emoji: the zero-width joiner of ZWJ
# sequences (family, profession emoji) and the tag characters of subdivision flags.
_ALLOWED_FORMAT = {"\u200d", *(chr(c) for c in range(0xE0020, 0xE0080))}


def validate_emoji(emoji: str) -> None:
    """Raise ValidationFailed unless ``emoji`` is a short token without blanks or controls.

    Not restricted to Unicode's emoji list: Python's Unicode tables lag new emoji releases, and
    short-codes (``:party:``) are a product choice for the client. Whitespace, control, line
    separator and invisible format characters (bidi overrides, zero-width spaces) are refused,
    so two reactions that look identical cannot be stored as different strings by padding.
    """
    problem: str | None = None
    if not emoji:
        problem = "must not be empty"
    elif len(emoji.encode("utf-8", "surrogatepass")) > MAX_EMOJI_BYTES:
        problem = f"at most {MAX_EMOJI_BYTES} bytes of UTF-8"
    else:
        for char in emoji:
            category = unicodedata.category(char)
            if (
                char.isspace()
                or category in ("Cc", "Cs", "Zs", "Zl", "Zp")
                or (category == "Cf" and char not in _ALLOWED_FORMAT)
            ):
                problem = f"must not contain whitespace or control characters (U+{ord(char):04X})"
                break
    if problem is not None:
        raise ValidationFailed(f"invalid emoji: {problem}", errors=[FieldError("emoji", problem)])


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """Reactions on one message: users per emoji (most used first) and the viewer's own."""

    counts: dict[str, int]
    mine: frozenset[str]


def _summary(rows: Sequence[tuple[int, str]], viewer_id: int | None) -> ReactionSummary:
    tally = Counter(emoji for _, emoji in rows)
    ordered = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    mine = frozenset(emoji for user_id, emoji in rows if user_id == viewer_id)
    return ReactionSummary(dict(ordered), mine)


@dataclass(frozen=True, slots=True)
class _Statements:
    insert: PreparedStatement
    delete: PreparedStatement
    of_message: PreparedStatement
    of_messages: PreparedStatement
    of_user: PreparedStatement
    message_exists: PreparedStatement


class ReactionStore(PreparedOnce[_Statements]):
    """Add, remove and summarize reactions; every statement is prepared once."""

    async def _prepare_statements(self) -> _Statements:
        ks, cql = self._keyspace, self._cql
        insert = await cql.prepare(
            f"INSERT INTO {ks}.message_reactions"
            " (message_id, user_id, emoji, event_id, created_at) VALUES (?, ?, ?, ?, ?)",
            idempotent=True,
        )
        delete = await cql.prepare(
            f"DELETE FROM {ks}.message_reactions"
            " WHERE message_id = ? AND user_id = ? AND emoji = ?",
            idempotent=True,
        )
        of_message = await cql.prepare(
            f"SELECT user_id, emoji FROM {ks}.message_reactions WHERE message_id = ?",
            idempotent=True,
        )
        of_messages = await cql.prepare(
            f"SELECT message_id, user_id, emoji FROM {ks}.message_reactions WHERE message_id IN ?",
            idempotent=True,
        )
        of_user = await cql.prepare(
            f"SELECT emoji FROM {ks}.message_reactions WHERE message_id = ? AND user_id = ?",
            idempotent=True,
        )
        message_exists = await cql.prepare(
            f"SELECT message_id FROM {ks}.chat_messages_by_event"
            " WHERE event_id = ? AND bucket = ? AND created_at = ? AND message_id = ?",
            idempotent=True,
        )
        return _Statements(insert, delete, of_message, of_messages, of_user, message_exists)

    async def add(self, message_id: uuid.UUID, event_id: int, user_id: int, emoji: str) -> None:
        """Add the user's ``emoji`` to the message; adding it again changes nothing.

        NotFound when the message is not in ``event_id`` (the caller has checked that the user
        takes part in the event); Conflict past :data:`MAX_EMOJI_PER_USER` different emoji.
        """
        validate_emoji(emoji)
        statements = await self._prepared()
        await self._check_message(statements, message_id, event_id)
        session = self._cql.session
        existing = {
            row.emoji
            for row in await execute_async(session, statements.of_user, (message_id, user_id))
        }
        if emoji not in existing and len(existing) >= MAX_EMOJI_PER_USER:
            raise Conflict(
                f"a user may put at most {MAX_EMOJI_PER_USER} different emoji on one message;"
                " remove one first"
            )
        await execute_async(
            session,
            statements.insert,
            (message_id, user_id, emoji, event_id, datetime.now(UTC)),
        )

    async def remove(self, message_id: uuid.UUID, event_id: int, user_id: int, emoji: str) -> None:
        """Remove the user's ``emoji`` from the message; removing an absent one is a no-op."""
        validate_emoji(emoji)
        statements = await self._prepared()
        await self._check_message(statements, message_id, event_id)
        await execute_async(self._cql.session, statements.delete, (message_id, user_id, emoji))

    async def summary(self, message_id: uuid.UUID, viewer_id: int | None = None) -> ReactionSummary:
        """Users per emoji on the message, and which of them ``viewer_id`` added."""
        statements = await self._prepared()
        rows = await execute_async(self._cql.session, statements.of_message, (message_id,))
        return _summary([(row.user_id, row.emoji) for row in rows], viewer_id)

    async def summaries(
        self, message_ids: Sequence[uuid.UUID], viewer_id: int | None = None
    ) -> dict[uuid.UUID, ReactionSummary]:
        """Summaries of a page of messages in one request (messages without reactions too)."""
        statements = await self._prepared()
        unique = list(dict.fromkeys(message_ids))
        if not unique:
            return {}
        rows = await execute_async(self._cql.session, statements.of_messages, (unique,))
        grouped: dict[uuid.UUID, list[tuple[int, str]]] = {m: [] for m in unique}
        for row in rows:
            grouped[row.message_id].append((row.user_id, row.emoji))
        return {m: _summary(pairs, viewer_id) for m, pairs in grouped.items()}

    async def _check_message(
        self, statements: _Statements, message_id: uuid.UUID, event_id: int
    ) -> None:
        """NotFound unless the message exists in the event (its key follows from its id)."""
        if message_id.version == 1:
            created_ms = created_at_ms_of(message_id)
            rows = await execute_async(
                self._cql.session,
                statements.message_exists,
                (event_id, bucket_of(created_ms), datetime_from_ms(created_ms), message_id),
            )
            if rows:
                return
        raise NotFound(f"message {message_id} not found in event {event_id}")
