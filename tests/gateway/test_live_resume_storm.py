"""Many clients resuming one event at once share their store reads and still get every message
exactly once, in order, across the replay and the live stream — while messages keep coming."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import Frame, WsClient, client, is_message, users_and_event
from tests.ops.test_metrics_and_readiness import sample
from tests.servers import run_server

RESUMERS = 10


async def test_clients_resuming_with_the_same_since_while_messages_arrive_miss_nothing(
    base_url: str, api: Api
) -> None:
    (sender, *others), event_id = await users_and_event(api, RESUMERS + 1)
    async with client(base_url, api, sender) as s, contextlib.AsyncExitStack() as stack:
        before = [await s.send_message(event_id, f"before {i}") for i in range(6)]
        since = before[1]["cursor"]
        resumers: list[WsClient] = [
            await stack.enter_async_context(client(base_url, api, user)) for user in others
        ]

        async def keep_sending() -> list[Frame]:
            return [await s.send_message(event_id, f"during {i}") for i in range(8)]

        sending = asyncio.create_task(keep_sending())
        await asyncio.gather(*(c.subscribe(event_id, since=since) for c in resumers))
        during = await sending
        after = [await s.send_message(event_id, f"after {i}") for i in range(3)]
        expected = [m["message_id"] for m in (*before[2:], *during, *after)]
        received = await asyncio.gather(
            *(c.collect(is_message(event_id), len(expected)) for c in resumers)
        )
        await asyncio.gather(*(c.drain(quiet=0.2) for c in resumers))
        for c, got in zip(resumers, received, strict=True):
            assert [f["message"]["message_id"] for f in got] == expected
            assert c.kept(is_message(event_id)) == []  # nothing twice


async def page_reads(http: httpx.AsyncClient) -> tuple[float, float]:
    """The gateway's history page reads so far: (callers, reads)."""
    text = (await http.get("/metrics")).text
    labels = 'count="{}",read="history_page"'
    return (
        sample(text, "chat_store_coalesced_reads", labels.format("callers")),
        sample(text, "chat_store_coalesced_reads", labels.format("reads")),
    )


async def test_clients_resuming_one_after_another_share_a_page_read_until_a_message_arrives(
    settings: Settings, api: Api
) -> None:
    (sender, watcher, *resumers), event_id = await users_and_event(api, 5)
    async with (
        run_server(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url) as http,
        client(url, api, sender) as s,
        client(url, api, watcher) as w,
    ):
        await w.subscribe(event_id)  # the gateway listens to the event from here on
        sent = [await s.send_message(event_id, f"m{i}") for i in range(5)]
        since = sent[1]["cursor"]

        async def resume(user: int) -> list[str]:
            async with client(url, api, user) as r:
                await r.subscribe(event_id, since=since)
                return [f["message"]["message_id"] for f in r.kept(is_message(event_id))]

        callers, reads = await page_reads(http)
        first, second = await resume(resumers[0]), await resume(resumers[1])
        assert first == second == [m["message_id"] for m in sent[2:]]
        assert await page_reads(http) == (callers + 2, reads + 1)  # the second took the first's

        newer = await s.send_message(event_id, "m5")
        await w.collect(is_message(event_id), 6)  # published: the kept page is stale now
        third = await resume(resumers[2])
        assert third == [m["message_id"] for m in (*sent[2:], newer)]
        assert await page_reads(http) == (callers + 3, reads + 2)
