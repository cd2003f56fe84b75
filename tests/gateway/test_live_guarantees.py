"""Live gateway guarantees: ack after durable, exactly-once retries, one order, resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import (
    UNLIMITED_RATES,
    WsClient,
    client,
    is_message,
    users_and_event,
    ws_url,
)
from tests.servers import run_server


@pytest.fixture(scope="module")
async def tuned_url(settings: Settings) -> AsyncIterator[str]:
    """A second app on the same PostgreSQL and CQL server, with limits tests can reach."""
    tuned = settings.model_copy(
        update={
            "typing_ttl_seconds": 1,
            "ws_outgoing_queue_size": 16,
            **UNLIMITED_RATES,
            "ws_auth_timeout_ms": 300,
        }
    )
    async with run_server(create_app(tuned)) as url:
        yield url


async def test_ack_means_the_message_is_readable_from_the_store(base_url: str, api: Api) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    async with client(base_url, api, ada) as a:
        ack = await a.send_message(event_id, "durable?")
        # Read straight after the ack, through REST, which reads the store.
        response = await api.http.get(f"/v1/events/{event_id}/messages", headers=api.auth(ada))
        assert response.status_code == 200, response.text
        stored = response.json()["items"]
        assert [(m["message_id"], m["text"]) for m in stored] == [(ack["message_id"], "durable?")]


async def test_retry_on_a_new_connection_gets_the_original_ack_and_no_second_message(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, bo) as b:
        await b.subscribe(event_id)
        async with client(base_url, api, ada) as a1:
            first = await a1.send_message(event_id, "once", client_msg_id="retry-1")
        async with client(base_url, api, ada) as a2:
            await a2.subscribe(event_id)
            again = await a2.send_message(event_id, "once", client_msg_id="retry-1")
            assert again["duplicate"] is True
            assert (again["message_id"], again["created_at"]) == (
                first["message_id"],
                first["created_at"],
            )
            await b.expect(is_message(event_id))
            await b.drain()
            await a2.drain()
            assert b.kept(is_message(event_id)) == []
            assert a2.kept(is_message(event_id)) == []


async def test_concurrent_senders_every_subscriber_sees_the_store_order(
    base_url: str, api: Api
) -> None:
    users, event_id = await users_and_event(api, 4)
    per_sender = 8
    total = per_sender * len(users)
    async with (
        client(base_url, api, users[0]) as c0,
        client(base_url, api, users[1]) as c1,
        client(base_url, api, users[2]) as c2,
        client(base_url, api, users[3]) as c3,
        client(base_url, api, users[0]) as watcher,
    ):
        clients = [c0, c1, c2, c3]
        for c in [*clients, watcher]:
            await c.subscribe(event_id)

        async def burst(c: WsClient, n: int) -> None:
            await asyncio.gather(
                *(
                    c.send(
                        type="send",
                        id=f"o{n}-{i}",
                        event_id=event_id,
                        client_msg_id=f"o{n}-{i}",
                        text=f"{n}/{i}",
                    )
                    for i in range(per_sender)
                )
            )

        await asyncio.gather(*(burst(c, n) for n, c in enumerate(clients)))
        orders = []
        for c in [*clients, watcher]:
            got = await c.collect(is_message(event_id), total)
            orders.append([f["message"]["message_id"] for f in got])
        assert all(order == orders[0] for order in orders)
        history = await watcher.request(type="history", event_id=event_id, limit=100)
        assert [m["message_id"] for m in reversed(history["messages"])] == orders[0]


async def test_resume_replays_what_was_missed_and_the_seam_has_no_gap_or_duplicate(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, ada) as a:
        async with client(base_url, api, bo) as b:
            await b.subscribe(event_id)
            seen = await a.send_message(event_id, "seen")
            await b.expect(is_message(event_id))
        missed = [await a.send_message(event_id, f"missed {i}") for i in range(5)]
        async with client(base_url, api, bo) as b2:

            async def during() -> list[str]:
                return [
                    (await a.send_message(event_id, f"during {i}"))["message_id"] for i in range(15)
                ]

            sending = asyncio.create_task(during())
            await asyncio.sleep(0)
            subscribed = await b2.subscribe(event_id, since=seen["cursor"])
            during_ids = await sending
            expected = [m["message_id"] for m in missed] + during_ids
            got = await b2.collect(is_message(event_id), len(expected))
            assert [f["message"]["message_id"] for f in got] == expected
            await b2.drain()
            assert b2.kept(is_message(event_id)) == []
            assert subscribed["cursor"] is not None


async def test_typing_expires_by_itself(tuned_url: str, api: Api) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(tuned_url, api, bo) as b, client(tuned_url, api, ada) as a:
        await b.subscribe(event_id)
        await a.subscribe(event_id)
        await a.request(type="typing", event_id=event_id, state="start")
        assert (await b.expect("typing"))["user_ids"] == [ada]
        expired = await b.expect("typing", wait=5)
        assert expired["user_ids"] == []


async def test_disconnecting_clears_typing_at_once(base_url: str, api: Api) -> None:
    # The default TTL (10 s) is far above the wait: only the disconnect can clear it in time.
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, bo) as b:
        await b.subscribe(event_id)
        async with client(base_url, api, ada) as a:
            await a.subscribe(event_id)
            await a.request(type="typing", event_id=event_id, state="start")
            assert (await b.expect("typing"))["user_ids"] == [ada]
        cleared = await b.expect("typing", wait=5)
        assert cleared["user_ids"] == []


async def test_read_pushes_unread_to_the_users_other_connection(base_url: str, api: Api) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with (
        client(base_url, api, ada) as a,
        client(base_url, api, bo) as phone,
        client(base_url, api, bo) as tablet,
    ):
        await phone.subscribe(event_id)
        await tablet.subscribe(event_id)
        ack = await a.send_message(event_id, "read me")
        assert await tablet.expect(lambda f: f["type"] == "unread" and f["count"] == 1)
        answer = await phone.request(type="read", event_id=event_id, message_id=ack["message_id"])
        assert answer["count"] == 0
        pushed = await tablet.expect(lambda f: f["type"] == "unread" and f["count"] == 0)
        assert pushed == {"type": "unread", "event_id": event_id, "count": 0}


async def test_auth_deadline_closes_with_4401(tuned_url: str) -> None:
    async with connect(ws_url(tuned_url)) as ws:
        c = WsClient(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await c.expect("never", wait=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
