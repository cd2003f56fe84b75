"""``python -m bench write-load``: the write-throughput run, its verification and its baseline.

Population: ``events`` events of ``participants`` users each (every user in exactly one event,
so one connection per user). Every connection subscribes to its event and sends to it, so each
message fans out to ``participants`` connections (the sender's own included). A message is two
CQL row writes at least (the per-event row and the per-user index row) plus its claim.

CPU figures come from /proc: the gateway process, its CQL server subprocess, and the whole
machine (everything on it, generators included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.load import rest
from bench.load.fleet import Second, Timeline, progress_line, run_fleet
from bench.load.generator import ConnSpec, WorkerConfig, WorkerResult
from bench.load.histograms import merge, summary_ms
from bench.load.report import machine, results_dir, table, write_results
from bench.load.schedule import split_evenly
from bench.load.servers import (
    Gateway,
    cpu_seconds,
    descendants,
    echo_subprocess,
    gateway_subprocess,
)
from bench.load.verify import DeliveryOrder, Verification, verify
from bench.load.views import ClientView, ViewCheck, check_views


@dataclass
class WriteLoadOptions:
    mode: Literal["open", "closed"] = "closed"
    rate: float = 1000.0
    concurrency: int = 256
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 15.0
    processes: int = 2
    events: int = 100
    participants: int = 5
    text_bytes: int = 100
    url: str | None = None
    verify: bool = True
    delivery_order: DeliveryOrder = "store"
    """What deliveries are held to (``store``: the protocol's one order, on one node or many;
    ``sender``: each sender's order only); see :mod:`bench.load.verify`."""
    workers: int = 1
    """Gateway processes the bench starts (``chat serve --workers N``; 1: ``chat serve``)."""
    drops_per_minute: float = 0.0
    """Random abrupt connection drops per connection and minute, each followed by a resume."""
    baseline: str | None = None
    results_root: Path | None = None
    write_files: bool = True
    gateway_env: dict[str, str] = field(default_factory=dict)
    command: str = ""


# --------------------------------------------------------------------------- measuring


def machine_busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def process_groups(gateway_pid: int | None) -> dict[str, list[int]]:
    """The processes whose CPU a run reports: the gateway, its CQL server, its PostgreSQL
    (postmaster and backends) and this process's generators (looked up when measured)."""
    below = descendants(gateway_pid) if gateway_pid else []
    workers = [p for p in below if b"chat.cli" in _cmdline(p)]  # chat serve --workers N
    return {
        "gateway": ([gateway_pid] if gateway_pid else []) + workers,
        "cql_server": [p for p in below if b"chat.embedded.cql" in _cmdline(p)],
        "postgres": [p for p in below if b"postgres" in _cmdline(p)],
        "nats": [p for p in below if b"nats-server" in _cmdline(p)],
    }


def group_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


class CqlCounters:
    """``system.embedded_stats`` of the gateway's CQL server, through the driver."""

    def __init__(self, host: str, port: int) -> None:
        from chat.config import Settings
        from chat.store.driver.session import connect_blocking

        settings = Settings(cql_contact_points=host, cql_port=port)
        self.cql = connect_blocking(settings, [host], port)

    def read(self) -> dict[str, int]:
        from bench.store_write import server_stats

        return asyncio.run(server_stats(self.cql))

    def close(self) -> None:
        self.cql.cluster.shutdown()


@dataclass
class Window:
    """Snapshots at the start and end of the measured window."""

    gateway_pid: int | None
    counters: CqlCounters | None
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)

    def groups(self) -> dict[str, list[int]]:
        groups = process_groups(self.gateway_pid)
        mine = set(descendants(os.getpid())) - {p for pids in groups.values() for p in pids}
        groups["generators"] = [p for p in mine if b"multiprocessing" in _cmdline(p)]
        return groups

    def snapshot(self) -> dict[str, Any]:
        return {
            "time": time.monotonic(),
            "cpu": {name: group_cpu(pids) for name, pids in self.groups().items()},
            "machine": machine_busy_jiffies(),
            "cql": self.counters.read() if self.counters else {},
        }

    def figures(self) -> dict[str, float]:
        elapsed = self.end["time"] - self.start["time"]
        out: dict[str, float] = {"seconds": elapsed}
        for name, start in self.start["cpu"].items():
            out[f"{name}_cores"] = (self.end["cpu"].get(name, start) - start) / elapsed
        busy = self.end["machine"][0] - self.start["machine"][0]
        total = self.end["machine"][1] - self.start["machine"][1]
        out["machine_busy_percent"] = 100.0 * busy / total if total else 0.0
        rows = self.end["cql"].get("rows_written", 0) - self.start["cql"].get("rows_written", 0)
        out["cql_rows_written_per_s"] = rows / elapsed
        return out


# --------------------------------------------------------------------------- the run


def conn_specs(population: rest.Population) -> list[ConnSpec]:
    return [
        ConnSpec(user.id, user.token, (event.id,), event.id)
        for event in population.events
        for user in event.participants
    ]


def worker_configs(
    options: WriteLoadOptions, ws_url: str, kind: Literal["chat", "echo"], specs: list[ConnSpec]
) -> list[WorkerConfig]:
    processes = options.processes
    shares = [specs[i::processes] for i in range(processes)]
    concurrency = split_evenly(options.concurrency, processes)
    tag = f"{secrets.token_hex(3)}"
    return [
        WorkerConfig(
            index=i,
            ws_url=ws_url,
            kind=kind,
            connections=tuple(shares[i]),
            mode=options.mode,
            rate=options.rate,
            schedule_processes=processes,
            schedule_index=i,
            concurrency=concurrency[i],
            warmup=options.warmup,
            duration=options.duration,
            drain=options.drain,
            text_bytes=options.text_bytes,
            run_tag=tag,
            drops_per_minute=options.drops_per_minute,
        )
        for i in range(processes)
    ]


def drive(
    options: WriteLoadOptions,
    configs: Sequence[Any],
    window: Window,
    progress: Callable[[int, Second, Timeline], str] = progress_line,
) -> tuple[list[Any], Timeline]:
    """Run the fleet; snapshot the counters at the window's start and end (a side thread)."""
    import threading

    def snapshots(start_ns: int) -> None:
        def at(offset: float, into: dict[str, Any]) -> None:
            due = start_ns / 1e9 + offset
            time.sleep(max(0.0, due - time.monotonic()))
            into.update(window.snapshot())

        def run() -> None:
            at(options.warmup, window.start)
            at(options.warmup + options.duration, window.end)

        threading.Thread(target=run, daemon=True, name="window").start()

    results, timeline = run_fleet(configs, on_start=snapshots, progress=progress)
    deadline = time.monotonic() + 10
    while not window.end and time.monotonic() < deadline:
        time.sleep(0.05)
    return results, timeline


def summarize(results: list[WorkerResult], seconds: float) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    offered = sum(r.offered for r in results)
    return {
        "offered": offered,
        "offered_per_s": offered / seconds,
        "acked_in_window": sum(r.acked_in_window for r in results),
        "acked_per_s": sum(r.acked_in_window for r in results) / seconds,
        "acked_of_offered": sum(r.acked for r in results),
        "unanswered": sum(r.unanswered for r in results),
        "errors": dict(errors),
        "drops": sum(r.drops for r in results),
        "resumes": sum(r.resubscribes for r in results),
        "send_to_ack_ms": summary_ms(merge(r.ack_histogram for r in results)),
        "send_to_delivery_ms": summary_ms(merge(r.delivery_histogram for r in results)),
    }


def verify_run(
    url: str,
    population: rest.Population,
    results: list[WorkerResult],
    delivery_order: DeliveryOrder = "store",
) -> tuple[Verification, ViewCheck]:
    """The store against what was sent, and every client's deliveries (each client's own
    view: gaps and duplicates counted per message, whatever drops and resumes it went
    through) against the store's order."""
    stored, unread = asyncio.run(rest.read_back(url, population.events))
    participants = {e.id: [u.id for u in e.participants] for e in population.events}
    deliveries: dict[tuple[int, int], list[str]] = {}
    for r in results:
        deliveries.update(r.deliveries)
    sent = [m for r in results for m in r.sent]
    views = check_views(
        (ClientView(user, event, None, ids) for (user, event), ids in deliveries.items()), stored
    )
    return verify(sent, stored, participants, unread, deliveries, delivery_order), views


def run_echo(options: WriteLoadOptions) -> dict[str, Any]:
    """The same clients against the bare echo server: the machine's WebSocket ceiling."""
    users = options.events * options.participants
    specs = [ConnSpec(n + 1, "", (), n // options.participants + 1) for n in range(users)]
    with echo_subprocess() as (url, pid):
        ws_url = url.replace("http://", "ws://", 1) + "/"
        window = Window(pid, None)  # the echo server's CPU is reported as the "gateway" group
        results, _ = drive(options, worker_configs(options, ws_url, "echo", specs), window)
    figures = window.figures()
    summary = summarize(results, figures["seconds"])
    summary["cpu_cores"] = {
        "echo_server": figures.get("gateway_cores", 0.0),
        "generators": figures.get("generators_cores", 0.0),
        "machine_busy_percent": figures["machine_busy_percent"],
    }
    return summary


def run_write_load(options: WriteLoadOptions) -> int:
    """The whole run; returns the exit status (1 when verification found a problem)."""
    started = time.time()
    with contextlib.ExitStack() as stack:
        if options.url:
            gateway = Gateway(options.url.rstrip("/"), None, None, None, None)
        else:
            what = (
                f"chat serve --workers {options.workers}" if options.workers > 1 else "chat serve"
            )
            print(f"starting the gateway ({what}, embedded PostgreSQL + CQL) ...", flush=True)
            gateway = stack.enter_context(
                gateway_subprocess(options.gateway_env, workers=options.workers)
            )
        users = options.events * options.participants
        print(
            f"creating {users} users and {options.events} events of {options.participants} "
            "through the REST API ...",
            flush=True,
        )
        population = asyncio.run(
            rest.populate(gateway.url, users, [options.participants] * options.events)
        )
        counters = None
        if gateway.cql_port is not None and gateway.cql_host is not None:
            counters = CqlCounters(gateway.cql_host, gateway.cql_port)
            stack.callback(counters.close)
        window = Window(gateway.pid, counters)
        ws_url = gateway.url.replace("http://", "ws://", 1) + "/v1/ws"
        load = (
            f"rate {options.rate:,.0f}/s"
            if options.mode == "open"
            else (f"concurrency {options.concurrency}")
        )
        print(
            f"{options.mode} loop, {load}, {options.processes} generator processes, "
            f"{len(population.users)} connections, warmup {options.warmup} s, "
            f"measuring {options.duration} s",
            flush=True,
        )
        results, timeline = drive(
            options, worker_configs(options, ws_url, "chat", conn_specs(population)), window
        )
        figures = window.figures()
        summary = summarize(results, figures["seconds"])
        verification = None
        if options.verify:
            print("verifying against the store (REST) ...", flush=True)
            verification, views = verify_run(
                gateway.url, population, results, options.delivery_order
            )
            summary["client_gaps"] = views.gaps
            summary["client_duplicates"] = views.duplicates
            summary["client_views_checked"] = views.checked
    baseline = None
    if options.baseline == "echo":
        print("baseline: the same clients against a bare websockets echo server ...", flush=True)
        baseline = run_echo(options)
    result = build_result(options, summary, figures, verification, baseline, timeline, started)
    print(table(result))
    if verification is not None and not verification.ok:
        print("VERIFICATION FAILED:", verification.as_dict()["problems"], file=sys.stderr)
        for kind, examples in verification.examples.items():
            for example in examples:
                print(f"  {kind}: {example}", file=sys.stderr)
    if options.write_files:
        directory = write_results(results_dir(options.results_root), result, timeline)
        print(f"results: {directory}")
    return 0 if verification is None or verification.ok else 1


def delivery_order_row(verification: Verification) -> str:
    """The order deliveries were held to; in ``sender`` mode also how much they interleaved
    across senders, which that mode reports without failing (``bench/load/verify.py``)."""
    if verification.delivery_order == "store":
        return "store order"
    return (
        "each sender's order; "
        f"{verification.interleaved:,} deliveries interleaved across senders out of store "
        f"order (informational, up to {verification.interleaved_max_behind:,} positions late)"
    )


def build_result(
    options: WriteLoadOptions,
    summary: dict[str, Any],
    figures: dict[str, float],
    verification: Verification | None,
    baseline: dict[str, Any] | None,
    timeline: Timeline,
    started: float,
) -> dict[str, Any]:
    from bench.load.report import timeline_rows

    ack, delivery = summary["send_to_ack_ms"], summary["send_to_delivery_ms"]
    load = (
        f"open loop {options.rate:,.0f}/s"
        if options.mode == "open"
        else (f"closed loop, concurrency {options.concurrency}")
    )
    rows: list[tuple[str, str]] = [
        ("mode", load),
        (
            "connections / processes",
            f"{options.events * options.participants} / {options.processes}",
        ),
        ("measured window", f"{figures['seconds']:.1f} s (after {options.warmup} s warmup)"),
        ("offered", f"{summary['offered_per_s']:,.0f} msg/s"),
        ("acked", f"{summary['acked_per_s']:,.0f} msg/s"),
        ("errors", ", ".join(f"{k} {v}" for k, v in summary["errors"].items()) or "none"),
        ("connection drops / resumes", f"{summary['drops']:,} / {summary['resumes']:,}"),
        ("unanswered at the end", str(summary["unanswered"])),
        ("send→ack p50 / p90 / p99", f"{ack['p50']:.1f} / {ack['p90']:.1f} / {ack['p99']:.1f} ms"),
        ("send→ack p99.9 / max", f"{ack['p99.9']:.1f} / {ack['max']:.1f} ms"),
        (
            "send→delivery p50 / p99 / max",
            f"{delivery['p50']:.1f} / {delivery['p99']:.1f} / {delivery['max']:.1f} ms",
        ),
        ("CQL rows written", f"{figures['cql_rows_written_per_s']:,.0f} rows/s"),
        (
            "CPU cores: gateway / CQL / PG / NATS / generators",
            " / ".join(
                f"{figures.get(f'{name}_cores', 0):.2f}"
                for name in ("gateway", "cql_server", "postgres", "nats", "generators")
            ),
        ),
        ("machine busy (all processes)", f"{figures['machine_busy_percent']:.0f} %"),
    ]
    if verification is not None:
        rows.append(
            ("verification", "ok" if verification.ok else f"FAILED {dict(verification.counts)}")
        )
        rows.append(
            (
                "  checked",
                f"{verification.checked_messages:,} messages, "
                f"{verification.checked_unread:,} unread counts, "
                f"{verification.checked_deliveries:,} subscriptions",
            )
        )
        rows.append(("  delivery order", delivery_order_row(verification)))
        rows.append(
            (
                "  client views",
                f"{summary.get('client_gaps', 0):,} gaps, "
                f"{summary.get('client_duplicates', 0):,} duplicates in "
                f"{summary.get('client_views_checked', 0):,} views",
            )
        )
    if baseline is not None:
        ratio = summary["acked_per_s"] / baseline["acked_per_s"] if baseline["acked_per_s"] else 0
        rows.append(("echo baseline acked", f"{baseline['acked_per_s']:,.0f} msg/s"))
        rows.append(("gateway / echo", f"{ratio:.2f}"))
        cores = baseline.get("cpu_cores", {})
        rows.append(
            (
                "echo CPU cores: server / generators",
                f"{cores.get('echo_server', 0.0):.2f} / {cores.get('generators', 0.0):.2f} "
                f"(machine busy {cores.get('machine_busy_percent', 0.0):.0f} %)",
            )
        )
    return {
        "title": f"write-load: {load}",
        "command": options.command or " ".join(shlex.quote(a) for a in sys.argv),
        "started": started,
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(options).items() if k != "gateway_env"},
        "summary": summary,
        "window": figures,
        "verification": verification.as_dict() if verification is not None else None,
        "baseline_echo": baseline,
        "timeline": timeline_rows(timeline),
        "table": rows,
    }
