"""Connections ended by a fault: the client's (an ``Authorization`` header without a bearer
token: 4401) or the gateway's own (a bug in its write path: 1011 at once, not silence until the
idle timeout)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.gateway.connection import FrameCounter
from tests.api_client import Api
from tests.gateway.live import WsClient, client, users_and_event, ws_url


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
