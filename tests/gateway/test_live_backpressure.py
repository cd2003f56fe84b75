"""Received frames are bounded per connection: a client that sends commands faster than they
are carried out is slowed by TCP, not buffered without limit in the gateway's memory.

Frames come from the transport by a direct call (no ASGI queue that pauses reading), so the
connection itself must stop reading once enough commands wait for its worker. The store is
stopped (SIGSTOP of the embedded CQL server) so that commands deterministically pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect

from chat.app import create_app
from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.gateway.connection import COMMAND_BYTES_HIGH, COMMANDS_HIGH, Connection
from chat.gateway.runtime import Gateway
from tests.api_client import Api
from tests.gateway.live import (
    TIMEOUT,
    UNLIMITED_RATES,
    WsClient,
    answer_to,
    users_and_event,
    ws_url,
)
from tests.polling import until
from tests.servers import run_server


class _CaptureState:
    """ASGI middleware that keeps the app's lifespan state, so the test can see connections."""

    def __init__(self, app: ASGIApp, into: dict[str, Any]) -> None:
        self.app = app
        self.into = into

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and "state" in scope:
            self.into.update(scope["state"])
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
async def captured(settings: Settings) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {}
    # Frame and write rates out of the way: what is shown is what the socket reading bounds.
    tuned = settings.model_copy(update=UNLIMITED_RATES)
    app = create_app(tuned)
    app.add_middleware(_CaptureState, into=state)
    async with run_server(app) as url:
        yield url, state


@contextlib.contextmanager
def _store_stopped(server: EmbeddedCqlServer) -> Iterator[None]:
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_commands_arriving_faster_than_they_run_pause_reading_and_all_are_answered(
    captured: tuple[str, dict[str, Any]], api: Api, cql_server: EmbeddedCqlServer
) -> None:
    url, state = captured
    (ada,), event_id = await users_and_event(api, 1)
    count = 1_500  # far more than the bound (permessage-deflate: all fit one read)
    headers = {"Authorization": f"Bearer {api.tokens.mint(ada)}"}
    async with connect(ws_url(url), additional_headers=headers, open_timeout=TIMEOUT) as ws:
        assert orjson.loads(await ws.recv())["type"] == "welcome"
        await ws.send(
            orjson.dumps({"type": "history", "event_id": event_id, "id": "warm"}).decode()
        )
        while orjson.loads(await ws.recv()).get("ref") != "warm":  # membership now cached
            pass
        gateway = state["app"].gateway
        assert isinstance(gateway, Gateway)
        (connection,) = [c for c in gateway.connections if c.client is not None]
        assert isinstance(connection, Connection)
        received: list[dict[str, Any]] = []
        pong, answered = asyncio.Event(), asyncio.Event()

        async def read() -> None:
            async for raw in ws:
                frame = orjson.loads(raw)
                received.append(frame)
                if frame["type"] == "pong":
                    pong.set()
                if sum(1 for f in received if "ref" in f) == count + 2:
                    answered.set()

        async def send_all() -> None:
            # A send first: it waits for the stopped store, so the worker is busy with it.
            cmid = f"bp-{secrets.token_hex(6)}"
            await ws.send(
                f'{{"type":"send","event_id":{event_id},"client_msg_id":"{cmid}",'
                f'"text":"first","id":"s"}}'
            )
            for i in range(count):
                await ws.send(f'{{"type":"history","event_id":{event_id},"id":"h{i}"}}')
            await ws.send('{"type":"ping","id":"last"}')

        reader = asyncio.create_task(read())
        with _store_stopped(cql_server):
            sender = asyncio.create_task(send_all())
            # Either the server read everything (the pong came) or it stopped reading.
            async with asyncio.timeout(TIMEOUT):
                while not pong.is_set():
                    if connection.control is not None and connection.control.reading_paused:
                        break
                    await asyncio.sleep(0.005)  # polls the server's state, no proof by time
            queued = connection.queued_commands
            assert not pong.is_set(), f"all {count} frames were read; {queued} commands queued"
            assert queued <= COMMANDS_HIGH
        async with asyncio.timeout(60):
            await sender
            await pong.wait()
            await answered.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    answers = [f["ref"] for f in received if f["type"] == "history"]
    assert answers == [f"h{i}" for i in range(count)]  # each once, in order
    assert [f["ref"] for f in received if f["type"] == "ack"] == ["s"]
    assert [f for f in received if f["type"] == "error"] == []


async def test_large_commands_pause_reading_by_their_bytes_before_their_count(
    captured: tuple[str, dict[str, Any]], api: Api, cql_server: EmbeddedCqlServer
) -> None:
    """Sends of ~36 KB each: reading stops once about 1 MiB of commands waits, far below
    ``COMMANDS_HIGH`` commands; every send is acked once the store is back."""
    url, state = captured
    (ada,), event_id = await users_and_event(api, 1)
    count = 100
    text = "😀" * 4000
    attachments = [f"https://files.test/{i}/" + "a" * 1980 for i in range(10)]
    headers = {"Authorization": f"Bearer {api.tokens.mint(ada)}"}
    async with connect(
        ws_url(url), additional_headers=headers, open_timeout=TIMEOUT, compression=None
    ) as ws:
        c = WsClient(ws)
        await c.expect("welcome")
        await c.request(type="history", event_id=event_id)  # membership now cached
        gateway = state["app"].gateway
        assert isinstance(gateway, Gateway)
        (connection,) = [
            conn
            for conn in gateway.connections
            if conn.client is not None and conn.client.user_id == ada
        ]
        control = connection.control
        assert control is not None

        async def send_all() -> None:
            for i in range(count):
                await c.send(
                    type="send",
                    id=f"big-{i}",
                    event_id=event_id,
                    client_msg_id=f"big-{i}-{secrets.token_hex(4)}",
                    text=text,
                    attachments=attachments,
                )

        with _store_stopped(cql_server):
            sender = asyncio.create_task(send_all())

            async def reading_paused() -> bool:
                return control.reading_paused

            await until(reading_paused, what="reading to pause")
            queued, held = connection.queued_commands, connection.queued_command_bytes
            assert queued < COMMANDS_HIGH // 2, queued
            assert COMMAND_BYTES_HIGH <= held < COMMAND_BYTES_HIGH + 64 * 1024, held
        async with asyncio.timeout(60):
            await sender
            answers = [await c.expect(answer_to(f"big-{i}"), wait=60) for i in range(count)]
    assert [a["type"] for a in answers] == ["ack"] * count
