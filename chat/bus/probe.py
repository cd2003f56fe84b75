"""The ``/readyz`` check of the bus: a token sent through NATS that must come back.

A TCP connection to NATS is not enough: the probe passes only if the server takes the publish
and routes it back to this node's subscription, the path every frame takes. The subject
(``chat.ready.<node>``) is private to one node.
"""

from __future__ import annotations

import asyncio
import secrets

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from chat.errors import ServiceUnavailable

READY_SUBJECT = "chat.ready.{}"
PROBE_TIMEOUT = 1.0
"""How long a readiness probe waits for its token to come back through NATS."""


class BusProbe:
    """Round trips through NATS on one node's private subject."""

    def __init__(self, nc: NatsClient, node: str) -> None:
        self._nc = nc
        self._subject = READY_SUBJECT.format(node)
        self._waiting: dict[bytes, asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self._nc.subscribe(self._subject, cb=self._echo)

    async def round_trip(self) -> None:
        """Publish a token and wait for it; ServiceUnavailable after :data:`PROBE_TIMEOUT`."""
        token = secrets.token_bytes(8)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        try:
            await self._nc.publish(self._subject, token)
            await asyncio.wait_for(waiter, PROBE_TIMEOUT)
        except TimeoutError:
            raise ServiceUnavailable(
                f"the event bus did not echo a probe within {PROBE_TIMEOUT:g} s"
            ) from None
        finally:
            self._waiting.pop(token, None)

    async def _echo(self, msg: Msg) -> None:
        waiter = self._waiting.get(msg.data)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
