"""Reactions through the real driver: add, remove, idempotent re-add, counts, validation."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest

from chat.config import Settings
from chat.domain.messages import NewMessage
from chat.errors import Conflict, NotFound, ValidationFailed
from chat.store.cql.messages import MessageStore
from chat.store.cql.reactions import MAX_EMOJI_PER_USER, ReactionStore, ReactionSummary
from chat.store.driver.session import CqlStore
from tests.store.cql.messages import new_event_id, new_user_id


@pytest.fixture
def reactions(cql_store: CqlStore, settings: Settings) -> ReactionStore:
    return ReactionStore(cql_store, settings)


@pytest.fixture
async def message(message_store: MessageStore) -> tuple[int, uuid.UUID]:
    """A message in a fresh event: (event_id, message_id)."""
    event_id = new_event_id()
    ack = await message_store.send(
        NewMessage(event_id, new_user_id(), secrets.token_hex(8), "react to me")
    )
    return event_id, ack.message_id


async def test_reactions_are_counted_per_emoji_with_the_viewers_own(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    alice, bob, carol = new_user_id(), new_user_id(), new_user_id()
    await reactions.add(message_id, event_id, alice, "👍")
    await reactions.add(message_id, event_id, alice, "🎉")  # several emoji from one user
    await reactions.add(message_id, event_id, bob, "👍")
    await reactions.add(message_id, event_id, carol, "👨‍👩‍👧")  # a ZWJ sequence
    summary = await reactions.summary(message_id, alice)
    assert summary == ReactionSummary({"👍": 2, "🎉": 1, "👨‍👩‍👧": 1}, frozenset({"👍", "🎉"}))
    assert list(summary.counts) == ["👍", "🎉", "👨‍👩‍👧"]  # most used first, then by emoji
    assert (await reactions.summary(message_id)).mine == frozenset()


async def test_adding_the_same_emoji_again_counts_once(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    user = new_user_id()
    await asyncio.gather(*(reactions.add(message_id, event_id, user, "🔥") for _ in range(5)))
    await reactions.add(message_id, event_id, user, "🔥")
    assert (await reactions.summary(message_id, user)).counts == {"🔥": 1}


async def test_removing_takes_away_only_that_users_emoji(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    alice, bob = new_user_id(), new_user_id()
    await reactions.add(message_id, event_id, alice, "👍")
    await reactions.add(message_id, event_id, alice, "😂")
    await reactions.add(message_id, event_id, bob, "👍")
    await reactions.remove(message_id, event_id, alice, "👍")
    await reactions.remove(message_id, event_id, alice, "👍")  # removing again: no-op
    await reactions.remove(message_id, event_id, alice, "🙈")  # never added: no-op
    assert await reactions.summary(message_id, alice) == ReactionSummary(
        {"👍": 1, "😂": 1}, frozenset({"😂"})
    )
    await reactions.remove(message_id, event_id, alice, "😂")
    await reactions.remove(message_id, event_id, bob, "👍")
    assert await reactions.summary(message_id, alice) == ReactionSummary({}, frozenset())


async def test_summaries_of_a_page_of_messages_in_one_read(
    reactions: ReactionStore, message_store: MessageStore
) -> None:
    event_id, user = new_event_id(), new_user_id()
    first, second = [
        (await message_store.send(NewMessage(event_id, user, f"m{n}", "x"))).message_id
        for n in range(2)
    ]
    await reactions.add(first, event_id, user, "✅")
    summaries = await reactions.summaries([first, second, first], user)
    assert summaries == {
        first: ReactionSummary({"✅": 1}, frozenset({"✅"})),
        second: ReactionSummary({}, frozenset()),
    }
    assert await reactions.summaries([], user) == {}


async def test_a_reaction_needs_the_message_in_that_event(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    user = new_user_id()
    for event, target in ((new_event_id(), message_id), (event_id, uuid.uuid1())):
        with pytest.raises(NotFound, match="not found in event"):
            await reactions.add(target, event, user, "👍")
    with pytest.raises(NotFound):
        await reactions.add(uuid.uuid4(), event_id, user, "👍")


@pytest.mark.parametrize(
    "emoji",
    ["", " ", "👍 ", "a\tb", "\x00", "\u200b", "\u202e👍", "x" * 33, "👍" * 9],
    ids=["empty", "space", "trailing-space", "tab", "nul", "zwsp", "bidi", "long", "long-emoji"],
)
async def test_invalid_emoji_are_rejected(
    reactions: ReactionStore, message: tuple[int, uuid.UUID], emoji: str
) -> None:
    event_id, message_id = message
    with pytest.raises(ValidationFailed, match="invalid emoji"):
        await reactions.add(message_id, event_id, new_user_id(), emoji)


async def test_short_codes_and_flag_sequences_are_accepted(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    user = new_user_id()
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    for emoji in (":party:", scotland, "👍🏽"):
        await reactions.add(message_id, event_id, user, emoji)
    assert (await reactions.summary(message_id, user)).mine == {":party:", scotland, "👍🏽"}


async def test_one_user_may_add_a_bounded_number_of_different_emoji(
    reactions: ReactionStore, message: tuple[int, uuid.UUID]
) -> None:
    event_id, message_id = message
    user = new_user_id()
    for n in range(MAX_EMOJI_PER_USER):
        await reactions.add(message_id, event_id, user, f":e{n}:")
    await reactions.add(message_id, event_id, user, ":e0:")  # re-adding one is still fine
    with pytest.raises(Conflict, match="at most"):
        await reactions.add(message_id, event_id, user, ":one-too-many:")
