"""Write throughput of the chat store: messages/s and latency through ``MessageStore.send``.

No WebSocket and no HTTP: ``--concurrency`` senders loop over ``--events`` events of 2-20
participants each, every send a new ``client_msg_id`` (so every send is a full idempotent
send: claim, claim read-back, rows). Prints a progress line every second and, at the end,
messages/s, p50/p99 per send, the driver requests the coalescing writer issued, and the rows/s
the server wrote (from ``system.embedded_stats``).

Starts its own in-memory embedded CQL server unless ``--contact-point`` is given::

    .venv/bin/python bench/store_write.py --duration 10 --concurrency 512 --events 200

``--messages N`` measures memory instead of speed: it sends exactly N messages (a realistic
sender name, a 36-character ``client_msg_id``, ``--text-bytes`` of text) and reports the
embedded server's RSS growth per stored message, from /proc, with the store's own figures
from ``system.embedded_stats`` (rows, bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load.servers import rss_bytes
from chat.config import Settings
from chat.domain.messages import NewMessage
from chat.gc_tuning import tune_for_server
from chat.store.cql.messages import MessageStore
from chat.store.cql.migrations import migrate_up
from chat.store.driver.session import (
    CqlStore,
    connect_blocking,
    connection_class_for,
    execute_async,
    shutdown_cluster,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--concurrency", type=int, default=512, help="sends in flight")
    p.add_argument("--events", type=int, default=200, help="events (2-20 participants each)")
    p.add_argument("--contact-point", help="CQL host; default: start an embedded server")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="durable embedded server (commit log, snapshots) in this directory; default: in "
        "memory",
    )
    p.add_argument("--port", type=int, default=9042)
    p.add_argument("--reactor", choices=["libev", "asyncio", "app-loop"], default="app-loop")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--batch-ms", type=float, default=None, help="CHAT_WRITE_BATCH_MS")
    p.add_argument("--batch-statements", type=int, default=None, help="CHAT_WRITE_BATCH_STATEMENTS")
    p.add_argument("--dedup", choices=["fast", "strict"], default="fast")
    p.add_argument("--text-bytes", type=int, default=120, help="message size")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--messages",
        type=int,
        default=None,
        help="send exactly this many messages and report the server's RSS growth per message "
        "(instead of a timed run)",
    )
    p.add_argument(
        "--gc",
        choices=["default", "tuned"],
        default="tuned",
        help="tuned (the default, as `chat serve` and the embedded server run): freeze the "
        "start-up heap and make young collections rare; `default` keeps Python's thresholds, "
        "under which the collector took ~20%% of the client's main-thread CPU",
    )
    return p.parse_args(argv)


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a process, from /proc (Linux); 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_stats(cql: CqlStore) -> dict[str, int]:
    try:
        rows = await execute_async(cql.session, "SELECT name, value FROM system.embedded_stats")
    except Exception:  # a real ScyllaDB has no such table
        return {}
    return {r.name: r.value for r in rows}


async def open_store(
    args: argparse.Namespace, stack: AsyncExitStack
) -> tuple[MessageStore, CqlStore, int | None]:
    """The message store on a fresh keyspace (and the embedded server's pid, when started)."""
    server_pid: int | None = None
    if args.contact_point:
        host, port = args.contact_point, args.port
    else:
        from chat.embedded.cql.process import EmbeddedCqlServer

        server = EmbeddedCqlServer(data_dir=args.data_dir)
        await stack.enter_async_context(server)
        host, port = server.host, server.port
        server_pid = server.pid
    overrides: dict[str, Any] = {
        "cql_contact_points": host,
        "cql_port": port,
        "cql_keyspace": "bench_store_write",
        "send_dedup": args.dedup,
    }
    if args.batch_ms is not None:
        overrides["write_batch_ms"] = args.batch_ms
    if args.batch_statements is not None:
        overrides["write_batch_statements"] = args.batch_statements
    settings = Settings(**overrides)
    connection_class = connection_class_for(args.reactor)
    if args.reactor == "asyncio":
        from cassandra.io.asyncioreactor import AsyncioConnection

        connection_class = AsyncioConnection
    cql = await asyncio.to_thread(
        connect_blocking, settings, [host], port, connection_class=connection_class
    )
    stack.push_async_callback(shutdown_cluster, cql.cluster)
    await migrate_up(cql, settings)
    store = MessageStore(cql, settings)
    await store.start()
    stack.push_async_callback(store.close)
    return store, cql, server_pid


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    async with AsyncExitStack() as stack:
        store, cql, server_pid = await open_store(args, stack)

        events = [(1_000_000 + e, rng.randint(2, 20)) for e in range(args.events)]
        text = "x" * args.text_bytes
        latencies: list[int] = []
        counter = 0
        measuring = False
        stop = False

        async def sender(worker: int) -> None:
            # Kept cheap so the bench measures the store, not itself: one random draw per send,
            # latencies as integer nanoseconds appended to a list.
            nonlocal counter
            n = 0
            local_rng = random.Random(args.seed * 100_003 + worker)
            choose = local_rng.random
            n_events = len(events)
            prefix = f"w{worker}-"
            send = store.send
            clock = time.perf_counter_ns
            record = latencies.append
            while not stop:
                r = choose() * n_events
                event_id, participants = events[int(r)]
                sender_id = event_id * 100 + int((r % 1) * participants)
                n += 1
                msg = NewMessage(event_id, sender_id, prefix + str(n), text)
                t0 = clock()
                await send(msg)
                if measuring:
                    record(clock() - t0)
                    counter += 1

        if args.gc == "tuned":
            # The same tuning `chat serve` applies (chat.gc_tuning).
            tune_for_server()
        workers = [asyncio.create_task(sender(w)) for w in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        before_server = await server_stats(cql)
        before_store = dict(store.stats)
        measuring = True
        cpu_before = time.process_time()
        server_cpu_before = _cpu_seconds(server_pid)
        started = time.perf_counter()
        last_t, last_n = started, 0
        while (remaining := args.duration - (time.perf_counter() - started)) > 0.01:
            await asyncio.sleep(min(1.0, remaining))
            t, n = time.perf_counter(), counter
            print(
                f"  {t - started:5.1f}s  {n:>9,} sent  {(n - last_n) / (t - last_t):>9,.0f} msg/s",
                flush=True,
            )
            last_t, last_n = t, n
        measuring = False
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        server_cpu = _cpu_seconds(server_pid) - server_cpu_before
        sent = counter
        after_server = await server_stats(cql)
        after_store = dict(store.stats)
        stop = True
        await asyncio.gather(*workers, return_exceptions=True)

    lat = sorted(latencies)
    rows = after_server.get("rows_written", 0) - before_server.get("rows_written", 0)
    result = {
        "messages": sent,
        "seconds": elapsed,
        "messages_per_s": sent / elapsed,
        "p50_ms": lat[(len(lat) - 1) // 2] / 1e6 if lat else 0.0,
        "p99_ms": lat[int(0.99 * (len(lat) - 1))] / 1e6 if lat else 0.0,
        "rows_per_s": rows / elapsed,
        "batches_per_s": (after_store["batches"] - before_store["batches"]) / elapsed,
        "statements_per_batch": (after_store["statements"] - before_store["statements"])
        / max(1, after_store["batches"] - before_store["batches"]),
        "client_cpu_us_per_message": 1e6 * cpu / max(1, sent),
        "client_cores": cpu / elapsed,
        "server_cores": server_cpu / elapsed,
        "claim_reads_per_s": (after_store["claim_reads"] - before_store["claim_reads"]) / elapsed,
    }
    return result


MEMORY_WARMUP_MESSAGES = 2000
"""Sent before the first RSS reading: prepared statements, partitions of every event, buffers."""


async def run_messages(args: argparse.Namespace) -> dict[str, Any]:
    """Send exactly ``args.messages`` messages; the server's RSS growth per stored message.

    Every message is a full send (claim, claim read-back, event row, user-index row, bucket
    rows when new) with a 36-character ``client_msg_id`` and a sender name, as the gateway
    stores them. RSS is read from /proc before the measured messages and after them, once the
    store has answered every send; the slope over the progress readings is printed too.
    """
    import uuid

    rng = random.Random(args.seed)
    async with AsyncExitStack() as stack:
        store, cql, server_pid = await open_store(args, stack)
        if server_pid is None:
            raise SystemExit("--messages measures the embedded server: omit --contact-point")
        if args.gc == "tuned":
            tune_for_server()
        events = [(1_000_000 + e, rng.randint(2, 20)) for e in range(args.events)]
        text = "x" * args.text_bytes
        uuid_rng = random.Random(args.seed + 1)

        async def send_many(count: int, on_progress: Any = None) -> None:
            queue = iter(range(count))

            async def sender() -> None:
                for n in queue:
                    event_id, participants = events[n % len(events)]
                    sender_id = event_id * 100 + n % participants
                    cmid = str(uuid.UUID(int=uuid_rng.getrandbits(128), version=4))
                    await store.send(
                        NewMessage(event_id, sender_id, cmid, text, sender_name=f"User {sender_id}")
                    )

            workers = [asyncio.create_task(sender()) for _ in range(args.concurrency)]
            done = asyncio.gather(*workers)
            while not done.done():
                await asyncio.wait([done], timeout=1.0)
                if on_progress is not None:
                    on_progress()
            await done

        await send_many(MEMORY_WARMUP_MESSAGES)
        await asyncio.sleep(1.0)
        before_stats = await server_stats(cql)
        rss_before = rss_bytes(server_pid)
        before_rows = before_stats.get("rows_written", 0)
        started = time.perf_counter()

        def on_progress() -> None:
            rss = rss_bytes(server_pid)
            print(
                f"  {time.perf_counter() - started:5.1f}s  server RSS {rss / 2**20:8.1f} MiB "
                f"(+{(rss - rss_before) / 2**20:.1f})",
                flush=True,
            )

        await send_many(args.messages, on_progress)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)
        rss_after = rss_bytes(server_pid)
        after_stats = await server_stats(cql)

    grown = rss_after - rss_before
    result: dict[str, Any] = {
        "messages": args.messages,
        "seconds": elapsed,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_bytes_per_message": grown / args.messages,
        "rows_written_per_message": (after_stats.get("rows_written", 0) - before_rows)
        / args.messages,
    }
    for name in ("store_rows", "store_bytes", "store_memory_bytes", "memory_budget_bytes"):
        if name in after_stats:
            result[name] = after_stats[name]
            result[f"{name}_per_message"] = (
                after_stats[name] - before_stats.get(name, 0)
            ) / args.messages
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"store_write: concurrency={args.concurrency} events={args.events} reactor={args.reactor} "
        f"loop={args.loop} dedup={args.dedup} gc={args.gc} duration={args.duration}s",
        flush=True,
    )
    runner = uvloop.run if args.loop == "uvloop" else asyncio.run
    if args.messages is not None:
        m = runner(run_messages(args))
        print(
            f"stored {m['messages']:,} messages in {m['seconds']:.1f} s "
            f"({m['rows_written_per_message']:.2f} rows written each)\n"
            f"embedded server RSS {m['rss_before_bytes'] / 2**20:.1f} -> "
            f"{m['rss_after_bytes'] / 2**20:.1f} MiB: "
            f"{m['rss_bytes_per_message']:,.0f} bytes per stored message"
        )
        if "store_bytes" in m:
            print(
                f"the store's own count: {m['store_rows']:,} rows, {m['store_bytes']:,} bytes "
                f"({m['store_bytes_per_message']:,.0f} per message), estimated memory "
                f"{m['store_memory_bytes']:,} bytes ({m['store_memory_bytes_per_message']:,.0f} "
                f"per message; what the budget of {m['memory_budget_bytes']:,} bytes bounds)"
            )
        return 0
    r = runner(run(args))
    print(
        f"messages/s {r['messages_per_s']:,.0f}  ({r['messages']:,} in {r['seconds']:.1f} s)\n"
        f"latency per send  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms\n"
        f"server rows/s {r['rows_per_s']:,.0f}\n"
        f"driver requests: batches/s {r['batches_per_s']:,.0f} "
        f"({r['statements_per_batch']:.1f} statements each), "
        f"claim reads/s {r['claim_reads_per_s']:,.0f}\n"
        f"client CPU per message {r['client_cpu_us_per_message']:.0f} us (all driver threads); "
        f"cores busy: client {r['client_cores']:.2f}, embedded server {r['server_cores']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
