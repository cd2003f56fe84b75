"""Fault: the CQL server restarts while clients send.

A dedicated, durable embedded CQL server (its own data dir; ``restart()`` keeps the port) backs
a dedicated app. During the outage a send is answered with ``error unavailable`` — never a
false ack — and ``/readyz`` names ``cql``; the driver reconnects by itself, sends are acked
again without restarting the app, and every message acked at any point is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from chat.app import create_app
from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from tests.api_client import Api
from tests.gateway.live import UNLIMITED_RATES, Frame, WsClient, client, users_and_event
from tests.polling import until
from tests.servers import run_server

RECOVERY_TIMEOUT = 60.0


@contextlib.asynccontextmanager
async def app_on_own_cql(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[str, EmbeddedCqlServer]]:
    async with EmbeddedCqlServer(data_dir=tmp_path / "cql") as cql:
        own = settings.model_copy(
            update={
                "cql_contact_points": cql.host,
                "cql_port": cql.port,
                "cql_request_timeout_seconds": 3.0,
                **UNLIMITED_RATES,
            }
        )
        async with run_server(create_app(own)) as url:
            yield url, cql


async def send_once(ws: WsClient, event_id: int, ref: str) -> Frame:
    await ws.send(type="send", id=ref, event_id=event_id, client_msg_id=ref, text=ref)
    return await ws.expect(lambda f: f.get("ref") == ref, wait=30)


async def test_cql_restart_fails_sends_clearly_then_recovers_without_losing_acks(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    acked: set[str] = set()
    async with (
        app_on_own_cql(settings, tmp_path) as (url, cql),
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        client(url, api, ada) as ws,
    ):
        for i in range(5):
            answer = await send_once(ws, event_id, f"before-{i}")
            assert answer["type"] == "ack", answer
            acked.add(answer["message_id"])

        await asyncio.to_thread(cql.stop)
        during = await send_once(ws, event_id, "during-outage")
        assert during["type"] == "error", during
        assert during["code"] == "unavailable", during
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503
        assert "cql" in not_ready.json()["failing"]

        await asyncio.to_thread(cql.start)  # same port, same data dir
        attempts = itertools.count(1)

        async def a_send_is_acked() -> bool:
            answer = await send_once(ws, event_id, f"after-{next(attempts)}")
            if answer["type"] == "ack":
                acked.add(answer["message_id"])
                return True
            assert answer["code"] == "unavailable", answer
            return False

        # The driver reconnects on its own schedule.
        await until(
            a_send_is_acked,
            within=RECOVERY_TIMEOUT,
            interval=0.5,
            what="sends to recover after the CQL restart",
        )
        for i in range(5):
            answer = await send_once(ws, event_id, f"recovered-{i}")
            assert answer["type"] == "ack", answer
            acked.add(answer["message_id"])

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        # /readyz answers a probe's result again for a second: it may lag the sends by that much.
        await until(ready, within=5.0, what="/readyz to answer 200 again")

        response = await http.get(
            f"/v1/events/{event_id}/messages", params={"limit": 100}, headers=api.auth(ada)
        )
        assert response.status_code == 200, response.text
        stored = {m["message_id"] for m in response.json()["items"]}
        assert acked <= stored, acked - stored
