"""The typed state the lifespan opens and every request handler and connection uses.

There are no module-level connections or pools: everything lives here, created by the lifespan
in ``chat.app`` and closed by it in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chat.auth import TokenService
from chat.config import Settings
from chat.metrics import Metrics
from chat.notifications import Notifications
from chat.store.cql.embedded_stats import EmbeddedStats
from chat.store.driver.session import CqlStore
from chat.store.stores import ChatStores


@dataclass(slots=True)
class AppState:
    settings: Settings
    pg: asyncpg.Pool
    tokens: TokenService
    cql: CqlStore
    chat: ChatStores
    # Its own registry per app instance (tests run many apps in one process).
    metrics: Metrics = field(default_factory=Metrics)
    # Committed REST changes live delivery listens to (chat.notifications).
    notifications: Notifications = field(default_factory=Notifications)
    # Run-time parts keyed by name: the gateway, its membership cache, readiness checks.
    extras: dict[str, Any] = field(default_factory=dict)
    # The embedded CQL server's own figures (rows, bytes, memory budget); None on ScyllaDB.
    embedded_stats: EmbeddedStats | None = None
