"""Messages and ids for the store tests: fresh ids, a message sent in one call, an unread count
recomputed from scratch."""

from __future__ import annotations

import itertools
import secrets
import uuid

from chat.domain.messages import NewMessage, encode_cursor
from chat.store.cql.message_history import MessageHistory
from chat.store.cql.messages import MessageStore
from chat.store.cql.unread import UnreadStore

_ids = itertools.count(secrets.randbelow(2**40) * 1000 + 1)


def new_event_id() -> int:
    """An event id unused by any other test in this keyspace."""
    return next(_ids)


def new_user_id() -> int:
    """A user id unused by any other test in this keyspace."""
    return next(_ids)


async def post(store: MessageStore, event_id: int, sender_id: int, text: str = "hi") -> uuid.UUID:
    """Send one message (a fresh ``client_msg_id``); its id."""
    message = NewMessage(event_id, sender_id, secrets.token_hex(8), text)
    return (await store.send(message)).message_id


async def recount(history: MessageHistory, unread: UnreadStore, reader: int, event_id: int) -> int:
    """The unread count computed from scratch from the history and the read position (every
    message after it that is not the reader's own and not deleted; no scan bound)."""
    position = await unread.read_position(reader, event_id)
    cursor = encode_cursor(position) if position is not None else None
    total = 0
    while True:
        page = await history.after(event_id, cursor, 500)
        total += sum(1 for m in page.messages if m.sender_id != reader and not m.is_deleted)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor
