"""The generators' minimal WebSocket client against a real ``websockets`` server (real sockets).

The bench's figures are only as good as its client: it must read every frame in order, answer
pings, report the server's close code and refuse a bad upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bench.load.wsclient import ClosedError, HandshakeError, WsClient


async def _handler(ws: ServerConnection) -> None:
    async for message in ws:
        assert isinstance(message, str)
        if message == "greet twice":
            await ws.send("first")
            await ws.send("second")
        elif message == "fragments":
            await ws.send(["frag", "mented ", "é" * 70_000])  # one message, three frames
        elif message == "ping":
            await asyncio.wait_for(await ws.ping(b"x"), 5)  # the client must answer
            await ws.send("pong received")
        elif message == "bye":
            await ws.close(4008, "too slow")
        else:
            await ws.send(message)


def _refuse(_ws: ServerConnection, request: Request) -> Response | None:
    if request.path == "/refused":
        return Response(403, "Forbidden", Headers(), b"no")
    return None


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async with serve(_handler, "127.0.0.1", 0, process_request=_refuse) as running:
        assert isinstance(running, Server)
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def _connect(url: str) -> tuple[WsClient, asyncio.Queue[bytes]]:
    client = await WsClient.connect(url + "/")
    received: asyncio.Queue[bytes] = asyncio.Queue()
    client.listen(received.put_nowait, lambda: None)
    return client, received


async def test_frames_arrive_in_order_whole_and_fragmented(server: str) -> None:
    client, received = await _connect(server)
    for i in range(200):
        client.send(f"m{i}" + "x" * (i * 50))  # 7-bit, 16-bit lengths
    client.send("fragments")
    for i in range(200):
        assert await asyncio.wait_for(received.get(), 5) == f"m{i}".encode() + b"x" * (i * 50)
    assert await asyncio.wait_for(received.get(), 5) == ("fragmented " + "é" * 70_000).encode()
    await client.close()
    assert client.close_code == 1000


async def test_pings_are_answered_and_the_close_code_is_kept(server: str) -> None:
    client, received = await _connect(server)
    client.send("ping")
    assert await asyncio.wait_for(received.get(), 10) == b"pong received"
    client.send("bye")
    await asyncio.wait_for(asyncio.shield(client.closed), 5)
    assert client.close_code == 4008
    with pytest.raises(ClosedError):
        client.send("after the close")


async def test_a_refused_upgrade_raises(server: str) -> None:
    with pytest.raises(HandshakeError):
        await asyncio.wait_for(WsClient.connect(server + "/refused"), 5)


async def test_frames_that_arrive_before_listen_are_delivered_first(server: str) -> None:
    client = await WsClient.connect(server + "/")
    client.send("greet twice")
    await asyncio.sleep(0.2)  # makes it likely that both arrive before listen; either way:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    ended: list[int | None] = []
    client.listen(received.put_nowait, lambda: ended.append(client.close_code))
    assert await asyncio.wait_for(received.get(), 5) == b"first"
    assert await asyncio.wait_for(received.get(), 5) == b"second"
    await client.close()
    assert ended == [1000]
