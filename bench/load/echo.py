"""The baseline: a bare ``websockets`` server that answers every text frame with itself.

No JSON parsing, no auth, no store — only the WebSocket work every server must do. The
generators treat the echoed ``send`` frame as its ack, so the same client code measures
the machine's own ceiling for Python WebSocket traffic. ``GET /healthz`` answers 200 so the
launcher can wait for it like it waits for the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
from http import HTTPStatus

import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def run(host: str, port: int) -> None:
    async with serve(
        echo, host, port, process_request=health, compression=None, max_size=2**20, backlog=4096
    ) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load.echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
