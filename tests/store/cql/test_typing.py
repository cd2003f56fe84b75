"""Typing indicators: start/stop, live rows only, and TTL expiry observed with a deadline."""

from __future__ import annotations

import time

import pytest

from chat.config import Settings
from chat.errors import ValidationFailed
from chat.store.cql.typing import TypingStore
from chat.store.driver.session import CqlStore, execute_async
from tests.polling import until
from tests.store.cql.messages import new_event_id, new_user_id


@pytest.fixture
def typing_store(cql_store: CqlStore, settings: Settings) -> TypingStore:
    """The production configuration: the table's default TTL (10 s)."""
    return TypingStore(cql_store, settings)


@pytest.fixture
def short_lived(cql_store: CqlStore, settings: Settings) -> TypingStore:
    """A 2 s TTL via ``USING TTL``, so expiry is observable quickly."""
    return TypingStore(cql_store, settings, ttl_seconds=2)


async def test_start_shows_the_user_and_stop_clears_at_once(typing_store: TypingStore) -> None:
    event_id, alice, bob = new_event_id(), new_user_id(), new_user_id()
    await typing_store.start(event_id, bob)
    await typing_store.start(event_id, alice)
    await typing_store.start(event_id, alice)  # a refresh, not a second row
    assert await typing_store.typing(event_id) == sorted([alice, bob])
    await typing_store.stop(event_id, alice)
    assert await typing_store.typing(event_id) == [bob]
    await typing_store.stop(event_id, alice)  # stopping twice is harmless
    await typing_store.stop(event_id, bob)
    assert await typing_store.typing(event_id) == []


async def test_the_default_ttl_is_the_tables_ten_seconds(
    typing_store: TypingStore, cql_store: CqlStore, settings: Settings
) -> None:
    event_id, user = new_event_id(), new_user_id()
    await typing_store.start(event_id, user)
    rows = await execute_async(
        cql_store.session,
        f"SELECT ttl(started_at) FROM {settings.cql_keyspace}.typing_indicators"
        " WHERE event_id = %s AND user_id = %s",
        (event_id, user),
    )
    assert 8 <= rows[0][0] <= 10


async def test_an_indicator_expires_after_its_ttl_unless_refreshed(
    short_lived: TypingStore,
) -> None:
    """Expiry has one-second resolution (as in ScyllaDB: the deadline is whole seconds), so a
    2 s TTL ends between 1 and 2 s after the write. ``refreshing`` starts first, so its first
    write is gone by the time ``silent``'s is; it is still listed only thanks to refreshes.
    """
    event_id, silent, refreshing = new_event_id(), new_user_id(), new_user_id()
    await short_lived.start(event_id, refreshing)
    started = time.monotonic()
    await short_lived.start(event_id, silent)
    assert await short_lived.typing(event_id) == sorted([silent, refreshing])

    async def silent_gone_while_refreshing() -> bool:
        if silent not in await short_lived.typing(event_id):
            return True
        await short_lived.start(event_id, refreshing)
        return False

    await until(
        silent_gone_while_refreshing, within=6, interval=0.05, what="the silent typist's TTL"
    )
    assert time.monotonic() - started >= 1.0  # not before its TTL (less the resolution)
    assert await short_lived.typing(event_id) == [refreshing]


def test_a_ttl_below_one_second_is_refused(cql_store: CqlStore, settings: Settings) -> None:
    with pytest.raises(ValidationFailed, match="ttl_seconds"):
        TypingStore(cql_store, settings, ttl_seconds=0)
