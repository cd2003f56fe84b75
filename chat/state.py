"""The typed state the lifespan opens and every request handler and connection uses.

There are no module-level connections or pools: everything lives here, created by the lifespan
in ``chat.app`` and closed by it in a fixed order. Each run-time part has a field of its own
type, so a handler reaches what it needs by name, checked by mypy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from chat.auth import TokenService
from chat.config import Settings
from chat.metrics import Metrics
from chat.notifications import Notifications
from chat.store.cql.embedded_stats import EmbeddedStats
from chat.store.cql.readiness import CqlReadinessProbe
from chat.store.driver.session import CqlStore
from chat.store.stores import Stores

if TYPE_CHECKING:  # both modules read the state: imported for their types only
    from chat.api.health import SharedReadiness
    from chat.gateway.runtime import Gateway

ReadinessCheck: TypeAlias = "Callable[[AppState], Awaitable[None]]"
"""One ``/readyz`` check: returns when its dependency answers, raises when it does not."""


@dataclass(slots=True)
class AppState:
    settings: Settings
    pg: asyncpg.Pool
    tokens: TokenService
    cql: CqlStore
    stores: Stores
    # The synthetic CQL write and read-back of /readyz.
    cql_probe: CqlReadinessProbe
    # One /readyz probe at a time, its result shared (chat.api.health).
    readiness: SharedReadiness
    # Its own registry per app instance (tests run many apps in one process).
    metrics: Metrics = field(default_factory=Metrics)
    # Committed REST changes live delivery listens to (chat.notifications).
    notifications: Notifications = field(default_factory=Notifications)
    # /readyz checks a later layer adds by name (the NATS bus: a publish/receive round trip).
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    # The running WebSocket gateway, while it serves (chat.gateway.runtime).
    gateway: Gateway | None = None
    # The embedded CQL server's own figures (rows, bytes, memory budget); None on ScyllaDB.
    embedded_stats: EmbeddedStats | None = None
