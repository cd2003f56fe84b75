"""REST writes reach live sockets: a deletion as ``message_updated``, a read as ``unread``."""

from __future__ import annotations

import httpx

from tests.api_client import Api
from tests.gateway.live import client, is_message, users_and_event


async def test_rest_delete_reaches_live_subscribers(base_url: str, api: Api) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await b.subscribe(event_id)
        ack = await a.send_message(event_id, "regret")
        await b.expect(is_message(event_id))
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.delete(
                f"/v1/events/{event_id}/messages/{ack['message_id']}", headers=api.auth(ada)
            )
        assert response.status_code == 204, response.text
        updated = await b.expect("message_updated")
        assert updated["event_id"] == event_id
        assert updated["message"]["message_id"] == ack["message_id"]
        assert updated["message"]["is_deleted"] is True
        assert updated["message"]["text"] == ""


async def test_rest_read_pushes_the_exact_unread_count_and_keeps_it_exact(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await b.subscribe(event_id)
        acks = [await a.send_message(event_id, f"m{i}") for i in range(3)]
        await b.expect(lambda f: f["type"] == "unread" and f["count"] == 3)
        b.frames.clear()  # the counts on the way to 3 (and the messages) are not wanted here
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.post(
                f"/v1/events/{event_id}/read",
                json={"message_id": acks[1]["message_id"]},
                headers=api.auth(bo),
            )
        assert response.status_code == 200, response.text
        assert response.json()["unread"] == 1
        pushed = await b.expect("unread")
        assert pushed == {"type": "unread", "event_id": event_id, "count": 1}
        await a.send_message(event_id, "one more")
        after = await b.expect("unread")
        assert after == {"type": "unread", "event_id": event_id, "count": 2}
