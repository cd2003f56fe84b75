"""Benchmark of the embedded CQL server through the real scylla-driver.

Driver processes (each with its own default ``Cluster``) send prepared statements with many
requests in flight against a server subprocess: INSERTs of one row per request (``single``),
UNLOGGED batches of ``--batch-size`` rows (``batch``), or single-partition slices
(``slice``: ``WHERE room = ? AND at > ? LIMIT 20`` over pre-filled partitions, one request
counting as one "row" in the figures). The figures: rows/s over the measurement window, and the
server's CPU microseconds per row, from the server process's own CPU time (user + system) —
which is what the server's targets (docs/embedded-cql.md) are about, since the driver, not the
server, is the ceiling for throughput.

    .venv/bin/python bench/cql_server.py --processes 2 --duration 10 --mode both
    .venv/bin/python bench/cql_server.py --data-dir /tmp/cqlbench   # with the commit log

Progress (rows/s of the last second) is printed while it runs.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import multiprocessing.synchronize
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from chat.embedded.cql.process import EmbeddedCqlServer

KEYSPACE = "bench"
SCHEMA = (
    f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
    "{'class': 'SimpleStrategy', 'replication_factor': 1}",
    f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.messages "
    "(room bigint, at bigint, author text, body text, PRIMARY KEY (room, at))",
)
INSERT = f"INSERT INTO {KEYSPACE}.messages (room, at, author, body) VALUES (?, ?, ?, ?)"
SLICE = f"SELECT room, at, author, body FROM {KEYSPACE}.messages WHERE room = ? AND at > ? LIMIT 20"
BODY = "x" * 80
SLICE_ROOMS = 200
SLICE_ROWS_PER_ROOM = 200


@dataclass(frozen=True)
class Workload:
    host: str
    port: int
    batch_size: int  # 1 = single-row requests
    concurrency: int
    compression: bool = True
    slices: bool = False  # single-partition SELECTs instead of INSERTs


def worker(
    index: int,
    workload: Workload,
    rows_done: Synchronized[int],
    ready: multiprocessing.synchronize.Barrier,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """One driver process: keep ``concurrency`` requests in flight until told to stop."""
    from cassandra.cluster import Cluster
    from cassandra.query import BatchStatement, BatchType

    cluster = Cluster([workload.host], port=workload.port, compression=workload.compression)
    session = cluster.connect()
    prepared = session.prepare(SLICE if workload.slices else INSERT)
    sequence = itertools.count()
    done = 0
    errors = 0
    room_base = (index + 1) * 1_000_000_000
    finished = threading.Event()
    in_flight = 0
    lock = threading.Lock()

    def next_request() -> Any:
        n = next(sequence)
        if workload.slices:
            return prepared.bind((n % SLICE_ROOMS, n % (SLICE_ROWS_PER_ROOM - 20)))
        if workload.batch_size == 1:
            return prepared.bind((room_base + n % 1000, n, "bench", BODY))
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for i in range(workload.batch_size):
            m = n * workload.batch_size + i
            batch.add(prepared, (room_base + m % 1000, m, "bench", BODY))
        return batch

    stopping = False

    def watch_stop() -> None:
        # A plain flag read per request: Event.is_set() takes a cross-process lock.
        nonlocal stopping
        stop.wait()
        stopping = True

    threading.Thread(target=watch_stop, daemon=True).start()

    def issue() -> None:
        nonlocal in_flight
        if stopping:
            with lock:
                in_flight -= 1
                if in_flight == 0:
                    finished.set()
            return
        future = session.execute_async(next_request())
        future.add_callbacks(on_success, on_error)

    def on_success(_: Any) -> None:
        nonlocal done
        done += workload.batch_size
        issue()

    def on_error(exc: BaseException) -> None:
        nonlocal errors
        errors += 1
        if errors <= 3:
            print(f"worker {index}: request failed: {exc!r}", file=sys.stderr, flush=True)
        issue()

    ready.wait()
    in_flight = workload.concurrency
    for _ in range(workload.concurrency):
        issue()
    while not finished.wait(0.1):
        rows_done.value = done
    rows_done.value = done
    cluster.shutdown()


def run(
    mode: str, workload: Workload, processes: int, duration: float, warmup: float, pid: int | None
) -> dict[str, float]:
    """Run one workload; print progress each second; return the measured figures."""
    context = multiprocessing.get_context("spawn")
    counters = [context.Value("q", 0) for _ in range(processes)]
    ready = context.Barrier(processes + 1)
    stop = context.Event()
    workers = [
        context.Process(target=worker, args=(i, workload, counters[i], ready, stop))
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    ready.wait(timeout=120)

    def total() -> int:
        return sum(int(c.value) for c in counters)

    def cpu() -> float:
        return process_cpu_seconds(pid) if pid is not None else 0.0

    time.sleep(warmup)
    start_rows, start_cpu, start_time = total(), cpu(), time.monotonic()
    last_rows, last_time = start_rows, start_time
    while (now := time.monotonic()) - start_time < duration:
        time.sleep(min(1.0, duration - (now - start_time)))
        rows, now = total(), time.monotonic()
        rate = (rows - last_rows) / (now - last_time)
        print(f"  [{mode}] {now - start_time:5.1f} s  {rate:9.0f} rows/s", flush=True)
        last_rows, last_time = rows, now
    end_rows, end_cpu, end_time = total(), cpu(), time.monotonic()
    stop.set()
    for process in workers:
        process.join(timeout=30)
    rows = end_rows - start_rows
    elapsed = end_time - start_time
    cpu_seconds = end_cpu - start_cpu
    return {
        "rows": rows,
        "rows_per_s": rows / elapsed,
        "requests_per_s": rows / workload.batch_size / elapsed,
        "server_cpu_us_per_row": cpu_seconds * 1e6 / rows if rows and pid else float("nan"),
        "server_cpu_us_per_request": (
            cpu_seconds * 1e6 * workload.batch_size / rows if rows and pid else float("nan")
        ),
        "server_cpu_percent": 100.0 * cpu_seconds / elapsed,
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def prepare_schema(host: str, port: int, fill: bool) -> None:
    """Create the table; with ``fill``, the partitions the slice workload reads."""
    from cassandra.cluster import Cluster
    from cassandra.concurrent import execute_concurrent_with_args

    cluster = Cluster([host], port=port)
    try:
        session = cluster.connect()
        for statement in SCHEMA:
            session.execute(statement)
        if fill:
            insert = session.prepare(INSERT)
            rows = [
                (room, at, "bench", BODY)
                for room in range(SLICE_ROOMS)
                for at in range(SLICE_ROWS_PER_ROOM)
            ]
            execute_concurrent_with_args(session, insert, rows, concurrency=256)
            print(f"filled {len(rows)} rows in {SLICE_ROOMS} partitions for slices", flush=True)
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--processes", type=int, default=2, help="driver processes")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight/process")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch in batch mode")
    parser.add_argument(
        "--mode",
        choices=("single", "batch", "slice", "both", "all"),
        default="both",
        help="both: single and batch; all: single, batch and slice",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="durable server (commit log)")
    parser.add_argument("--commit-sync-ms", type=float, default=None)
    parser.add_argument(
        "--no-compression", action="store_true", help="Cluster(compression=False) in the drivers"
    )
    parser.add_argument("--host", default=None, help="use a running server instead")
    parser.add_argument("--port", type=int, default=9042)
    parser.add_argument("--server-pid", type=int, default=None, help="its pid, for CPU figures")
    args = parser.parse_args(argv)

    modes = {"both": ["single", "batch"], "all": ["single", "batch", "slice"]}.get(
        args.mode, [args.mode]
    )
    server: EmbeddedCqlServer | None = None
    with tempfile.TemporaryDirectory(prefix="cqlbench-") as scratch:
        if args.host is None:
            data_dir = args.data_dir
            server = EmbeddedCqlServer(
                data_dir=data_dir,
                commit_sync_ms=args.commit_sync_ms,
                log_file=Path(scratch) / "server.log",
            )
            server.start()
            host, port, pid = server.host, server.port, server.pid
        else:
            host, port, pid = args.host, args.port, args.server_pid
        print(
            f"server {host}:{port} pid={pid} data_dir={args.data_dir} "
            f"processes={args.processes} concurrency={args.concurrency}",
            flush=True,
        )
        try:
            prepare_schema(host, port, fill="slice" in modes)
            for mode in modes:
                batch_size = args.batch_size if mode == "batch" else 1
                workload = Workload(
                    host,
                    port,
                    batch_size,
                    args.concurrency,
                    not args.no_compression,
                    slices=mode == "slice",
                )
                label = f"batch{batch_size}" if mode == "batch" else mode
                figures = run(label, workload, args.processes, args.duration, args.warmup, pid)
                print(
                    f"RESULT mode={label} processes={args.processes} "
                    f"rows/s={figures['rows_per_s']:.0f} "
                    f"requests/s={figures['requests_per_s']:.0f} "
                    f"server_cpu_us/row={figures['server_cpu_us_per_row']:.1f} "
                    f"server_cpu_us/request={figures['server_cpu_us_per_request']:.1f} "
                    f"server_cpu={figures['server_cpu_percent']:.0f}%",
                    flush=True,
                )
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
