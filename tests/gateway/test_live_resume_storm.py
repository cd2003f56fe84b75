"""Many clients resuming one event at once share their store reads and still get every message
exactly once, in order, across the replay and the live stream — while messages keep coming."""

from __future__ import annotations

import asyncio
import contextlib

from tests.conftest import Api
from tests.gateway.live import Frame, WsClient, client, is_message, users_and_event

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
