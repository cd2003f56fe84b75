"""The parent's side of the generator processes: start them, start the clock, gather results.

Ticks from every process are merged per second into a :class:`Timeline` as they arrive, which
feeds both the live progress line and the over-time plot. A process that dies or fails makes
the whole run fail loudly (its traceback is shown), never quietly report less load.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.load.generator import worker_main
from bench.load.histograms import merge, new_histogram

READY_TIMEOUT = 600.0
START_DELAY = 0.3
"""Seconds between "go" and the first due time, so every process is waiting when it comes."""


@dataclass
class Second:
    offered: int = 0
    acked: int = 0
    errors: int = 0
    ack: HdrHistogram = field(default_factory=new_histogram)
    delivery: HdrHistogram = field(default_factory=new_histogram)
    named: dict[str, HdrHistogram] = field(default_factory=dict)
    """Other latencies by name (a read bench's read kinds)."""
    counts: Counter[str] = field(default_factory=Counter)
    reports: int = 0


@dataclass
class Timeline:
    """Per-second totals of all processes; ``cumulative`` holds every ack latency so far and
    ``named`` every named latency so far."""

    seconds: dict[int, Second] = field(default_factory=dict)
    cumulative: HdrHistogram = field(default_factory=new_histogram)
    named: dict[str, HdrHistogram] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        second: int,
        counts: dict[str, int],
        ack: bytes,
        delivery: bytes,
        named: Mapping[str, bytes] | None = None,
    ) -> None:
        ack_h, delivery_h = merge([ack]), merge([delivery])
        named_h = {name: merge([blob]) for name, blob in (named or {}).items()}
        self.cumulative.add(ack_h)
        for name, histogram in named_h.items():
            self.named.setdefault(name, new_histogram()).add(histogram)
        self.totals.update(counts)
        if second < 0:  # the final flush after the drain: counted, not placed in time
            return
        entry = self.seconds.setdefault(second, Second())
        entry.offered += counts.get("offered", 0)
        entry.acked += counts.get("acked", 0)
        entry.errors += counts.get("errors", 0)
        entry.counts.update(counts)
        entry.ack.add(ack_h)
        entry.delivery.add(delivery_h)
        for name, histogram in named_h.items():
            entry.named.setdefault(name, new_histogram()).add(histogram)
        entry.reports += 1


class WorkerFailed(RuntimeError):
    pass


def progress_line(second: int, entry: Second, timeline: Timeline) -> str:
    p99 = timeline.cumulative.get_value_at_percentile(99) / 1000.0
    return (
        f"  {second:4d} s  offered {entry.offered:>8,}/s  acked {entry.acked:>8,}/s  "
        f"errors {entry.errors:>5,}  p99 so far {p99:8.1f} ms"
    )


ProcessMain = Callable[[Any, Any, Any, Any, Any], None]
"""A generator process's entry point: ``(config, results queue, go, stop, start)``."""


def run_fleet(
    configs: Sequence[Any],
    *,
    on_ready: Callable[[list[float]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    hold: Callable[[], None] | None = None,
    live: bool = True,
    progress: Callable[[int, Second, Timeline], str] = progress_line,
) -> tuple[list[Any], Timeline]:
    """Run one process per config; returns their results (by index) and the timeline.

    A config runs :func:`~bench.load.generator.worker_main` unless it names its own
    ``process_main`` (the read bench's readers). ``on_ready`` gets each process's connect
    time once all are connected; ``on_start`` the common start time; ``hold`` (idle
    connections) runs while every connection is open; ``progress`` makes the live line of a
    second from its merged ticks.
    """
    context = multiprocessing.get_context("spawn")
    results_queue: Any = context.Queue()
    go, stop = context.Event(), context.Event()
    start = context.Value("q", 0)
    processes = [
        context.Process(
            target=getattr(c, "process_main", worker_main),
            args=(c, results_queue, go, stop, start),
            name=f"gen-{c.index}",
        )
        for c in configs
    ]
    for process in processes:
        process.start()
    timeline = Timeline()
    results: dict[int, Any] = {}
    ready: dict[int, float] = {}
    tty = sys.stdout.isatty()
    printed = 0
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(ready) < len(configs):
            kind, index, payload = _next(results_queue, processes, deadline)
            if kind == "failed":
                raise WorkerFailed(f"generator {index} failed:\n{payload}")
            if kind == "ready":
                ready[index] = float(payload)
        if on_ready is not None:
            on_ready([ready[i] for i in sorted(ready)])
        start.value = time.monotonic_ns() + round(START_DELAY * 1e9)
        if on_start is not None:
            on_start(int(start.value))
        go.set()
        if hold is not None:
            hold()
            stop.set()
        while len(results) < len(configs):
            message = _next(results_queue, processes, None)
            kind, index = message[0], message[1]
            if kind == "failed":
                raise WorkerFailed(f"generator {index} failed:\n{message[2]}")
            if kind == "done":
                results[index] = message[2]
            elif kind == "tick":
                _, _, second, counts, ack, delivery, *named = message
                timeline.add(second, counts, ack, delivery, named[0] if named else None)
                entry = timeline.seconds.get(second)
                if live and entry is not None and entry.reports == len(configs):
                    line = progress(second, entry, timeline)
                    print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
                    printed += 1
        if tty and printed:
            print()
    finally:
        go.set()
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    return [results[i] for i in sorted(results)], timeline


def _next(results_queue: Any, processes: Sequence[Any], deadline: float | None) -> Any:
    """The next message from a worker; fails if a worker died without a word."""
    while True:
        try:
            return results_queue.get(timeout=0.5)
        except queue_module.Empty:
            pass
        dead = [p for p in processes if p.exitcode not in (None, 0)]
        if dead:
            raise WorkerFailed(f"generator {dead[0].name} died with exit code {dead[0].exitcode}")
        if deadline is not None and time.monotonic() > deadline:
            raise WorkerFailed(f"the generators were not connected within {READY_TIMEOUT} s")
