"""The application factory and its lifespan.

The lifespan opens every resource in a fixed order (database, pool, migrations, background
tasks) and closes them in the reverse order; nothing is opened at import time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from chat.api import convertors, uuid_path
from chat.api.admin import ADMIN_ROUTES, admin_listener
from chat.api.endpoint import json_response
from chat.api.health import SharedReadiness
from chat.api.openapi import build_openapi, problem_response
from chat.api.problems import EXCEPTION_HANDLERS, upgrade_required
from chat.api.rate_limits import RateLimitMiddleware, RestRateLimits
from chat.api.request_ids import RequestIdMiddleware
from chat.api.routes import build_api
from chat.auth import TokenService
from chat.config import Settings
from chat.console import console_routes
from chat.embedded.postgres import embedded_postgres
from chat.gateway.asyncapi import build_asyncapi
from chat.gateway.runtime import PATH as WS_PATH
from chat.gateway.runtime import open_gateway, websocket_route
from chat.metrics import Metrics
from chat.state import AppState
from chat.store.cql import migrations as cql_migrations
from chat.store.cql.embedded_stats import EmbeddedStats
from chat.store.cql.readiness import CqlReadinessProbe
from chat.store.driver.failures import DEPENDENCY_ERRORS
from chat.store.driver.session import CqlStore, open_cql
from chat.store.pg import migrations
from chat.store.pg.pool import open_pool
from chat.store.stores import open_stores
from chat.sweeper import event_sweeper

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def postgres_dsn(settings: Settings) -> AsyncIterator[str]:
    """The configured PostgreSQL, or a private embedded one when none is configured."""
    if settings.pg_dsn is not None:
        yield settings.pg_dsn
        return
    async with embedded_postgres(settings.data_dir / "postgres") as dsn:
        yield dsn


async def embedded_store_stats(cql: CqlStore, metrics: Metrics) -> EmbeddedStats | None:
    """The embedded CQL server's figures, exposed in ``metrics``; None when it is ScyllaDB."""
    stats = EmbeddedStats(cql)
    try:
        await stats.read()
    except DEPENDENCY_ERRORS as exc:  # reachable a moment ago (migrations): try again later
        log.warning("reading system.embedded_stats failed: %s: %s", type(exc).__name__, exc)
    if not stats.available:
        return None
    metrics.observe_embedded_store(lambda: stats.last)
    return stats


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    convertors.register()
    uuid_path.register()
    api = build_api()
    rate_limits = RestRateLimits(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            settings.secure_data_dir()
            dsn = await stack.enter_async_context(postgres_dsn(settings))
            settings.secure_data_dir()  # embedded-postgres opens its parents up when run by root
            pool = await stack.enter_async_context(open_pool(dsn, settings))
            if settings.migrate_on_start:
                async with pool.acquire() as conn:
                    applied = await migrations.migrate_up(conn)
                log.info("PostgreSQL schema up to date (%d migration(s) applied)", len(applied))
            cql = await stack.enter_async_context(open_cql(settings))
            if settings.cql_migrate_on_start:
                cql_applied = await cql_migrations.migrate_up(cql, settings)
                log.info("CQL schema up to date (%d migration(s) applied)", len(cql_applied))
            app_metrics = Metrics()
            app_metrics.observe_rate_limit_tables(
                {lim.policy.name: lim.table.__len__ for lim in rate_limits.limiters()}
            )
            stores = await stack.enter_async_context(open_stores(cql, pool, settings, app_metrics))
            embedded_stats = await embedded_store_stats(cql, app_metrics)
            state = AppState(
                settings=settings,
                pg=pool,
                tokens=TokenService.from_settings(settings),
                cql=cql,
                stores=stores,
                cql_probe=CqlReadinessProbe(cql, settings),
                readiness=SharedReadiness(),
                metrics=app_metrics,
                embedded_stats=embedded_stats,
            )
            # Background services: started once the state exists, stopped before it goes.
            await stack.enter_async_context(event_sweeper(pool, settings.event_sweep_seconds))
            await stack.enter_async_context(
                stores.event_history.background_relay(settings.event_history_relay_seconds)
            )
            # Metrics and probes on CHAT_ADMIN_PORT, when set; answers until the stores close.
            await stack.enter_async_context(admin_listener(state))
            # Closed first: connections answer their pending sends before the stores close.
            await stack.enter_async_context(open_gateway(state))
            yield {"app": state}

    async def openapi(request: Request) -> Response:
        return json_response(build_openapi(api.operations, extra_paths))

    async def asyncapi(request: Request) -> Response:
        secure = request.url.scheme in {"https", "wss"}
        return json_response(build_asyncapi(request.url.netloc, secure=secure))

    # With an admin listener, /metrics is served there only; the probes stay here as well.
    metrics_here = settings.admin_port is None
    admin_routes = [r for r in ADMIN_ROUTES if metrics_here or r.path != "/metrics"]
    extra_paths = {p: s for p, s in OPENAPI_EXTRA_PATHS.items() if metrics_here or p != "/metrics"}
    routes: list[BaseRoute] = [
        *admin_routes,
        Route("/v1/openapi.json", openapi, methods=["GET"]),
        Route("/v1/asyncapi.json", asyncapi, methods=["GET"]),
        *api.routes(),
        websocket_route(),
        # The same path over plain HTTP: 426 for GET without an Upgrade, 405 for other methods.
        Route(WS_PATH, upgrade_required, methods=["GET"]),
        *console_routes(),
    ]
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.trusted_proxy_list:
        # The client address of everything below (rate limits, audit log, logs) is then the
        # first X-Forwarded-For hop, from the right, that is not a trusted proxy.
        middleware.append(
            Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
        )
    middleware.append(Middleware(RateLimitMiddleware, limits=rate_limits))
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
    )


def _probe(operation_id: str, summary: str, ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for code in (*errors, 429):
        responses[str(code)] = problem_response(code)
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "responses": responses,
        }
    }


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


# The probes, the documents and the front page. The WebSocket endpoint (/v1/ws) is not a REST
# operation and is left out: its contract is docs/protocol.md and /v1/asyncapi.json. Nor are the
# web console's static files (/console/).
OPENAPI_EXTRA_PATHS: dict[str, Any] = {
    "/healthz": _probe("healthz", "The process serves requests", _json("ok")),
    "/readyz": _probe("readyz", "Every dependency answers", _json("ready"), 503),
    "/metrics": _probe(
        "metrics",
        "Metrics in the Prometheus text exposition format",
        {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
    ),
    "/v1/openapi.json": _probe("openapi", "This document", _json("OpenAPI 3.1")),
    "/v1/asyncapi.json": _probe(
        "asyncapi", "The WebSocket protocol as an AsyncAPI 3.0 document", _json("AsyncAPI 3.0")
    ),
    "/": _probe(
        "home",
        "Front page: links to the web console and the API documents",
        {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
    ),
}
