"""The NATS credential and TLS settings reach nats-py: real nats-servers that demand a password,
a token, TLS or a client certificate, and one that offers no TLS to a node that asks for it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chat.app import create_app
from chat.bus.connect import open_nats_hub
from chat.bus.connect_options import is_encrypted, nats_connect_options
from chat.config import Settings
from tests.bus.nodes import NatsServer, nats_server
from tests.polling import until
from tests.servers import run_server
from tests.tls import Authority, Issued, make_authority

WAIT = 10.0
PASSWORD = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("nats-pki"))


@pytest.fixture(scope="module")
def server_cert(ca: Authority) -> Issued:
    return ca.issue("nats", dns=["localhost"], ips=["127.0.0.1"])


@contextlib.asynccontextmanager
async def running(*options: str) -> AsyncIterator[NatsServer]:
    with nats_server(*options) as server:
        await server.start()
        yield server


def tls_flags(cert: Issued) -> tuple[str, ...]:
    return ("--tls", "--tlscert", str(cert.cert), "--tlskey", str(cert.key))


async def hub_starts(url: str, settings: Settings, **update: Any) -> bool:
    """Whether a hub connects with these settings; a refusal surfaces as the client's error."""
    configured = settings.model_copy(update={"nats_url": url, **update})
    async with (
        asyncio.timeout(WAIT),
        open_nats_hub(url, nats_connect_options(configured), node_id="probe") as hub,
    ):
        return hub is not None


async def test_a_node_reaches_nats_over_tls_with_a_password_and_readyz_proves_the_bus(
    settings: Settings, ca: Authority, server_cert: Issued
) -> None:
    flags = (*tls_flags(server_cert), "--user", "chat", "--pass", PASSWORD)
    async with running(*flags) as nats:
        configured = settings.model_copy(
            update={
                "nats_url": nats.url,
                "nats_user": "chat",
                "nats_password": SecretStr(PASSWORD),
                "nats_tls_ca_file": ca.cert,
            }
        )
        assert configured.nats_uses_tls
        async with (
            run_server(create_app(configured)) as url,
            httpx.AsyncClient(base_url=url, timeout=WAIT) as http,
        ):
            # Ready once the node has joined the others (two heartbeats: docs/deploy.md).
            ready = await until(
                lambda: _ready_answer(http), within=WAIT, what="/readyz to answer 200"
            )
        assert ready.json()["checks"]["bus"] == "ok"


async def _ready_answer(http: httpx.AsyncClient) -> httpx.Response | None:
    response = await http.get("/readyz")
    return response if response.status_code == 200 else None


async def refused(
    url: str, settings: Settings, caplog: pytest.LogCaptureFixture, reason: str, **update: Any
) -> None:
    """A hub with these settings does not start: the connection is refused for ``reason`` (the
    node keeps retrying, as it does for a server that is down, and logs why each time); the
    attempt is then ended."""
    caplog.clear()
    attempt = asyncio.create_task(hub_starts(url, settings, **update))

    async def refusal_logged() -> bool:
        return reason in caplog.text

    await until(refusal_logged, within=WAIT, what="the server's refusal")
    assert not attempt.done()
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await attempt


async def test_a_wrong_password_or_a_missing_token_is_refused_by_the_server(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running("--user", "chat", "--pass", PASSWORD) as nats:
        await refused(
            nats.url,
            settings,
            caplog,
            "Authorization Violation",
            nats_user="chat",
            nats_password=SecretStr("wrong"),
        )
        assert await hub_starts(
            nats.url, settings, nats_user="chat", nats_password=SecretStr(PASSWORD)
        )
    token = secrets.token_urlsafe(24)
    async with running("--auth", token) as nats:
        await refused(nats.url, settings, caplog, "Authorization Violation")
        assert await hub_starts(nats.url, settings, nats_token=SecretStr(token))


async def test_a_server_certificate_from_another_ca_is_refused(
    settings: Settings, ca: Authority, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = make_authority(tmp_path, "stranger").issue("nats", ips=["127.0.0.1"])
    async with running(*tls_flags(stranger)) as nats:
        await refused(
            nats.url, settings, caplog, "CERTIFICATE_VERIFY_FAILED", nats_tls_ca_file=ca.cert
        )


async def test_a_server_that_demands_a_client_certificate_gets_the_configured_one(
    settings: Settings, ca: Authority, server_cert: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = ca.issue("gateway-nats", client=True)
    flags = (*tls_flags(server_cert), "--tlsverify", "--tlscacert", str(ca.cert))
    async with running(*flags) as nats:
        await refused(nats.url, settings, caplog, "CERTIFICATE_REQUIRED", nats_tls_ca_file=ca.cert)
        assert await hub_starts(
            nats.url,
            settings,
            nats_tls_ca_file=ca.cert,
            nats_tls_cert_file=gateway.cert,
            nats_tls_key_file=gateway.key,
        )


async def test_a_node_configured_for_tls_refuses_a_server_that_stays_in_plaintext(
    settings: Settings, ca: Authority
) -> None:
    async with running() as nats:
        with pytest.raises(ConnectionError, match="did not start TLS"):
            await hub_starts(nats.url, settings, nats_tls_ca_file=ca.cert)
        configured = settings.model_copy(update={"nats_url": nats.url})
        async with open_nats_hub(nats.url, nats_connect_options(configured)) as hub:
            assert not is_encrypted(hub.nc), "without TLS settings plaintext is what was asked"
