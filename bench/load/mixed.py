"""``python -m bench mixed``: reads under write load, a resume storm, and page exactness.

1. Starts its own gateway (``chat serve``, embedded PostgreSQL and CQL; :mod:`~.servers`) and
   creates through the REST API: ``events`` live events of ``writers`` writers each, ``readers``
   reader users who take part in every live event (so each is "a user in 200 events with new
   messages in each"), ``quiet_events`` events of the readers only, and a storm event of
   ``storm_subscribers`` users.
2. Seeds history directly in the store, older than the run and spread over several 10-day
   buckets with an empty one between (sparse for the quiet events), so that scrolling back
   crosses bucket boundaries.
3. Measures the write capacity (a short closed-loop ``write-load`` on the same gateway) unless
   ``--write-rate`` is given, and writes at half of it, open loop, for the measured run; at
   the same time reader processes run the read mix (:mod:`~.readers`) over WebSocket, over REST
   and at the store level (the chat stores over the driver against the gateway's CQL server).
4. The resume storm: every storm subscriber resubscribes to the storm event with the same
   ``since`` at a random moment within ``storm_window`` seconds; the CQL server's per-table
   read counters say what it cost.
5. Reads the store back partition by partition and checks every page read
   (:mod:`~.verify_reads`) and the readers' final unread counts; non-zero exit on a mismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from hdrh.histogram import HdrHistogram

from bench.load import rest
from bench.load.fleet import Second, Timeline, run_fleet
from bench.load.generator import ConnSpec, WorkerResult
from bench.load.histograms import merge, new_histogram, summary_ms
from bench.load.readers import (
    READ_KINDS,
    ReaderConfig,
    ReaderResult,
    ReaderUser,
    StormPlan,
    Transport,
    cursor_of,
)
from bench.load.report import machine, plot_panels, results_dir, write_results
from bench.load.servers import Gateway, gateway_subprocess, raise_nofile
from bench.load.verify_reads import ReadVerification, verify_pages
from bench.load.write_load import (
    CqlCounters,
    Window,
    WriteLoadOptions,
    drive,
    summarize,
    worker_configs,
)

KEYSPACE = "timingle"
"""The gateway's keyspace (``CHAT_CQL_KEYSPACE``'s default; the bench's gateway keeps it)."""
UNREAD_CAP = 1000
UNREAD_SCAN_LIMIT = 4000
"""``chat.store.cql.unread_tally``'s limits, restated for the expectation."""
LIVE_BUCKETS = (5, 4, 2, 1)
"""How many buckets back the seeded history of a live event lies (3 stays empty)."""
QUIET_BUCKETS = tuple(range(23, 0, -2))
"""The quiet events' sparse buckets: every other one of the last 23."""
BUCKET_MS = 10 * 86_400_000


@dataclass
class MixedOptions:
    duration: float = 20.0
    warmup: float = 3.0
    drain: float = 15.0
    events: int = 200
    writers: int = 5
    readers: int = 4
    quiet_events: int = 20
    history: int = 100
    quiet_history: int = 120
    write_rate: float | None = None
    capacity_seconds: float = 5.0
    writer_processes: int = 2
    read_rate: float = 40.0
    store_read_rate: float = 20.0
    mix: tuple[tuple[str, float], ...] = (
        ("latest", 0.35),
        ("scroll", 0.3),
        ("since", 0.25),
        ("unread", 0.1),
    )
    absence: int = 50
    page: int = 50
    unread_lag: float = 1.0
    storm_subscribers: int = 1000
    storm_window: float = 1.0
    results_root: Path | None = None
    gateway_env: dict[str, str] = field(default_factory=dict)
    command: str = ""


@dataclass
class Population:
    live: list[rest.Event]
    quiet: list[rest.Event]
    readers: list[rest.User]
    storm: rest.Event | None


# --------------------------------------------------------------------------- set-up


async def populate(url: str, options: MixedOptions) -> Population:
    tag = f"{secrets.randbelow(10**6):06d}"
    writers_total = options.events * options.writers
    async with rest.api_client(url) as http:
        users = await rest.bounded(
            [
                partial(rest.sign_up, http, tag, n)
                for n in range(writers_total + options.readers + options.storm_subscribers)
            ]
        )
        writers = users[:writers_total]
        readers = users[writers_total : writers_total + options.readers]
        storm_users = users[writers_total + options.readers :]
        live_members = [
            [*writers[i * options.writers : (i + 1) * options.writers], *readers]
            for i in range(options.events)
        ]
        quiet_members = [[*readers] for _ in range(options.quiet_events)]
        plans = live_members + quiet_members
        events = await rest.bounded(
            [partial(rest.create_event, http, m, f"mixed {tag} #{i}") for i, m in enumerate(plans)]
        )
    storm = None
    if storm_users:
        # A fresh client: connections left idle by the last step may have been closed by now.
        async with rest.api_client(url) as http:
            storm = await rest.create_event(http, storm_users, f"mixed {tag} storm")
    return Population(events[: options.events], events[options.events :], readers, storm)


class PlannedClock:
    """A clock for the id generator that returns planned times, one per id, in order."""

    def __init__(self, times_ns: Sequence[int]) -> None:
        self._times = iter(times_ns)
        self._last = 0

    def __call__(self) -> int:
        self._last = next(self._times, self._last)
        return self._last


def seed_plan(
    population: Population, options: MixedOptions, now_ms: int
) -> list[tuple[int, int, int]]:
    """``(time_ms, event_id, sender_id)`` of the seeded history, oldest first."""
    current = now_ms // BUCKET_MS
    plan = []

    def spread(event: rest.Event, buckets: Sequence[int], count: int, senders: list[int]) -> None:
        for n in range(count):
            bucket = current - buckets[n * len(buckets) // count]
            offset = (n * 7_919 + event.id * 13) % (BUCKET_MS - 1000)
            plan.append((bucket * BUCKET_MS + offset, event.id, senders[n % len(senders)]))

    for event in population.live:
        writers = [u.id for u in event.participants[: options.writers]]
        spread(event, LIVE_BUCKETS, options.history, writers)
    for event in population.quiet:
        spread(event, QUIET_BUCKETS, options.quiet_history, [u.id for u in event.participants])
    if population.storm is not None:
        senders = [u.id for u in population.storm.participants[:5]]
        spread(population.storm, (1,), options.absence + 10, senders)
    plan.sort()
    return plan


async def seed(gateway: Gateway, plan: list[tuple[int, int, int]]) -> dict[int, list[str]]:
    """Write the planned history through the message store; returns ids per event."""
    from chat.config import Settings
    from chat.domain.messages import MessageIdGenerator, NewMessage
    from chat.store.cql.messages import MessageStore
    from chat.store.driver.session import connect_blocking, connection_class_for, shutdown_cluster

    assert gateway.cql_host is not None
    assert gateway.cql_port is not None
    settings = Settings(
        cql_contact_points=gateway.cql_host, cql_port=gateway.cql_port, cql_keyspace=KEYSPACE
    )
    cql = await asyncio.to_thread(
        connect_blocking,
        settings,
        [gateway.cql_host],
        gateway.cql_port,
        connection_class=connection_class_for(settings.cql_reactor),
    )
    clock = PlannedClock([t * 1_000_000 for t, _, _ in plan])
    store = MessageStore(cql, settings, ids=MessageIdGenerator(clock))
    await store.start()
    seeded: dict[int, list[str]] = {}
    try:
        for start in range(0, len(plan), 500):
            chunk = plan[start : start + 500]
            acks = await asyncio.gather(
                *(
                    store.send(NewMessage(e, s, f"seed-{start + i}", f"history {start + i}"))
                    for i, (_, e, s) in enumerate(chunk)
                )
            )
            for (_, event_id, _), ack in zip(chunk, acks, strict=True):
                seeded.setdefault(event_id, []).append(str(ack.message_id))
            print(f"  seeded {start + len(chunk):,} of {len(plan):,} messages", flush=True)
    finally:
        await store.close()
        await shutdown_cluster(cql.cluster)
    return seeded


# --------------------------------------------------------------------------- reading back


async def read_reference(
    counters: CqlCounters, event_ids: Sequence[int], buckets: Sequence[int]
) -> tuple[dict[int, list[str]], dict[str, int]]:
    """Every event's message ids oldest first, and each message's sender, read partition by
    partition (no cursors, no bucket index: independent of the code under test)."""
    from chat.store.driver.session import execute_async

    session = counters.cql.session
    statement = await asyncio.to_thread(
        session.prepare,
        f"SELECT message_id, sender_id FROM {KEYSPACE}.chat_messages_by_event"
        " WHERE event_id = ? AND bucket = ?",
    )
    gate = asyncio.Semaphore(32)

    async def partition(event_id: int, bucket: int) -> list[Any]:
        async with gate:
            return await execute_async(session, statement, (event_id, bucket))

    keys = [(e, b) for e in event_ids for b in sorted(buckets)]
    parts = await asyncio.gather(*(partition(e, b) for e, b in keys))
    order: dict[int, list[str]] = {e: [] for e in event_ids}
    senders: dict[str, int] = {}
    for (event_id, _), rows in zip(keys, parts, strict=True):
        for row in reversed(rows):  # clustered newest first
            order[event_id].append(str(row.message_id))
            senders[str(row.message_id)] = row.sender_id
    return order, senders


def expected_unread(
    order: Sequence[str], senders: dict[str, int], user_id: int, position: uuid.UUID | None
) -> int:
    """Others' messages after the position, among the first 4,000 after it, at most 1,000
    (nothing is deleted in the run)."""
    from chat.domain.position import order_key

    floor = order_key(position) if position is not None else -1
    after = [m for m in order if order_key(uuid.UUID(m)) > floor]
    newest = after[::-1][:UNREAD_SCAN_LIMIT]
    return min(UNREAD_CAP, sum(1 for m in newest if senders[m] != user_id))


async def read_positions(
    counters: CqlCounters, user_ids: Sequence[int]
) -> dict[tuple[int, int], uuid.UUID]:
    from chat.store.driver.session import execute_async

    session = counters.cql.session
    statement = await asyncio.to_thread(
        session.prepare,
        f"SELECT user_id, event_id, read_message_id FROM {KEYSPACE}.chat_read_positions"
        " WHERE user_id IN ?",
    )
    rows = await execute_async(session, statement, (list(user_ids),))
    return {(r.user_id, r.event_id): r.read_message_id for r in rows}


# --------------------------------------------------------------------------- the run


def split_mix(
    mix: Sequence[tuple[str, float]], rate: float
) -> list[tuple[Transport, float, tuple[tuple[str, float], ...]]]:
    """The end-to-end read mix split over WebSocket and REST: every kind half and half,
    except ``unread``, which has no WebSocket frame of its own and goes over REST only.
    Returns ``(transport, operations/s, mix)`` for each."""
    total = sum(w for _, w in mix)
    share = {k: w / total for k, w in mix}
    ws = {k: s / 2 for k, s in share.items() if k != "unread"}
    over_rest = {k: (s if k == "unread" else s / 2) for k, s in share.items()}
    return [
        ("ws", rate * sum(ws.values()), tuple(ws.items())),
        ("rest", rate * sum(over_rest.values()), tuple(over_rest.items())),
    ]


def reader_configs(
    options: MixedOptions, gateway: Gateway, population: Population, start_index: int
) -> list[ReaderConfig]:
    live_ids = tuple(e.id for e in population.live)
    every = live_ids + tuple(e.id for e in population.quiet)
    users = tuple(ReaderUser(u.id, u.token, every) for u in population.readers)
    unread_users = tuple(ReaderUser(u.id, u.token, live_ids) for u in population.readers)
    assert gateway.cql_host is not None
    assert gateway.cql_port is not None
    plans = [
        *split_mix(options.mix, options.read_rate),
        ("store", options.store_read_rate, options.mix),
    ]
    return [
        ReaderConfig(
            index=start_index + n,
            transport=transport,
            base_url=gateway.url,
            users=users,
            rate=rate,
            mix=tuple(mix),
            unread_users=unread_users,
            page=options.page,
            absence=options.absence,
            warmup=options.warmup,
            duration=options.duration,
            drain=options.drain,
            seed=n + 1,
            cql=(gateway.cql_host, gateway.cql_port, KEYSPACE),
            unread_lag=options.unread_lag if transport == "store" else 0.0,
        )
        for n, (transport, rate, mix) in enumerate(plans)
        # The store process also keeps the readers' positions behind (``unread_lag``).
        if rate > 0 or (transport == "store" and options.unread_lag > 0)
    ]


def kind_of(name: str) -> tuple[str, str]:
    """``transport:kind`` → (level, kind): ``store`` or ``e2e`` (WebSocket and REST)."""
    transport, _, kind = name.partition(":")
    return ("store" if transport == "store" else "e2e"), kind


def merged_by_kind(named: dict[str, HdrHistogram], level: str) -> dict[str, HdrHistogram]:
    out: dict[str, HdrHistogram] = {}
    for name, histogram in named.items():
        where, kind = kind_of(name)
        if where == level:
            out.setdefault(kind, new_histogram()).add(histogram)
    return out


def progress(second: int, entry: Second, timeline: Timeline) -> str:
    def p99(level: str) -> str:
        kinds = merged_by_kind(timeline.named, level)
        return " ".join(
            f"{k} {kinds[k].get_value_at_percentile(99) / 1000:.1f}"
            for k in (*READ_KINDS, "storm")
            if k in kinds
        )

    return (
        f"  {second:4d} s  writes {entry.offered:>6,}/s acked {entry.acked:>6,}/s  "
        f"reads {entry.counts.get('reads', 0):>5,}/s  errors "
        f"{entry.errors + entry.counts.get('read_errors', 0):>4,}  p99 so far (ms) "
        f"e2e: {p99('e2e') or '-'} | store: {p99('store') or '-'}"
    )


def plot_mixed(path: Path, timeline: Timeline, title: str) -> None:
    seconds = sorted(timeline.seconds)
    entries = [timeline.seconds[s] for s in seconds]
    names = sorted({n for e in entries for n in e.named})

    def p99_of(name: str) -> list[float]:
        return [
            (e.named[name].get_value_at_percentile(99) / 1000 if name in e.named else 0.0)
            for e in entries
        ]

    latency = [(f"{name} p99", p99_of(name)) for name in names]
    rates = [
        ("writes offered/s", [float(e.offered) for e in entries]),
        ("writes acked/s", [float(e.acked) for e in entries]),
        ("reads/s", [float(e.counts.get("reads", 0)) for e in entries]),
    ]
    plot_panels(
        path,
        title,
        [float(s) for s in seconds],
        [("read latency, ms (log scale)", True, latency), ("per second", False, rates)],
    )


@dataclass
class StormFigures:
    subscribers: int = 0
    resumed: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    replayed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    coalesced: dict[str, float] = field(default_factory=dict)
    """The gateway's ``chat_store_coalesced_reads`` during the storm, ``read:count``."""


def coalesced_reads(url: str) -> dict[str, float]:
    """``chat_store_coalesced_reads`` from the gateway's ``/metrics``, as ``read:count``."""
    import re

    text = httpx.get(url + "/metrics", timeout=30).text
    pattern = r'^chat_store_coalesced_reads\{count="(\w+)",read="(\w+)"\} (\S+)$'
    return {
        f"{read}:{count}": float(value) for count, read, value in re.findall(pattern, text, re.M)
    }


def run_storm(
    options: MixedOptions,
    gateway: Gateway,
    population: Population,
    since_id: str,
    counters: CqlCounters,
) -> tuple[StormFigures, list[ReaderResult]]:
    storm = population.storm
    assert storm is not None
    users = tuple(ReaderUser(u.id, u.token, (storm.id,)) for u in storm.participants)
    plan = StormPlan(storm.id, cursor_of(since_id), since_id, options.storm_window)
    processes = 2
    configs = [
        ReaderConfig(
            index=n,
            transport="ws",
            base_url=gateway.url,
            users=users[n::processes],
            storm=plan,
            seed=100 + n,
        )
        for n in range(processes)
    ]
    before, coalesced_before = counters.read(), coalesced_reads(gateway.url)
    results, _ = run_fleet(configs, live=False)
    after, coalesced_after = counters.read(), coalesced_reads(gateway.url)
    prefix = f"selects:{KEYSPACE}."
    figures = StormFigures(subscribers=len(users))
    figures.reads = {
        k[len(prefix) :]: after[k] - before.get(k, 0)
        for k in after
        if k.startswith(prefix) and after[k] != before.get(k, 0)
    }
    figures.coalesced = {k: v - coalesced_before.get(k, 0.0) for k, v in coalesced_after.items()}
    figures.resumed = sum(r.operations["storm"] for r in results)
    figures.replayed = sum(r.replayed[0] for r in results if r.replayed)
    figures.latency_ms = summary_ms(merge(h for r in results for h in r.histograms.values()))
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    figures.errors = dict(errors)
    return figures, results


def wait_until_quiet(counters: CqlCounters, longest: float) -> None:
    """Wait (at most ``longest`` s) until the gateway has stopped reading: reads the run's
    readers gave up on may still be queued there, and the storm's counts must be its own."""
    prefix = f"selects:{KEYSPACE}."

    def reads() -> int:
        return sum(v for k, v in counters.read().items() if k.startswith(prefix))

    deadline = time.monotonic() + longest
    last = reads()
    while time.monotonic() < deadline:
        time.sleep(1.0)  # sampling the server's counters, against a deadline
        now = reads()
        if now == last:
            return
        last = now
    print(f"  the gateway was still reading after {longest:g} s; storm figures include it")


def acked_times(results: Sequence[WorkerResult]) -> dict[str, int]:
    return {m.message_id: m.acked_ns for r in results for m in r.sent if m.message_id is not None}


def run_mixed(options: MixedOptions) -> int:
    """The whole run; returns the exit status (1 when a check failed)."""
    started = time.time()
    raise_nofile(options.storm_subscribers * 2 + 8192)
    with contextlib.ExitStack() as stack:
        print("starting the gateway (chat serve, embedded PostgreSQL + CQL) ...", flush=True)
        gateway = stack.enter_context(gateway_subprocess(options.gateway_env))
        assert gateway.cql_host is not None
        assert gateway.cql_port is not None
        print(
            f"creating {options.events} live events of {options.writers} writers and "
            f"{options.readers} readers, {options.quiet_events} quiet events and a storm event "
            f"of {options.storm_subscribers} through the REST API ...",
            flush=True,
        )
        population = asyncio.run(populate(gateway.url, options))
        counters = CqlCounters(gateway.cql_host, gateway.cql_port)
        stack.callback(counters.close)
        now_ms = time.time_ns() // 1_000_000
        plan = seed_plan(population, options, now_ms)
        print(f"seeding {len(plan):,} older messages across buckets ...", flush=True)
        seeded = asyncio.run(seed(gateway, plan))
        ws_url = gateway.url.replace("http://", "ws://", 1) + "/v1/ws"
        writer_specs = [
            ConnSpec(u.id, u.token, (e.id,), e.id)
            for e in population.live
            for u in e.participants[: options.writers]
        ]
        capacity = None
        capacity_results: list[WorkerResult] = []
        rate = options.write_rate
        if rate is None:
            print(
                f"measuring the write capacity ({options.capacity_seconds:.0f} s closed loop) ..."
            )
            closed = WriteLoadOptions(
                mode="closed",
                concurrency=256,
                duration=options.capacity_seconds,
                warmup=1.0,
                drain=options.drain,
                processes=options.writer_processes,
            )
            window = Window(gateway.pid, None)
            capacity_results, _ = drive(
                closed, worker_configs(closed, ws_url, "chat", writer_specs), window
            )
            capacity = summarize(capacity_results, window.figures()["seconds"])["acked_per_s"]
            rate = capacity / 2
            print(f"write capacity {capacity:,.0f} acked/s: writing at half, {rate:,.0f}/s")
        writing = WriteLoadOptions(
            mode="open",
            rate=rate,
            duration=options.duration,
            warmup=options.warmup,
            drain=options.drain,
            processes=options.writer_processes,
        )
        configs: list[Any] = worker_configs(writing, ws_url, "chat", writer_specs)
        configs += reader_configs(options, gateway, population, len(configs))
        window = Window(gateway.pid, counters)
        print(
            f"writes open loop {rate:,.0f}/s; reads {options.read_rate:,.0f}/s end to end "
            f"(WebSocket and REST) and {options.store_read_rate:,.0f}/s at the store; "
            f"warmup {options.warmup} s, measuring {options.duration} s",
            flush=True,
        )
        results, timeline = drive(writing, configs, window, progress)
        figures = window.figures()
        writers = [r for r in results if isinstance(r, WorkerResult)]
        readers = [r for r in results if isinstance(r, ReaderResult)]
        storm_figures: StormFigures | None = None
        storm_results: list[ReaderResult] = []
        if population.storm is not None:
            wait_until_quiet(counters, options.drain)
            print(
                f"resume storm: {options.storm_subscribers} subscribers resubscribe with the "
                f"same since within {options.storm_window} s ...",
                flush=True,
            )
            since_id = seeded[population.storm.id][9]
            storm_figures, storm_results = run_storm(
                options, gateway, population, since_id, counters
            )
        print("reading the store back and checking every page ...", flush=True)
        all_events = [e.id for e in (*population.live, *population.quiet)]
        if population.storm is not None:
            all_events.append(population.storm.id)
        current = now_ms // BUCKET_MS
        buckets = range(
            current - max(QUIET_BUCKETS) - 1, time.time_ns() // 1_000_000 // BUCKET_MS + 2
        )
        order, senders = asyncio.run(read_reference(counters, all_events, list(buckets)))
        acked = {m: 0 for ids in seeded.values() for m in ids}
        acked.update(acked_times(capacity_results))
        acked.update(acked_times(writers))
        pages = [p for r in (*readers, *storm_results) for p in r.pages]
        verification = verify_pages(pages, order, acked)
        unread_problems = check_unread(gateway.url, population, order, senders, counters)
    result = build_result(
        options, rate, capacity, figures, writers, readers, timeline, storm_figures,
        verification, unread_problems, started,
    )  # fmt: skip
    for label, value in result["table"]:
        print(f"  {label:<40} {value}")
    ok = verification.ok and not unread_problems
    if not ok:
        print("VERIFICATION FAILED:", verification.as_dict(), unread_problems[:5], file=sys.stderr)
    directory = write_results(results_dir(options.results_root), result, timeline, plot_mixed)
    print(f"results: {directory}")
    return 0 if ok else 1


def check_unread(
    url: str,
    population: Population,
    order: dict[int, list[str]],
    senders: dict[str, int],
    counters: CqlCounters,
) -> list[str]:
    """Every reader's ``GET /v1/me/unread`` against the store and their read positions."""

    async def read_all() -> list[dict[int, int]]:
        async with rest.api_client(url) as http:
            calls = [partial(rest.read_unread, http, u) for u in population.readers]
            return await rest.bounded(calls)

    positions = asyncio.run(read_positions(counters, [u.id for u in population.readers]))
    problems = []
    events = [*population.live, *population.quiet]
    for reader, counts in zip(population.readers, asyncio.run(read_all()), strict=True):
        for event in events:
            position = positions.get((reader.id, event.id))
            expected = expected_unread(order[event.id], senders, reader.id, position)
            if counts.get(event.id) != expected:
                problems.append(
                    f"user {reader.id} event {event.id}: {counts.get(event.id)} != {expected}"
                )
    return problems


def latency_rows(readers: Sequence[ReaderResult]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    named: dict[str, HdrHistogram] = {}
    for r in readers:
        for name, blob in r.histograms.items():
            named.setdefault(name, new_histogram()).add(merge([blob]))
    rows, figures = [], {}
    for level in ("store", "e2e"):
        for kind, histogram in sorted(merged_by_kind(named, level).items()):
            summary = summary_ms(histogram)
            figures[f"{level}:{kind}"] = summary
            rows.append(
                (
                    f"{level} {kind} p50 / p99 / max",
                    f"{summary['p50']:.1f} / {summary['p99']:.1f} / {summary['max']:.1f} ms "
                    f"({summary['count']:,.0f} reads)",
                )
            )
    for name in sorted(named):
        figures[name] = summary_ms(named[name])
    return rows, figures


def build_result(
    options: MixedOptions,
    rate: float,
    capacity: float | None,
    figures: dict[str, float],
    writers: Sequence[WorkerResult],
    readers: Sequence[ReaderResult],
    timeline: Timeline,
    storm: StormFigures | None,
    verification: ReadVerification,
    unread_problems: list[str],
    started: float,
) -> dict[str, Any]:
    writes = summarize(list(writers), figures["seconds"])
    rows: list[tuple[str, str]] = [
        (
            "write capacity (closed loop)",
            f"{capacity:,.0f} acked/s" if capacity else "not measured",
        ),
        ("writes", f"open loop {rate:,.0f}/s offered, {writes['acked_per_s']:,.0f}/s acked"),
        (
            "send→ack p50 / p99",
            f"{writes['send_to_ack_ms']['p50']:.1f} / {writes['send_to_ack_ms']['p99']:.1f} ms",
        ),
    ]
    latency, latency_figures = latency_rows(readers)
    rows += latency
    seen = [v for r in readers for v in r.unread_seen]
    replayed = [v for r in readers for v in r.replayed]
    errors: Counter[str] = Counter()
    for r in readers:
        errors.update(r.errors)
    rows += [
        (
            "unread: events per user / mean unread",
            f"{options.events} / {sum(seen) / len(seen):.1f}" if seen else "-",
        ),
        (
            "since: mean messages replayed",
            f"{sum(replayed) / len(replayed):.1f}" if replayed else "-",
        ),
        ("read errors", ", ".join(f"{k} {v}" for k, v in errors.items()) or "none"),
        ("write errors", ", ".join(f"{k} {v}" for k, v in writes["errors"].items()) or "none"),
    ]
    if storm is not None:
        lat = storm.latency_ms
        rows += [
            (
                "storm: subscribers resumed",
                f"{storm.resumed:,} of {storm.subscribers:,} (errors {storm.errors or 'none'})",
            ),
            (
                "storm: since→subscribed p50 / p99 / max",
                f"{lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f} / {lat.get('max', 0):.1f} ms",
            ),
            (
                "storm: CQL reads by table",
                ", ".join(f"{k} {v:,}" for k, v in sorted(storm.reads.items())),
            ),
            (
                "storm: history pages asked / read",
                f"{storm.coalesced.get('history_page:callers', 0):,.0f} / "
                f"{storm.coalesced.get('history_page:reads', 0):,.0f}",
            ),
            (
                "storm: unread counts asked / read",
                f"{storm.coalesced.get('unread_count:callers', 0):,.0f} / "
                f"{storm.coalesced.get('unread_count:reads', 0):,.0f}",
            ),
        ]
    rows += [
        (
            "CPU cores: gateway / CQL / PG / generators",
            " / ".join(
                f"{figures.get(f'{name}_cores', 0):.2f}"
                for name in ("gateway", "cql_server", "postgres", "generators")
            ),
        ),
        ("machine busy (all processes)", f"{figures['machine_busy_percent']:.0f} %"),
        ("pages checked", f"{verification.checked_pages:,} ({verification.checked_ids:,} ids)"),
        ("page exactness", "ok" if verification.ok else f"FAILED {dict(verification.counts)}"),
        (
            "final unread counts",
            "ok" if not unread_problems else f"FAILED ({len(unread_problems)})",
        ),
    ]
    return {
        "title": (
            f"mixed: writes {rate:,.0f}/s, reads {options.read_rate:,.0f}/s end to end "
            f"+ {options.store_read_rate:,.0f}/s at the store"
        ),
        "command": options.command or " ".join(shlex.quote(a) for a in sys.argv),
        "started": started,
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(options).items() if k != "gateway_env"},
        "write_capacity_per_s": capacity,
        "writes": writes,
        "reads": latency_figures,
        "storm": vars(storm) if storm is not None else None,
        "window": figures,
        "verification": {**verification.as_dict(), "unread_problems": unread_problems[:20]},
        "table": rows,
    }
