"""Connecting a node to NATS: the connection's callbacks, TLS enforcement, and the hub on it.

The application enters :func:`open_nats_hub` when ``CHAT_NATS_URL`` is set
(:mod:`chat.gateway.runtime`); the :class:`~chat.bus.hub.NatsHub` it yields is the gateway
hub's cross-node plug-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import nats

from chat.bus.connect_options import is_encrypted
from chat.bus.hub import NatsHub

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_nats_hub(
    url: str, connect_options: Mapping[str, Any] | None = None, **options: Any
) -> AsyncIterator[NatsHub]:
    """Connect to NATS (reconnecting forever) and run a :class:`NatsHub` on it.

    ``connect_options`` carry the credentials and TLS context
    (:func:`chat.bus.connect_options.nats_connect_options`); with a TLS context, a connection
    the server left in plaintext is refused (closed), at start and after every reconnect.
    """
    hub: NatsHub | None = None
    tls_required = (connect_options or {}).get("tls") is not None

    async def on_disconnect() -> None:
        if hub is not None:
            await hub.disconnected()

    async def on_reconnect() -> None:
        if tls_required and not is_encrypted(nc):
            log.error("NATS server %s did not start TLS; closing the bus connection", url)
            await nc.close()
            return
        if hub is not None:
            await hub.reconnected()

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %r", exc)

    nc = await nats.connect(
        servers=[url],
        name=f"timingle-chat-{os.getpid()}",
        connect_timeout=2,
        reconnect_time_wait=0.25,
        max_reconnect_attempts=-1,
        ping_interval=5,
        max_outstanding_pings=2,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        **(connect_options or {}),
    )
    if tls_required and not is_encrypted(nc):
        await nc.close()
        raise ConnectionError(
            f"the NATS server at {url} did not start TLS, which the CHAT_NATS_TLS* settings "
            "ask for; enable TLS on the server (a `tls {}` block makes it require TLS)"
        )
    hub = NatsHub(nc, **options)
    try:
        await hub.start()
        yield hub
    finally:
        await hub.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 2.0)
        with contextlib.suppress(Exception):
            await nc.close()
