"""What the application wires in: the gateway's lifespan context and its ``/v1/ws`` route.

``chat.app`` enters :func:`open_gateway` after the stores exist and adds :func:`websocket_route`
to its routes; the endpoint finds the :class:`Gateway` in ``AppState.gateway``. Closing the
gateway is the first step of shutdown: it stops taking connections, lets every connection
answer (or fail) the commands it already received — so no send is left unanswered — closes it
with 1001 (clients reconnect elsewhere and resume from their cursors), and only then may the
lifespan close the message store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Callable

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from chat.domain.messages import Message
from chat.domain.position import Position
from chat.gateway.codes import CloseCode
from chat.gateway.connection import CLOSE_TIMEOUT, Connection, FrameCounter
from chat.gateway.event_status import EventStatuses
from chat.gateway.hub import Hub, LocalHub
from chat.gateway.limits import Limits
from chat.gateway.membership import Membership
from chat.gateway.quotas import UserQuotas
from chat.gateway.service import ChatService
from chat.gateway.transport import transport_control
from chat.logs import connection_context
from chat.metrics import Metrics
from chat.state import AppState
from chat.store.stores import Stores

log = logging.getLogger(__name__)

PATH = "/v1/ws"
CATCH_UP_PAGE = 500
"""Messages per store read when the cross-node order reads what a dead node left."""


class Gateway:
    """The running gateway: its service, hub, limits and open connections."""

    def __init__(
        self, service: ChatService, limits: Limits, metrics: Metrics | None = None
    ) -> None:
        self.service = service
        self.metrics = metrics or Metrics()
        self.frames_out = FrameCounter(self.metrics)
        self.hub: Hub = service.hub
        self.limits = limits
        self.quotas = UserQuotas(
            max_connections=limits.max_connections_per_user,
            write_rate=limits.user_send_rate_per_second,
            write_burst=limits.user_send_burst,
        )
        self.closing = False
        self.connections: set[Connection] = set()
        self.metrics.observe_gateway(
            lambda: float(len(self.connections)),
            lambda: float(service.subscription_count()),
            self.max_mailbox_depth,
        )

    def max_mailbox_depth(self) -> float:
        """Frames queued in the fullest mailbox (computed at scrape time only)."""
        return float(max([len(c.mailbox) for c in self.connections], default=0))

    async def serve(self, websocket: WebSocket) -> None:
        control = transport_control(websocket.scope)
        if control is None:
            log.error(
                "WebSocket refused: the gateway runs on its own uvicorn protocol "
                "(chat serve uses it; with uvicorn: "
                "--ws chat.gateway.transport:GatewayWebSocketProtocol)"
            )
            await websocket.close(CloseCode.INTERNAL_ERROR)
            return
        # Bound before the connection's tasks start, so every log line they write carries it.
        with connection_context(f"ws-{secrets.token_hex(6)}"):
            connection = Connection(websocket, self, control)
            self.connections.add(connection)
            try:
                await connection.serve()
            finally:
                self.connections.discard(connection)

    async def close(self, deadline: float = 2 * CLOSE_TIMEOUT) -> None:
        """Stop accepting, close every connection with 1001 after answering; idempotent."""
        self.closing = True
        connections = list(self.connections)
        if connections:
            await asyncio.gather(*(c.shutdown() for c in connections), return_exceptions=True)
            waits = [asyncio.ensure_future(c.done.wait()) for c in connections]
            _, pending = await asyncio.wait(waits, timeout=deadline)
            for waiter in pending:
                waiter.cancel()
            if pending:
                log.warning("%d WebSocket connection(s) did not close in time", len(pending))
        await self.service.close()


@contextlib.asynccontextmanager
async def open_gateway(state: AppState) -> AsyncIterator[Gateway]:
    """Build the gateway on the app's stores; close it (1001 to everyone) on exit."""
    settings = state.settings
    stores = state.stores
    messages = stores.messages

    def own_floor() -> Position:
        return Position.after_ticks(messages.id_floor_ticks())

    async with contextlib.AsyncExitStack() as stack:
        hub: Hub = LocalHub(own_floor)
        nats_hub = None
        if settings.nats_url:
            # Imported here: a single-process install never loads the NATS client.
            from chat.bus.connect import open_nats_hub
            from chat.bus.connect_options import nats_connect_options

            nats_hub = await stack.enter_async_context(
                open_nats_hub(
                    settings.nats_url,
                    nats_connect_options(settings),
                    own_floor=own_floor,
                    presence_heartbeat=settings.nats_presence_heartbeat_seconds,
                    presence_ttl=settings.nats_presence_ttl_seconds,
                    metrics=state.metrics,
                    outbox_bytes=settings.nats_outbox_bytes,
                )
            )
            hub = nats_hub
            # /readyz proves the bus path too: a publish/receive round trip through NATS.
            bus = nats_hub
            checks = state.readiness_checks
            checks["bus"] = lambda _state: bus.probe()
            stack.callback(checks.pop, "bus", None)
        statuses = EventStatuses(state.pg)
        service = ChatService(state, hub, stores, Membership(state.pg), statuses=statuses)
        # What REST commits reaches the live sockets (chat.notifications).
        notifications = state.notifications
        stack.callback(notifications.on_participants_changed(_membership_changed(service)))
        stack.callback(notifications.on_message_changed(service.message_changed))
        stack.callback(notifications.on_read_moved(service.read_moved))
        stack.callback(notifications.on_status_changed(service.status_changed))
        if nats_hub is not None:
            nats_hub.on_resync = service.resync
            nats_hub.on_trouble = service.bus_trouble
            nats_hub.attach_store(StoreMessages(stores))
            nats_hub.relay_membership(service.membership)
            nats_hub.relay_statuses(statuses)
        gateway = Gateway(service, Limits.from_settings(settings), state.metrics)
        state.gateway = gateway
        try:
            yield gateway
        finally:
            # Before the bus closes: connections answer their sends, whose frames still fan out.
            await gateway.close(max(settings.drain_seconds, 2 * CLOSE_TIMEOUT))
            state.metrics.forget_sources()
            state.gateway = None


class StoreMessages:
    """The store as the cross-node order reads it (:class:`chat.bus.settling.MessageSource`)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def read_after(self, event_id: int, after: Position) -> list[Message]:
        history = self._stores.history
        page = await history.after_position(event_id, after, CATCH_UP_PAGE)
        found = list(page.messages)
        while page.next_cursor is not None:
            page = await history.after(event_id, page.next_cursor, CATCH_UP_PAGE)
            found += page.messages
        return found

    async def read_one(self, event_id: int, message_id: uuid.UUID) -> Message | None:
        return await self._stores.messages.get(event_id, message_id)

    async def fence(self, event_id: int, message_id: uuid.UUID, claim_key: str) -> None:
        await self._stores.messages.fence(event_id, message_id, claim_key)


def _membership_changed(service: ChatService) -> Callable[[int, int, bool], None]:
    """Invalidate the membership cache; its listeners (the service, the bus) then act."""

    def changed(event_id: int, user_id: int, present: bool) -> None:
        service.membership.changed(event_id, user_id, present=present)

    return changed


async def websocket_endpoint(websocket: WebSocket) -> None:
    state: AppState = websocket.state.app
    gateway = state.gateway
    if gateway is None:
        await websocket.close(CloseCode.GOING_AWAY)
        return
    await gateway.serve(websocket)


def websocket_route() -> WebSocketRoute:
    """The ``/v1/ws`` route for ``chat.app``'s route list."""
    return WebSocketRoute(PATH, websocket_endpoint)
