"""Leaving an event over REST ends the leaver's live WebSocket subscription at once."""

from __future__ import annotations

from tests.api_client import Api
from tests.gateway.live import client, is_message, users_and_event


async def test_a_participant_who_leaves_loses_the_subscription_at_once(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a, client(base_url, api, bo) as b:
        await a.subscribe(event_id)
        await b.subscribe(event_id)
        response = await api.http.post(f"/v1/events/{event_id}/leave", headers=api.auth(bo))
        assert response.status_code == 204, response.text
        ended = await b.expect("unsubscribed")
        assert ended == {"type": "unsubscribed", "event_id": event_id, "reason": "removed"}
        await a.send_message(event_id, "after leaving")
        await b.drain()
        assert b.kept(is_message(event_id)) == []
        again = await b.request(type="subscribe", event_id=event_id)
        assert again["code"] == "not_found"
