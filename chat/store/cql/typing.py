"""Typing indicators: short-lived rows that vanish on their own.

``typing_indicators((event_id), user_id)`` has ``default_time_to_live = 10`` (see
docs/data-model.md): "start" (re)writes the user's row, which lives 10 s from the last
refresh; "stop" deletes it so the indicator disappears at once instead of lingering until the
TTL runs out. Reads return only live rows — the store drops expired cells itself — so "who is
typing" needs no clean-up job.

By default the table's TTL applies (no ``USING TTL`` in the statement). ``ttl_seconds``
overrides it per store with ``USING TTL``: :func:`~chat.store.stores.open_stores`
passes ``CHAT_TYPING_TTL_SECONDS`` when it differs from :data:`TABLE_TTL_SECONDS` (tests use
1 s to watch a row expire).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.query import PreparedStatement

from chat.config import Settings
from chat.errors import ValidationFailed
from chat.store.driver.prepared import PreparedOnce
from chat.store.driver.session import CqlStore, execute_async

TABLE_TTL_SECONDS = 10
"""``typing_indicators``' ``default_time_to_live``; mirrors ``cql/000006_typing_indicators.cql``
(change both together)."""


@dataclass(frozen=True, slots=True)
class _Statements:
    start: PreparedStatement
    stop: PreparedStatement
    typing: PreparedStatement


class TypingStore(PreparedOnce[_Statements]):
    """Start/stop typing and list who is typing in an event."""

    def __init__(
        self, cql: CqlStore, settings: Settings, *, ttl_seconds: int | None = None
    ) -> None:
        if ttl_seconds is not None and ttl_seconds < 1:
            raise ValidationFailed(f"ttl_seconds must be at least 1, not {ttl_seconds}")
        super().__init__(cql, settings)
        self._ttl_seconds = ttl_seconds

    async def _prepare_statements(self) -> _Statements:
        ks, cql = self._keyspace, self._cql
        using_ttl = "" if self._ttl_seconds is None else " USING TTL ?"
        # Idempotent: a repeat only refreshes the TTL, which is what a retry should do.
        start = await cql.prepare(
            f"INSERT INTO {ks}.typing_indicators (event_id, user_id, started_at)"
            f" VALUES (?, ?, ?){using_ttl}",
            idempotent=True,
        )
        stop = await cql.prepare(
            f"DELETE FROM {ks}.typing_indicators WHERE event_id = ? AND user_id = ?",
            idempotent=True,
        )
        typing = await cql.prepare(
            f"SELECT user_id FROM {ks}.typing_indicators WHERE event_id = ?",
            idempotent=True,
        )
        return _Statements(start, stop, typing)

    async def start(self, event_id: int, user_id: int) -> None:
        """Mark the user as typing (or refresh it) for the TTL from now."""
        statements = await self._prepared()
        values: tuple[object, ...] = (event_id, user_id, datetime.now(UTC))
        if self._ttl_seconds is not None:
            values = (*values, self._ttl_seconds)
        await execute_async(self._cql.session, statements.start, values)

    async def stop(self, event_id: int, user_id: int) -> None:
        """Clear the user's indicator at once."""
        statements = await self._prepared()
        await execute_async(self._cql.session, statements.stop, (event_id, user_id))

    async def typing(self, event_id: int) -> list[int]:
        """Ids of the users typing in the event right now (live rows only), ascending."""
        statements = await self._prepared()
        rows = await execute_async(self._cql.session, statements.typing, (event_id,))
        return [row.user_id for row in rows]
