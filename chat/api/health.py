"""Liveness and readiness probes.

``/healthz`` says the process serves requests. ``/readyz`` proves the path a message takes,
so a load balancer stops sending traffic to a node that would fail it: a PostgreSQL round
trip, a synthetic CQL write read back at the app's consistency
(:class:`~chat.store.readiness.CqlReadinessProbe`), and every check a later layer registers in
``state.extras["readiness_checks"]`` (the NATS bus adds a publish/receive round trip there).
The checks run concurrently, each under :data:`READINESS_TIMEOUT_S`, so a hung dependency
makes the probe answer 503 quickly instead of hanging the orchestrator's probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chat.api.endpoint import json_response
from chat.api.problems import PROBLEM_JSON
from chat.metrics import CONTENT_TYPE_LATEST
from chat.state import AppState
from chat.store.readiness import CqlReadinessProbe

READINESS_TIMEOUT_S = 2.0
PROBE_KEY = "cql_readiness_probe"

ReadinessCheck = Callable[[AppState], Awaitable[None]]


async def check_postgres(state: AppState) -> None:
    async with state.pg.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def check_cql(state: AppState) -> None:
    probe = state.extras.get(PROBE_KEY)
    if not isinstance(probe, CqlReadinessProbe):
        probe = state.extras[PROBE_KEY] = CqlReadinessProbe(state.cql, state.settings)
    await probe.run()


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _run_check(name: str, check: ReadinessCheck, state: AppState) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(state), READINESS_TIMEOUT_S)
    except TimeoutError:
        return name, f"failed: no answer within {READINESS_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return name, f"failed: {type(exc).__name__}: {exc}"[:200]
    return name, "ok"


async def readyz(request: Request) -> Response:
    """200 ``{"status": "ready", "checks": ...}``, or 503 problem+json naming what failed."""
    state: AppState = request.state.app
    checks: dict[str, ReadinessCheck] = {"postgres": check_postgres, "cql": check_cql}
    checks.update(state.extras.get("readiness_checks", {}))
    results = dict(
        await asyncio.gather(*(_run_check(name, c, state) for name, c in checks.items()))
    )
    failing = [name for name, result in results.items() if result != "ok"]
    if not failing:
        return json_response({"status": "ready", "checks": results})
    problem = {
        "type": "about:blank",
        "title": "Not ready",
        "status": 503,
        "code": "not_ready",
        "detail": f"failing check(s): {', '.join(failing)}",
        "instance": request.url.path,
        "failing": failing,
        "checks": results,
    }
    return Response(
        orjson.dumps(problem),
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": "2", "Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app instance's registry (:mod:`chat.metrics`)."""
    state: AppState = request.state.app
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
