"""``/readyz`` runs one probe at a time and shares its result; its 503 names the failing check
without exception text; ``CHAT_ADMIN_PORT`` moves ``/metrics`` (and a copy of the probes) to a
listener of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from chat.app import create_app
from chat.config import Settings
from chat.embedded.nats import free_port
from chat.state import AppState
from tests.polling import until
from tests.servers import run_server


@dataclass
class StateGrab:
    """Wraps the app to get hold of its state on the first request, so a test can register a
    readiness check of its own (as the NATS bus registers one) on the real running app."""

    app: ASGIApp
    states: list[AppState] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state", {}).get("app")
        if isinstance(state, AppState) and not self.states:
            self.states.append(state)
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    grab = StateGrab(create_app(settings))
    async with run_server(grab) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        yield http, grab.states[0]


async def test_concurrent_readyz_requests_share_one_probe_and_reuse_it_for_a_second(
    settings: Settings,
) -> None:
    calls = 0

    async def slow_check(state: AppState) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)

    async with served(settings) as (http, state):
        state.readiness_checks["slow"] = slow_check
        answers = await asyncio.gather(*(http.get("/readyz") for _ in range(20)))
        assert {a.status_code for a in answers} == {200}
        assert calls == 1, "20 concurrent probes ran the checks once"
        assert answers[0].json()["checks"] == {"postgres": "ok", "cql": "ok", "slow": "ok"}
        again = await http.get("/readyz")
        assert again.status_code == 200
        assert calls == 1, "a result less than a second old is answered again"

        async def probed_again() -> bool:
            await http.get("/readyz")
            return calls == 2

        await until(probed_again, within=5.0, what="a fresh probe after a second")


async def test_a_failing_check_is_named_without_its_exception_text_which_goes_to_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def leaky_check(state: AppState) -> None:
        raise ConnectionError("login failed for user chat password=hunter2 at 10.0.3.7:5432")

    async def hung_check(state: AppState) -> None:
        await asyncio.sleep(60)

    async with served(settings) as (http, state):
        checks = state.readiness_checks
        checks["leaky"] = leaky_check
        checks["hung"] = hung_check
        with caplog.at_level(logging.WARNING, logger="chat.api.health"):
            answer = await http.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["failing"] == ["leaky", "hung"]
    assert body["checks"] == {"postgres": "ok", "cql": "ok", "leaky": "failed", "hung": "timeout"}
    assert "hunter2" not in answer.text
    assert "10.0.3.7" not in answer.text
    assert "ConnectionError" not in answer.text
    assert "readiness check leaky failed: ConnectionError: login failed" in caplog.text
    assert "readiness check hung: no answer within 2 s" in caplog.text


async def test_the_admin_port_serves_metrics_and_probes_and_the_main_port_no_metrics(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    admin_port = free_port()
    with caplog.at_level(logging.INFO, logger="chat.api.admin"):
        admin_settings = settings.model_copy(
            update={"admin_port": admin_port, "rest_address_quota": 4}
        )
        async with served(admin_settings) as (http, _):
            admin = f"http://127.0.0.1:{admin_port}"
            async with httpx.AsyncClient(base_url=admin, timeout=10) as ops:
                for _ in range(5):  # not rate limited: past the main port's quota of 4
                    assert (await ops.get("/healthz")).status_code == 200
                metrics = await ops.get("/metrics")
                assert metrics.status_code == 200
                assert "chat_ws_connections" in metrics.text
                assert (await ops.get("/readyz")).json()["status"] == "ready"
                assert (await ops.get("/healthz")).json() == {"status": "ok"}
                assert (await ops.get("/v1/openapi.json")).status_code == 404
                assert (await ops.get("/v1/users/me")).status_code == 404
            hidden = await http.get("/metrics")
            assert hidden.status_code == 404
            assert hidden.headers["content-type"] == "application/problem+json"
            assert (await http.get("/readyz")).status_code == 200
            assert "/metrics" not in (await http.get("/v1/openapi.json")).json()["paths"]
        assert f"admin listener (metrics, probes) on {admin}" in caplog.text
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=admin, timeout=2) as ops:
            await ops.get("/healthz")
