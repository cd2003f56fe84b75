"""Live regressions: a send cut off by its connection, and REST writes reaching live sockets."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.app import create_app
from chat.config import Settings
from chat.gateway.connection import FrameCounter
from tests.conftest import Api
from tests.gateway.live import Frame, WsClient, client, is_message, users_and_event, ws_url
from tests.servers import run_server


def _message_text(event_id: int, text: str) -> Callable[[Frame], bool]:
    return lambda f: is_message(event_id)(f) and f["message"]["text"] == text


async def _until_a_send_is_in_progress(base_url: str) -> None:
    """Wait (at most 5 s) until the store reports a send between acceptance and answer."""
    async with asyncio.timeout(5), httpx.AsyncClient(base_url=base_url) as http:
        while True:
            text = (await http.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith("chat_store_sends_in_progress ") and float(line.split()[1]) >= 1:
                    return
            await asyncio.sleep(0.01)


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


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer    "])
async def test_an_authorization_header_without_a_bearer_token_is_refused_with_4401(
    base_url: str, api: Api, header: str
) -> None:
    async with connect(ws_url(base_url), additional_headers={"Authorization": header}) as ws:
        c = WsClient(ws)
        error = await c.expect("error")
        assert error["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await c.expect("never")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_bug_in_the_write_path_closes_with_1011_instead_of_going_silent(
    base_url: str, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault injected into our own frame accounting (not into a library): the connection
    must end with 1011 at once, not stay open and mute until the idle timeout."""
    (ada,), _ = await users_and_event(api, 1)
    count = FrameCounter.count

    def count_then_fail_on_pong(self: FrameCounter, batch: list[str]) -> None:
        count(self, batch)
        if any('"type":"pong"' in frame for frame in batch):
            raise ValueError("injected bug in the write path")

    async with client(base_url, api, ada) as a:
        monkeypatch.setattr(FrameCounter, "count", count_then_fail_on_pong)
        await a.send(type="ping")
        async with asyncio.timeout(10):
            await a.ws.wait_closed()  # the pong may arrive first; then the close
    assert a.ws.close_code == 1011
