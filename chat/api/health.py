"""Liveness and readiness probes.

``/healthz`` says the process serves requests; ``/readyz`` says its dependencies answer, so a load
balancer stops sending traffic to a node whose database is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from chat.api.endpoint import json_response
from chat.state import AppState

READINESS_TIMEOUT_S = 2.0

ReadinessCheck = Callable[[AppState], Awaitable[None]]


async def check_postgres(state: AppState) -> None:
    async with state.pg.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def check_cql(state: AppState) -> None:
    await state.cql.ping()


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: AppState = request.state.app
    checks: dict[str, ReadinessCheck] = {"postgres": check_postgres, "cql": check_cql}
    checks.update(state.extras.get("readiness_checks", {}))
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(state), READINESS_TIMEOUT_S)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:200]
    ready = all(v == "ok" for v in results.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": results},
        200 if ready else 503,
    )
