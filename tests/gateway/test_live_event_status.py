"""What an event's status allows its chat: a CANCELED event is read-only, DONE keeps chatting.

docs/protocol.md, "Event status": after a cancellation is committed, writes to the event's
chat (send, edit, delete, react, unreact, typing start; and REST deletes) answer ``conflict``,
while subscribing, history and marking read still work.
"""

from __future__ import annotations

from tests.api.events_helpers import set_status
from tests.api_client import Api
from tests.gateway.live import client, is_message, users_and_event


async def test_a_canceled_events_chat_is_read_only_for_every_write_and_readable_still(
    base_url: str, api: Api
) -> None:
    (creator, guest), event_id = await users_and_event(api, 2)
    async with client(base_url, api, creator) as c, client(base_url, api, guest) as g:
        await g.subscribe(event_id)
        ack = await c.send_message(event_id, "before")
        await g.expect(is_message(event_id))
        canceled = await set_status(api, creator, event_id, "CANCELED")
        assert canceled.status_code == 200, canceled.text

        message_id = ack["message_id"]
        refused = [
            await c.request(type="send", event_id=event_id, client_msg_id="after", text="x"),
            await c.request(type="edit", event_id=event_id, message_id=message_id, text="y"),
            await c.request(type="delete", event_id=event_id, message_id=message_id),
            await g.request(type="react", event_id=event_id, message_id=message_id, emoji="👍"),
            await g.request(type="unreact", event_id=event_id, message_id=message_id, emoji="👍"),
            await g.request(type="typing", event_id=event_id, state="start"),
        ]
        assert [(f["type"], f["code"]) for f in refused] == [("error", "conflict")] * 6, refused
        assert all("CANCELED" in f["message"] for f in refused)
        stop = await g.request(type="typing", event_id=event_id, state="stop")
        assert stop["type"] == "ok"

        history = await g.request(type="history", event_id=event_id)
        assert [m["message_id"] for m in history["messages"]] == [message_id]
        read = await g.request(type="read", event_id=event_id, message_id=message_id)
        assert (read["type"], read["count"]) == ("unread", 0)
        await g.request(type="unsubscribe", event_id=event_id)
        again = await g.subscribe(event_id)
        assert again["type"] == "subscribed"
        deleted = await api.http.delete(
            f"/v1/events/{event_id}/messages/{message_id}", headers=api.auth(creator)
        )
        assert deleted.status_code == 409, deleted.text
        assert deleted.json()["current_status"] == "CANCELED"


async def test_a_done_event_keeps_chatting(base_url: str, api: Api) -> None:
    (creator,), event_id = await users_and_event(api, 1)
    assert (await set_status(api, creator, event_id, "CONFIRMED")).status_code == 200
    assert (await set_status(api, creator, event_id, "DONE")).status_code == 200
    async with client(base_url, api, creator) as c:
        await c.subscribe(event_id)
        ack = await c.send_message(event_id, "thanks, see you next time")
        assert ack["type"] == "ack"


async def test_a_retry_of_a_message_stored_before_the_cancellation_gets_its_original_ack(
    base_url: str, api: Api
) -> None:
    """The first attempt was stored just before the event was canceled and its ack was lost:
    the retry must still learn the message was stored (once), not that it was refused."""
    (creator,), event_id = await users_and_event(api, 1)
    async with client(base_url, api, creator) as c:
        first = await c.send_message(event_id, "just in time", client_msg_id="last-word")
        assert (await set_status(api, creator, event_id, "CANCELED")).status_code == 200
        retry = await c.request(
            type="send", event_id=event_id, client_msg_id="last-word", text="just in time"
        )
        assert (retry["type"], retry["duplicate"]) == ("ack", True), retry
        assert retry["message_id"] == first["message_id"]
        other = await c.request(
            type="send", event_id=event_id, client_msg_id="too-late", text="too late"
        )
        assert other["code"] == "conflict", other
