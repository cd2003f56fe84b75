"""The generators' picows adapter against a real ``websockets`` server (real sockets, no mocks).

The bench's figures are only as good as its client: it must send the token in the upgrade,
deliver every message in order (those that arrive with the upgrade response too), reassemble
fragmented ones, report the close code that ended the connection (``close_<code>`` errors),
and refuse a send once the connection is closing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from picows import WSHandshakeError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bench.load.ws import ClosedError, PicowsClient

TOKEN = "Bearer t0ken"


async def _handler(ws: ServerConnection) -> None:
    await ws.send("welcome")  # often arrives with the upgrade response, before connect() returns
    async for message in ws:
        assert isinstance(message, str)
        if message == "fragments":
            await ws.send(["frag", "mented ", "é" * 70_000])  # one message, three frames
        elif message == "ping":
            await asyncio.wait_for(await ws.ping(b"x"), 5)  # the client must answer
            await ws.send("pong received")
        elif message == "bye":
            await ws.close(4008, "too slow")
        elif message == "drop":
            ws.transport.abort()  # no close frame
        elif message == "violate":
            ws.transport.write(b"\x80\x00")  # a final continuation frame without a message
        else:
            await ws.send(message)


def _authorize(_ws: ServerConnection, request: Request) -> Response | None:
    if request.headers.get("Authorization") != TOKEN:
        return Response(401, "Unauthorized", Headers(), b"no token")
    return None


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async with serve(_handler, "127.0.0.1", 0, process_request=_authorize) as running:
        assert isinstance(running, Server)
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def _connect(url: str) -> tuple[PicowsClient, asyncio.Queue[bytes], list[int | None]]:
    client = await asyncio.wait_for(PicowsClient.connect(url, {"Authorization": TOKEN}), 5)
    received: asyncio.Queue[bytes] = asyncio.Queue()
    ended: list[int | None] = []
    client.listen(received.put_nowait, lambda: ended.append(client.close_code))
    assert await asyncio.wait_for(received.get(), 5) == b"welcome"
    return client, received, ended


async def test_messages_arrive_in_order_whole_and_fragmented(server: str) -> None:
    client, received, ended = await _connect(server)
    for i in range(200):
        client.send(f"m{i}".encode() + b"x" * (i * 400))  # 7-bit, 16-bit and 64-bit lengths
    client.send(b"fragments")
    for i in range(200):
        assert await asyncio.wait_for(received.get(), 5) == f"m{i}".encode() + b"x" * (i * 400)
    assert await asyncio.wait_for(received.get(), 5) == ("fragmented " + "é" * 70_000).encode()
    await client.close()
    assert client.close_code == 1000
    assert ended == [1000]


async def test_pings_are_answered_and_the_servers_close_code_is_kept(server: str) -> None:
    client, received, ended = await _connect(server)
    client.send(b"ping")
    assert await asyncio.wait_for(received.get(), 10) == b"pong received"
    client.send(b"bye")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    assert ended == [4008]
    with pytest.raises(ClosedError):
        client.send(b"after the close")


async def test_a_dropped_connection_is_1006(server: str) -> None:
    client, _, ended = await _connect(server)
    client.send(b"drop")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    assert ended == [1006]
    with pytest.raises(ClosedError):
        client.send(b"after the drop")


async def test_a_protocol_violation_by_the_server_is_1002(server: str) -> None:
    client, _, ended = await _connect(server)
    client.send(b"violate")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    assert ended == [1002]


async def test_an_upgrade_without_the_token_is_refused(server: str) -> None:
    with pytest.raises(WSHandshakeError):
        await asyncio.wait_for(PicowsClient.connect(server), 5)


async def test_listen_after_the_end_reports_the_close_at_once(server: str) -> None:
    client = await asyncio.wait_for(PicowsClient.connect(server, {"Authorization": TOKEN}), 5)
    client.send(b"bye")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    received: list[bytes] = []
    ended: list[int | None] = []
    client.listen(received.append, lambda: ended.append(client.close_code))
    assert received == [b"welcome"]  # kept, although it arrived before listen
    assert ended == [4008]
