"""A send whose connection drops while the store writes it is still published, once."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import Frame, client, is_message, users_and_event
from tests.polling import until
from tests.servers import run_server


def _message_text(event_id: int, text: str) -> Callable[[Frame], bool]:
    return lambda f: is_message(event_id)(f) and f["message"]["text"] == text


async def _until_a_send_is_in_progress(base_url: str) -> None:
    """Wait (at most 5 s) until the store reports a send between acceptance and answer."""
    async with httpx.AsyncClient(base_url=base_url) as http:

        async def in_progress() -> bool:
            for line in (await http.get("/metrics")).text.splitlines():
                if line.startswith("chat_store_sends_in_progress ") and float(line.split()[1]) >= 1:
                    return True
            return False

        await until(in_progress, within=5, interval=0.01, what="a send in progress")


@pytest.fixture(scope="module")
async def slow_writes_url(settings: Settings) -> AsyncIterator[str]:
    """An app whose writes wait 400 ms in the batcher: a send stays in the store long enough
    for its connection to drop while it is under way."""
    slow = settings.model_copy(update={"write_batch_ms": 400.0})
    async with run_server(create_app(slow)) as url:
        yield url


async def test_a_send_whose_connection_drops_mid_write_is_still_published_once(
    slow_writes_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    cmid = f"m-{secrets.token_hex(6)}"
    async with client(slow_writes_url, api, bo) as reader:
        await reader.subscribe(event_id)
        async with client(slow_writes_url, api, ada) as sender:
            await sender.send_message(event_id, "warm the membership cache")
            await reader.expect(is_message(event_id))
            await sender.send(
                id="s1", type="send", event_id=event_id, client_msg_id=cmid, text="cut off"
            )
            await _until_a_send_is_in_progress(slow_writes_url)
            sender.ws.transport.abort()  # the connection drops mid-send
        # The client never saw an ack, so it retries on a new connection.
        async with client(slow_writes_url, api, ada) as retry:
            ack = await retry.send_message(event_id, "cut off", client_msg_id=cmid)
        cut_off = _message_text(event_id, "cut off")
        live = await reader.expect(cut_off)
        assert live["message"]["message_id"] == ack["message_id"]
        await reader.drain()
        assert reader.kept(cut_off) == []
