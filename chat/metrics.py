"""Prometheus metrics of one app instance, served as text at ``/metrics``.

Metric names (every one is documented with its help text below and in ``docs/deploy.md``,
"Observability")::

    chat_ws_connections                     gauge    open WebSocket connections
    chat_ws_subscriptions                   gauge    live + buffering event subscriptions
    chat_ws_mailbox_depth_max               gauge    frames queued in the fullest mailbox
    chat_ws_frames_received_total           counter  WebSocket frames read from clients
    chat_ws_frames_in_total{type}           counter  client commands by frame type
    chat_ws_frames_out_total{type}          counter  frames written to clients by type
    chat_ws_slow_consumer_disconnects_total counter  connections cut off as too slow (4008)
    chat_messages_acked_total               counter  sends answered with an ack
    chat_store_write_seconds                histogram send -> durable (ack) latency
    chat_store_batch_statements             histogram statements per CQL write batch
    chat_store_driver_errors_total{type}    counter  failed store requests by exception class
    chat_store_pending_statements           gauge    statements queued or in flight in the writer
    chat_store_sends_in_progress            gauge    sends between accept and answer
    chat_store_coalesced_reads{read,count}  gauge    callers of coalesced reads, reads sent
    chat_nats_published_total               counter  frames published to NATS
    chat_nats_publish_errors_total          counter  NATS publishes that failed
    chat_nats_delivered_total               counter  frames received from NATS and delivered
    chat_nats_delivery_lag_seconds          histogram publish (on any node) -> local delivery
    chat_nats_outbox_dropped_total          counter  frames dropped: the bus outbox was full
    chat_nats_retired_total                 counter  node ids retired (frozen or cut off)
    chat_order_orphans_settled_total        counter  dead nodes' open sends settled here
    chat_rest_rate_limited_total{policy}    counter  REST requests refused with 429, by policy
    chat_rest_rate_limit_keys{policy}       gauge    clients a REST limiter table tracks
    chat_cql_embedded_rows                  gauge    rows the embedded CQL server stores
    chat_cql_embedded_bytes                 gauge    their bytes, in the server's compact form
    chat_cql_embedded_memory_bytes          gauge    their estimated memory (what the budget bounds)
    chat_cql_embedded_memory_budget_bytes   gauge    the embedded server's memory budget
    chat_cql_embedded_over_memory_budget    gauge    1 while it refuses writes for the budget
    chat_cql_embedded_writes_refused_total  counter  writes it refused (Overloaded) for the budget
    chat_cql_embedded_expired_rows_total    counter  rows it forgot once their TTL passed
    chat_cql_embedded_resident_bytes        gauge    the embedded server process's RSS

The ``chat_cql_embedded_*`` figures are the server's own (``system.embedded_stats``), read
when ``/metrics`` is scraped; they are absent when the store is ScyllaDB.

**For the NATS bus (chat/bus):** the instance is ``state.metrics`` (:class:`Metrics`); call
``metrics.nats_published.inc()`` after each publish, ``metrics.nats_publish_errors.inc()``
when one fails, ``metrics.nats_delivered.inc()`` per received bus message, and
``metrics.nats_delivery_lag.observe(seconds)`` with now minus the publisher's wall-clock stamp.

Why its own :class:`~prometheus_client.CollectorRegistry` per app: the tests start many app
instances in one process, and the global registry would refuse the second registration of a
name (and mix the instances' numbers). Gauges that describe state (connections, queue depths)
are computed at scrape time from callbacks, so the hot path does no work for them; counters
on the hot path use label children bound once, so counting a frame is one dict lookup and an
increment, never a label-dict build.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def _zero() -> float:
    return 0.0


_EMBEDDED_GAUGES = (
    ("chat_cql_embedded_rows", "store_rows", "Rows the embedded CQL server stores."),
    (
        "chat_cql_embedded_bytes",
        "store_bytes",
        "Bytes of the rows the embedded CQL server stores, in its compact form.",
    ),
    (
        "chat_cql_embedded_memory_bytes",
        "store_memory_bytes",
        "Estimated memory of the embedded CQL server's stored data (what its budget bounds).",
    ),
    (
        "chat_cql_embedded_memory_budget_bytes",
        "memory_budget_bytes",
        "The embedded CQL server's memory budget; past it, writes are refused.",
    ),
    (
        "chat_cql_embedded_over_memory_budget",
        "over_memory_budget",
        "1 while the embedded CQL server refuses writes for its memory budget, else 0.",
    ),
    (
        "chat_cql_embedded_resident_bytes",
        "process_rss_bytes",
        "Resident memory of the embedded CQL server process.",
    ),
)
_EMBEDDED_COUNTERS = (
    (
        "chat_cql_embedded_writes_refused",
        "writes_refused_overloaded",
        "Writes the embedded CQL server refused (Overloaded) for its memory budget.",
    ),
    (
        "chat_cql_embedded_expired_rows",
        "expired_rows_forgotten",
        "Rows the embedded CQL server forgot once their TTL had passed.",
    ),
)


class _EmbeddedStoreCollector(Collector):
    """The embedded CQL server's figures, from the last read of ``system.embedded_stats``."""

    def __init__(self, figures: Callable[[], dict[str, int] | None]) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []  # families depend on the server: ScyllaDB has none of them

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        if not figures:
            return
        for name, key, text in _EMBEDDED_GAUGES:
            if key in figures:
                yield GaugeMetricFamily(name, text, value=figures[key])
        for name, key, text in _EMBEDDED_COUNTERS:
            if key in figures:
                yield CounterMetricFamily(name, text, value=figures[key])


class Metrics:
    """Every metric of one app instance, in its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge("chat_ws_connections", "Open WebSocket connections.", registry=r)
        self.subscriptions = Gauge(
            "chat_ws_subscriptions",
            "Event subscriptions of open connections (live or replaying).",
            registry=r,
        )
        self.mailbox_depth_max = Gauge(
            "chat_ws_mailbox_depth_max",
            "Frames queued in the fullest connection mailbox (a client falling behind).",
            registry=r,
        )
        self.frames_received = Counter(
            "chat_ws_frames_received",
            "WebSocket frames read from clients (commands, pings and invalid frames).",
            registry=r,
        )
        self.frames_in = Counter(
            "chat_ws_frames_in",
            "Client commands by frame type (hello, subscribe, send, ...).",
            ["type"],
            registry=r,
        )
        self.frames_out = Counter(
            "chat_ws_frames_out", "Frames written to clients by frame type.", ["type"], registry=r
        )
        self.slow_consumer_disconnects = Counter(
            "chat_ws_slow_consumer_disconnects",
            "Connections closed with 4008 because their mailbox overflowed.",
            registry=r,
        )
        self.messages_acked = Counter(
            "chat_messages_acked", "Sends answered with an ack (durable).", registry=r
        )
        self.store_write_seconds = Histogram(
            "chat_store_write_seconds",
            "Send accepted -> message durable in the store (the ack waits for this).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_statements = Histogram(
            "chat_store_batch_statements",
            "Statements per CQL batch the message writer sent (coalesced sends).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.driver_errors = Counter(
            "chat_store_driver_errors",
            "Failed store requests by exception class (timeouts, unavailable, no host).",
            ["type"],
            registry=r,
        )
        self.pending_statements = Gauge(
            "chat_store_pending_statements",
            "Statements waiting in the message writer or in flight to CQL.",
            registry=r,
        )
        self.sends_in_progress = Gauge(
            "chat_store_sends_in_progress",
            "Sends accepted by the message store and not yet answered.",
            registry=r,
        )
        self.nats_published = Counter(
            "chat_nats_published", "Frames published to the NATS bus.", registry=r
        )
        self.nats_publish_errors = Counter(
            "chat_nats_publish_errors", "Publishes to the NATS bus that failed.", registry=r
        )
        self.nats_delivered = Counter(
            "chat_nats_delivered",
            "Frames received from the NATS bus and delivered to local subscribers.",
            registry=r,
        )
        self.nats_delivery_lag = Histogram(
            "chat_nats_delivery_lag_seconds",
            "Publish on any node -> delivery here (wall clocks; includes clock skew).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.nats_outbox_dropped = Counter(
            "chat_nats_outbox_dropped",
            "Frames dropped because the bus outbox was over CHAT_NATS_OUTBOX_BYTES.",
            registry=r,
        )
        self.nats_retired = Counter(
            "chat_nats_retired",
            "Times this process retired its node id (frozen, or cut off from NATS) and "
            "rejoined under a new one.",
            registry=r,
        )
        self.order_orphans_settled = Counter(
            "chat_order_orphans_settled",
            "Sends a dead node left open that this node settled from the store.",
            registry=r,
        )
        self.coalesced_reads = Gauge(
            "chat_store_coalesced_reads",
            "Coalesced store reads since start: callers who asked (count=callers) and reads "
            "that answered them (count=reads), by read (history_page, unread_count).",
            ["read", "count"],
            registry=r,
        )
        self.rest_rate_limited = Counter(
            "chat_rest_rate_limited",
            "REST requests refused with 429, by the policy whose quota was spent.",
            ["policy"],
            registry=r,
        )
        self.rest_rate_limit_keys = Gauge(
            "chat_rest_rate_limit_keys",
            "Clients (addresses or users) a REST limiter table tracks (bounded).",
            ["policy"],
            registry=r,
        )
        self._in_children: dict[type, Counter] = {}
        self._error_children: dict[type, Counter] = {}
        self.frames_out.labels("other")  # reported from the start, like the per-type series
        self._sourced_gauges = (
            self.connections,
            self.subscriptions,
            self.mailbox_depth_max,
            self.pending_statements,
            self.sends_in_progress,
        )
        """The gauges read from the gateway and the stores at scrape time (0 without them)."""
        self.forget_sources()

    # ------------------------------------------------------------------ sources of gauges

    def observe_reads(
        self, read: str, callers: Callable[[], float], reads: Callable[[], float]
    ) -> None:
        """Read a coalesced read's counts at scrape time: ``callers / reads`` is what the
        coalescing saved (a resume storm's history pages should cost about one read each)."""
        self.coalesced_reads.labels(read, "callers").set_function(callers)
        self.coalesced_reads.labels(read, "reads").set_function(reads)

    def observe_gateway(
        self,
        connections: Callable[[], float],
        subscriptions: Callable[[], float],
        mailbox_depth_max: Callable[[], float],
    ) -> None:
        """Read these gauges from the running gateway at scrape time (not per frame)."""
        self.connections.set_function(connections)
        self.subscriptions.set_function(subscriptions)
        self.mailbox_depth_max.set_function(mailbox_depth_max)

    def observe_writer(
        self, pending_statements: Callable[[], float], sends_in_progress: Callable[[], float]
    ) -> None:
        """Read the message writer's queue depths at scrape time."""
        self.pending_statements.set_function(pending_statements)
        self.sends_in_progress.set_function(sends_in_progress)

    def observe_rate_limit_tables(self, sizes: dict[str, Callable[[], float]]) -> None:
        """Read each REST limiter table's size (by policy name) at scrape time."""
        for policy, size in sizes.items():
            self.rest_rate_limit_keys.labels(policy).set_function(size)

    def observe_embedded_store(self, figures: Callable[[], dict[str, int] | None]) -> None:
        """Expose the embedded CQL server's figures, as ``figures()`` last read them."""
        self.registry.register(_EmbeddedStoreCollector(figures))

    def forget_sources(self) -> None:
        """The gateway and stores are closing: stop calling into them."""
        for gauge in self._sourced_gauges:
            gauge.set_function(_zero)

    # ------------------------------------------------------------------ hot-path counters

    def command_in(self, command: object) -> None:
        """Count one client command; the label child is bound once per command class."""
        cls = type(command)
        child = self._in_children.get(cls)
        if child is None:
            name = getattr(cls, "frame_type", None) or cls.__name__.lower()
            child = self._in_children[cls] = self.frames_in.labels(str(name))
        child.inc()

    def driver_error(self, exc: BaseException) -> None:
        """Count one failed store request by its exception class."""
        cls = type(exc)
        child = self._error_children.get(cls)
        if child is None:
            if len(self._error_children) >= 64:
                cls, name = Exception, "other"
            else:
                name = cls.__name__
            child = self._error_children.get(cls) or self.driver_errors.labels(name)
            self._error_children[cls] = child
        child.inc()

    # ------------------------------------------------------------------ exposition

    def render(self) -> bytes:
        """The text exposition format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)
