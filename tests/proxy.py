"""A TCP proxy that tests can use to break the network between a client and a server.

As asyncpg's adversity tests do: traffic goes through a real socket pair per connection, and
the test can cut every connection at once (the client sees the TCP connection die, with no
WebSocket close frame), refuse new connections for a while (the client is "offline"), or hold
back what the server sends (answers written by the server never reach the client).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._offline = False
        self._hold_downstream = False

    def url(self, scheme: str = "ws", path: str = "/v1/ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Abort every open connection (RST): no close frame, no FIN handshake."""
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    def retarget(self, base_url: str) -> None:
        """Send new connections to the HTTP server at ``base_url`` (a restarted server)."""
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))

    def go_offline(self) -> None:
        """Cut every connection and refuse new ones until :meth:`go_online`."""
        self._offline = True
        self.cut()

    def go_online(self) -> None:
        self._offline = False

    def hold_downstream(self, hold: bool = True) -> None:
        """Drop (while ``hold``) every byte the server sends: the client hears nothing."""
        self._hold_downstream = hold

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._offline:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, downstream=False)),
            asyncio.create_task(self._pipe(up_reader, writer, downstream=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, downstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if downstream and self._hold_downstream:
                    continue
                writer.write(data)
                await writer.drain()
            writer.close()


@contextlib.asynccontextmanager
async def tcp_proxy(base_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the HTTP server at ``base_url`` (``http://host:port``)."""
    proxy = TcpProxy("", 0)
    proxy.retarget(base_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
