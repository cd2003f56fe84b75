"""The CQL session: ScyllaDB when contact points are configured, else the embedded CQL server.

The driver runs its own I/O thread and reports results through ``ResponseFuture`` callbacks;
:func:`execute_async` is the one bridge from those callbacks into asyncio. Statements are
prepared once per session through :meth:`CqlStore.prepare`, which caches them by text.

Consistency and the request timeout come from settings and live on the driver's default
execution profile, so every statement — including batches — gets them without each call site
having to remember. The reactor is ``CHAT_CQL_REACTOR``: ``app-loop`` (the default,
:mod:`chat.store.driver.app_loop`, socket I/O on the application's loop) or the driver's libev
(its own I/O thread); measured with ``bench/store_write.py``, see ``docs/data-model.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    _NOT_SET,
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import BatchMessage
from cassandra.query import BatchStatement, PreparedStatement

from chat.config import Settings
from chat.store.driver.pool_keeper import pools_kept
from chat.tls import client_ssl_context

log = logging.getLogger(__name__)


READS = "reads"
"""The execution profile of the history and unread reads (``execute_async(...,
execution_profile=READS)``): the default profile's routing, consistency and timeout, plus
client-side speculative execution (``CHAT_CQL_READ_SPECULATIVE_*``). Writes keep the default
profile: speculating an idempotent batch would double the write load on a slow replica."""


@dataclass(slots=True)
class CqlStore:
    """A connected driver session and the cluster that owns it."""

    cluster: Cluster
    session: Session
    read_page_size: int = 5000
    """Fetch size of the statements :meth:`prepare_read` prepares (``CHAT_CQL_READ_PAGE_SIZE``)."""
    _prepared: dict[tuple[str, bool], PreparedStatement] = field(default_factory=dict, repr=False)

    async def ping(self) -> None:
        await execute_async(self.session, "SELECT release_version FROM system.local")

    async def prepare(self, query: str, *, idempotent: bool) -> PreparedStatement:
        """The prepared statement for ``query``, prepared on the first call only.

        ``idempotent`` marks whether the driver may retry or speculatively re-send it: only
        statements whose second execution changes nothing (upserts with fixed values, reads)
        may say yes. Preparing blocks in the driver, so it runs in a worker thread.
        """
        key = (query, idempotent)
        prepared = self._prepared.get(key)
        if prepared is None:
            # One statement object per (query, idempotent): the flag is the statement's own,
            # so a caller preparing the same text as not idempotent cannot flip it for others.
            prepared = await asyncio.to_thread(self.session.prepare, query)
            assert prepared is not None
            prepared.is_idempotent = idempotent
            self._prepared[key] = prepared
        return prepared

    async def prepare_read(self, query: str) -> PreparedStatement:
        """A prepared read: idempotent (so retries and speculative executions may re-send it),
        fetching ``read_page_size`` rows per page."""
        prepared = await self.prepare(query, idempotent=True)
        prepared.fetch_size = self.read_page_size
        return prepared


def execute_async(
    session: Session, statement: Any, parameters: Sequence[Any] | None = None, **kwargs: Any
) -> asyncio.Future[list[Any]]:
    """Run a statement on the driver; the asyncio future resolves to all rows of every page.

    Errors raised while *sending* (e.g. no host available) surface on the future too.
    """
    loop = asyncio.get_running_loop()
    try:
        response: ResponseFuture = session.execute_async(statement, parameters, **kwargs)
    except Exception as exc:
        result: asyncio.Future[list[Any]] = loop.create_future()
        result.set_exception(exc)
        return result
    return bridge(loop, response)


_short = struct.Struct(">H").pack


def execute_encoded_batch(
    session: Session, batch: BatchStatement, count: int, entries: bytes
) -> asyncio.Future[list[Any]]:
    """Send a BATCH whose ``count`` statement entries are already serialized in ``entries``.

    Why: the driver writes a batch's statements value by value when it sends it, and that
    loop cost the send path more than anything else in the profile (~0.8 ms per 150-statement
    batch, on the asyncio thread). :class:`chat.store.driver.batcher.Encoder` builds the entries
    once per caller; here the driver builds the request around them exactly as
    ``Session.execute_async`` does (routing, consistency, timeout, retries and re-prepares of
    unknown statement ids all stay the driver's), and only the statements part of the message
    body is replaced. ``batch`` carries the type, routing key, keyspace and idempotence and
    must hold no statements itself. The flags and tail after the statements are written by
    the driver's own encoder, so they stay right for every protocol version.
    """
    loop = asyncio.get_running_loop()
    try:
        if len(batch) or count > 0xFFFF:
            raise ValueError("the batch must be empty and the entries at most 65535 statements")
        response: ResponseFuture = session._create_response_future(
            batch, None, False, None, _NOT_SET, EXEC_PROFILE_DEFAULT
        )
        message = response.message
        # A subclass rather than a closure stored on the message: the closure would refer to
        # the message holding it, a reference cycle per batch (see ``bridge``).
        message.__class__ = _PreEncodedBatchMessage
        message.encoded_head = _short(count)
        message.encoded_entries = entries
        response._protocol_handler = session.client_protocol_handler
        session._on_request(response)
        response.send_request()
    except Exception as exc:
        result: asyncio.Future[list[Any]] = loop.create_future()
        result.set_exception(exc)
        return result
    return bridge(loop, response)


class _PreEncodedBatchMessage(BatchMessage):  # type: ignore[misc]  # the driver is untyped
    """The driver's BATCH message with its statements part already serialized.

    ``encoded_head`` (the statement count) and ``encoded_entries`` replace the empty statement
    list the driver's own encoder writes between the type byte and the flags.
    """

    encoded_head: bytes
    encoded_entries: bytes

    def send_body(self, f: Any, protocol_version: int, protocol_features: Any = None) -> None:
        rest = io.BytesIO()
        super().send_body(rest, protocol_version, protocol_features)
        tail = rest.getvalue()  # type byte, short 0 (no statements), flags and the rest
        f.write(tail[:1])
        f.write(self.encoded_head)
        f.write(self.encoded_entries)
        f.write(tail[3:])


def bridge(loop: asyncio.AbstractEventLoop, response: ResponseFuture) -> asyncio.Future[list[Any]]:
    """The one bridge from a driver ``ResponseFuture`` to an asyncio future (all pages' rows).

    Callbacks arrive on the driver's I/O thread (libev), so results cross into the loop with
    one ``call_soon_threadsafe`` per request; with the app-loop reactor they already run on
    the loop and are delivered directly, sparing the loop's wake-up write. A cancelled asyncio
    future simply drops the late result and stops fetching further pages; the driver's request
    itself cannot be withdrawn once sent.

    The callbacks are cleared once the last page or the error is in: they refer to the
    ``ResponseFuture`` that holds them, and that cycle would leave every request — its
    message, entries and rows — to the cyclic garbage collector (profiled: its collections
    took 60-80 ms each on the send path, finding ~45,000 such objects every time).
    """
    result: asyncio.Future[list[Any]] = loop.create_future()
    rows: list[Any] = []

    def deliver(value: list[Any]) -> None:
        if not result.done():
            result.set_result(value)

    def fail(exc: BaseException) -> None:
        if not result.done():
            result.set_exception(exc)

    def on_page(page: list[Any] | None) -> None:
        if page:
            rows.extend(page)
        if response.has_more_pages and not result.cancelled():
            response.start_fetching_next_page()
            return
        response.clear_callbacks()
        if _on_loop(loop):
            deliver(rows)
        else:
            loop.call_soon_threadsafe(deliver, rows)

    def on_error(exc: BaseException) -> None:
        response.clear_callbacks()
        if _on_loop(loop):
            fail(exc)
        else:
            loop.call_soon_threadsafe(fail, exc)

    response.add_callbacks(on_page, on_error)
    return result


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop`` (driver callbacks do, with the app-loop reactor)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


SOCKET_BUFFER_BYTES = 256 * 1024


def with_large_buffers(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` reading and writing its socket in 256 KiB pieces, not 4 KiB.

    Why: the driver's I/O thread releases the GIL around every ``send``/``recv`` and must win
    it back from the event-loop thread afterwards, which — while that thread runs Python —
    takes up to the interpreter's switch interval (5 ms). With the driver's 4 KiB buffers a
    ~20 KiB batch went out as five ``send`` calls and its answers came back in 4 KiB ``recv``
    calls, each paying that wait (strace on the bench: the I/O thread's GIL waits time out
    after 5 ms between consecutive 4 KiB ``recvfrom``/``sendto``). One call per request or
    per readable socket pays it once.
    """
    return type(
        f"LargeBuffer{connection_class.__name__}",
        (connection_class,),
        {"in_buffer_size": SOCKET_BUFFER_BYTES, "out_buffer_size": SOCKET_BUFFER_BYTES},
    )


def cql_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the connections to ScyllaDB, or None for plain TCP."""
    if not settings.cql_uses_tls:
        return None
    return client_ssl_context(
        "CHAT_CQL_TLS",
        ca_file=settings.cql_tls_ca_file,
        cert_file=settings.cql_tls_cert_file,
        key_file=settings.cql_tls_key_file,
        verify_hostname=settings.cql_tls_verify_hostname,
    )


def cql_auth_provider(settings: Settings) -> PlainTextAuthProvider | None:
    """Password authentication (ScyllaDB's PasswordAuthenticator, SASL PLAIN), when configured."""
    if settings.cql_username is None or settings.cql_password is None:
        return None
    return PlainTextAuthProvider(settings.cql_username, settings.cql_password.get_secret_value())


def connect_blocking(
    settings: Settings,
    contact_points: list[str],
    port: int,
    *,
    connection_class: Any = None,
) -> CqlStore:
    """Connect a driver session (blocking: run it in a thread) with the configured profile.

    ``connection_class`` picks the reactor (None = the driver's default, libev); an
    app-loop class comes from :func:`connection_class_for` (it must be bound on the loop).
    """
    consistency = ConsistencyLevel.name_to_value[settings.cql_consistency]
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=consistency,
        request_timeout=settings.cql_request_timeout_seconds,
    )
    speculation = None
    if settings.cql_read_speculative_attempts > 0:
        # Only idempotent statements are ever speculated (the driver checks); every read is.
        speculation = ConstantSpeculativeExecutionPolicy(
            settings.cql_read_speculative_delay_ms / 1000, settings.cql_read_speculative_attempts
        )
    reads = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=consistency,
        request_timeout=settings.cql_request_timeout_seconds,
        speculative_execution_policy=speculation,
    )
    if connection_class is None:
        from cassandra.cluster import DefaultConnection

        connection_class = DefaultConnection
    cluster = Cluster(
        contact_points,
        port=port,
        execution_profiles={"default": profile, READS: reads},
        protocol_version=4,
        # Without TCP_NODELAY (the libev reactor does not set it) Nagle's algorithm holds a
        # request frame back until the previous one is acknowledged, and delayed ACKs turn that
        # into ~40 ms stalls: the send-path bench ran at a third of its speed.
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        connection_class=with_large_buffers(connection_class),
        auth_provider=cql_auth_provider(settings),
        ssl_context=cql_ssl_context(settings),
    )
    return CqlStore(cluster, cluster.connect(), settings.cql_read_page_size)


def connection_class_for(reactor: str) -> Any:
    """The connection class for ``CHAT_CQL_REACTOR``; call it on the loop that will serve it."""
    if reactor == "app-loop":
        from chat.store.driver.app_loop import app_loop_connection_class

        return app_loop_connection_class(asyncio.get_running_loop())
    return None


async def shutdown_cluster(cluster: Cluster) -> None:
    """Shut the cluster down in a worker thread, then let the loop run the sockets' closes.

    Why a thread: ``Cluster.shutdown`` waits for the driver's executor, whose jobs may wait on
    answers that, with the app-loop reactor, only the loop can read. The closes it schedules
    onto the loop run on the next iterations, before the loop can be closed.
    """
    await asyncio.to_thread(cluster.shutdown)
    for _ in range(3):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def open_cql(settings: Settings) -> AsyncIterator[CqlStore]:
    """Connect to the configured cluster, or start the embedded CQL server and connect to it.

    The session comes without migrations: the app's lifespan applies them
    (:func:`chat.store.cql.migrations.migrate_up`) before any store uses the session, as it
    does the SQL ones, so this plumbing knows nothing of the schema above it.
    """
    async with contextlib.AsyncExitStack() as stack:
        if settings.cql_contact_points:
            hosts = [h.strip() for h in settings.cql_contact_points.split(",") if h.strip()]
            port = settings.cql_port
        else:
            from chat.embedded.cql.process import EmbeddedCqlServer

            embedded = EmbeddedCqlServer(
                data_dir=settings.data_dir / "cql",
                port=settings.cql_port,
                memory_budget=settings.cql_embedded_memory_budget,
            )
            await stack.enter_async_context(embedded)
            hosts, port = [embedded.host], embedded.port
            log.info("embedded CQL server listening on %s:%d", embedded.host, embedded.port)
        store = await asyncio.to_thread(
            connect_blocking,
            settings,
            hosts,
            port,
            connection_class=connection_class_for(settings.cql_reactor),
        )
        stack.push_async_callback(shutdown_cluster, store.cluster)
        await stack.enter_async_context(pools_kept(store.session))
        log.info("CQL session connected to %s port %d", ",".join(hosts), port)
        yield store
