"""Editing and soft-deleting messages: who may, what changes, and what is left behind."""

from __future__ import annotations

from typing import Any

import pytest

from chat.config import Settings
from chat.domain.messages import MessageIdGenerator, NewMessage, bucket_of, created_at_ms_of
from chat.errors import Conflict, Forbidden, NotFound, ValidationFailed
from chat.store.cql.messages import MessageStore
from chat.store.driver.session import CqlStore, execute_async
from tests.store.cql.messages import new_event_id, new_user_id


async def _sent(store: MessageStore, **kw: Any) -> tuple[int, int, Any]:
    event, sender = new_event_id(), new_user_id()
    msg = NewMessage(event, sender, "c-1", kw.pop("text", "original"), **kw)
    ack = await store.send(msg)
    return event, sender, ack.message_id


async def test_the_sender_edits_text_and_edited_at_is_set_in_both_tables(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, sender, message_id = await _sent(message_store)
    edited = await message_store.edit(event, message_id, sender, "fixed typo")
    assert edited.text == "fixed typo"
    assert edited.edited_at is not None
    stored = await message_store.get(event, message_id)
    assert stored == edited
    bucket = bucket_of(created_at_ms_of(message_id))
    user_rows = await execute_async(
        cql_store.session,
        f"SELECT message FROM {settings.cql_keyspace}.chat_messages_by_user "
        "WHERE user_id = %s AND bucket = %s",
        [sender, bucket],
    )
    assert [r.message for r in user_rows] == ["fixed typo"]


async def test_only_the_sender_may_edit(message_store: MessageStore) -> None:
    event, _, message_id = await _sent(message_store)
    with pytest.raises(Forbidden):
        await message_store.edit(event, message_id, new_user_id(), "hijack")


async def test_editing_a_missing_message_or_one_of_another_event_is_not_found(
    message_store: MessageStore,
) -> None:
    event, sender, message_id = await _sent(message_store)
    with pytest.raises(NotFound):
        await message_store.edit(event, MessageIdGenerator().next(), sender, "x")
    with pytest.raises(NotFound):
        await message_store.edit(new_event_id(), message_id, sender, "x")


async def test_an_edit_is_validated_like_a_new_message(message_store: MessageStore) -> None:
    event, sender, message_id = await _sent(message_store)
    with pytest.raises(ValidationFailed):
        await message_store.edit(event, message_id, sender, "x" * 5000)
    with pytest.raises(ValidationFailed):
        await message_store.edit(event, message_id, sender, "  ")


async def test_the_sender_soft_deletes_and_content_is_cleared_but_the_row_stays(
    message_store: MessageStore, cql_store: CqlStore, settings: Settings
) -> None:
    event, sender, message_id = await _sent(
        message_store, attachments=("https://x.test/a.png",), metadata={"k": "v"}
    )
    deleted = await message_store.soft_delete(event, message_id, sender, may_moderate=False)
    assert (deleted.is_deleted, deleted.text, deleted.attachments, dict(deleted.metadata)) == (
        True,
        "",
        (),
        {},
    )
    assert await message_store.get(event, message_id) == deleted
    raw = await execute_async(
        cql_store.session,
        f"SELECT message, is_deleted, attachments FROM {settings.cql_keyspace}."
        "chat_messages_by_event WHERE event_id = %s AND bucket = %s",
        [event, bucket_of(created_at_ms_of(message_id))],
    )
    assert [(r.message, r.is_deleted, r.attachments or []) for r in raw] == [("", True, [])]


async def test_the_event_creator_may_delete_someone_elses_message_others_may_not(
    message_store: MessageStore,
) -> None:
    event, _, message_id = await _sent(message_store)
    with pytest.raises(Forbidden):
        await message_store.soft_delete(event, message_id, new_user_id(), may_moderate=False)
    deleted = await message_store.soft_delete(event, message_id, new_user_id(), may_moderate=True)
    assert deleted.is_deleted


async def test_deleting_twice_is_not_an_error_and_a_deleted_message_cannot_be_edited(
    message_store: MessageStore,
) -> None:
    event, sender, message_id = await _sent(message_store)
    await message_store.soft_delete(event, message_id, sender, may_moderate=False)
    again = await message_store.soft_delete(event, message_id, sender, may_moderate=False)
    assert again.is_deleted
    with pytest.raises(Conflict):
        await message_store.edit(event, message_id, sender, "resurrect")


async def test_deleting_a_missing_message_is_not_found(message_store: MessageStore) -> None:
    with pytest.raises(NotFound):
        await message_store.soft_delete(
            new_event_id(), MessageIdGenerator().next(), 1, may_moderate=True
        )
