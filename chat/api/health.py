"""Liveness and readiness probes.

``/healthz`` says the process serves requests. ``/readyz`` proves the path a message takes,
so a load balancer stops sending traffic to a node that would fail it: a PostgreSQL round
trip, a synthetic CQL write read back at the app's consistency
(:class:`~chat.store.cql.readiness.CqlReadinessProbe`), and every check a later layer registers in
``AppState.readiness_checks`` (the NATS bus adds a publish/receive round trip there).
The checks run concurrently, each under :data:`READINESS_TIMEOUT_S`, so a hung dependency
makes the probe answer 503 quickly instead of hanging the orchestrator's probe.

Probing costs a database write, so however many requests arrive, one probe runs at a time
(:class:`SharedReadiness`): requests that arrive while it runs wait for its result, and a
result is answered again for :data:`READINESS_REUSE_S`. A failing check is named in the answer
as ``failed`` or ``timeout`` — or ``over_memory_budget`` when the CQL write failed because the
embedded CQL server refuses writes past its memory budget; why it failed (exception text,
which may name hosts, users or paths) goes to the log only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chat.api.endpoint import json_response
from chat.api.problems import PROBLEM_JSON
from chat.metrics import CONTENT_TYPE_LATEST
from chat.state import AppState, ReadinessCheck
from chat.store.cql.embedded_stats import OverMemoryBudget
from chat.store.driver.failures import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

READINESS_TIMEOUT_S = 2.0
SCRAPE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *DEPENDENCY_ERRORS)
READINESS_REUSE_S = 1.0


async def check_postgres(state: AppState) -> None:
    async with state.pg.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def check_cql(state: AppState) -> None:
    """The CQL write and read-back; a write the embedded server refuses for its memory budget
    fails as :class:`OverMemoryBudget`, so that the answer names that reason."""
    try:
        await state.cql_probe.run()
    except DEPENDENCY_ERRORS:
        if state.embedded_stats is not None:
            await state.embedded_stats.check_memory_budget()
        raise


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _run_check(name: str, check: ReadinessCheck, state: AppState) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(state), READINESS_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness check %s: no answer within %g s", name, READINESS_TIMEOUT_S)
        return name, "timeout"
    except OverMemoryBudget as exc:  # a reason of its own: the operator's to act on
        log.warning("readiness check %s: %s", name, exc)
        return name, exc.code
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return name, "failed"
    return name, "ok"


async def _probe(state: AppState) -> dict[str, str]:
    checks: dict[str, ReadinessCheck] = {"postgres": check_postgres, "cql": check_cql}
    checks.update(state.readiness_checks)
    return dict(await asyncio.gather(*(_run_check(name, c, state) for name, c in checks.items())))


class SharedReadiness:
    """One readiness probe at a time; its result shared by every caller for a short while.

    A caller that arrives while a probe runs awaits that same probe (shielded: a caller that
    goes away does not cancel it for the others); one that arrives within ``reuse_seconds``
    of its end gets its result without probing.
    """

    def __init__(
        self, reuse_seconds: float = READINESS_REUSE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reuse_seconds = reuse_seconds
        self.clock = clock
        self.probes_run = 0
        self._running: asyncio.Task[dict[str, str]] | None = None
        self._result: dict[str, str] | None = None
        self._finished_at = 0.0

    async def result(self, state: AppState) -> dict[str, str]:
        if self._result is not None and self.clock() - self._finished_at < self.reuse_seconds:
            return self._result
        if self._running is None:
            self._running = asyncio.create_task(self._run(state), name="readiness-probe")
        return await asyncio.shield(self._running)

    async def _run(self, state: AppState) -> dict[str, str]:
        self.probes_run += 1
        try:
            result = await _probe(state)
        finally:
            self._running = None
        self._result, self._finished_at = result, self.clock()
        return result


async def readyz(request: Request) -> Response:
    """200 ``{"status": "ready", "checks": ...}``, or 503 problem+json naming what failed."""
    state: AppState = request.state.app
    results = await state.readiness.result(state)
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
    """Prometheus text exposition of this app instance's registry (:mod:`chat.metrics`).

    The embedded CQL server's figures are read first (shared with probes arriving at the same
    time); when that fails the scrape goes on without them.
    """
    state: AppState = request.state.app
    if state.embedded_stats is not None:
        try:
            await state.embedded_stats.read()
        except SCRAPE_ERRORS as exc:
            state.embedded_stats.last = None
            log.warning("reading system.embedded_stats failed: %s: %s", type(exc).__name__, exc)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
