"""A load-generator process: its own uvloop, its own ``picows`` clients, its own histograms.

The parent starts ``processes`` of these with the ``spawn`` method (no inherited event loop or
driver threads). Each one:

1. opens its share of the connections (token in the upgrade request), waits for ``welcome``,
   subscribes each connection to its events and waits for ``subscribed`` — so every
   subscription is live before the first message — then reports ``ready``;
2. waits for the parent's go, reads the common start time (``time.monotonic_ns()`` is
   system-wide on Linux, so every process and the parent agree on it) and sends:
   - **open loop**: message ``k`` at the due time of :class:`~.schedule.OpenLoopSchedule`,
     whether or not earlier ones were answered; latency counts from the due time;
   - **closed loop**: ``concurrency`` sends in flight, each answer releasing the next;
3. records send→ack latency, send→delivery latency at the *other* participants (the due time
   travels in the message's ``metadata``), errors by code, and every message id each
   connection received, in order (for the delivery check);
4. every second sends a ``tick`` (interval counts and interval histograms) for the live line
   and the timeline; at the end waits for outstanding acks (``drain``) and for deliveries to go
   quiet, then sends ``done`` with the run's histograms and records.

In echo mode the echoed ``send`` frame is its own ack.

The clients are ``picows`` connections (:class:`~bench.load.ws.PicowsClient`, a thin adapter):
frames are parsed in C and handed over by a plain call from the socket's ``data_received``, in
arrival order, without a task per connection — the generators share the cores with the gateway,
so their CPU per message counts against it. Each latency sample is recorded once, into the
current second's histogram for samples due inside the measured window or the one for the rest;
every second the inside one is added to the run's totals (HdrHistogram's addition is exact) and
both are shipped as the second's histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.synchronize
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Literal

import orjson
import uvloop
from hdrh.histogram import HdrHistogram

from bench.load.histograms import encode, new_histogram, record_ns
from bench.load.schedule import OpenLoopSchedule, split_evenly
from bench.load.servers import raise_nofile
from bench.load.verify import SentMessage
from bench.load.ws import ClosedError, PicowsClient, handle_common_frame

Kind = Literal["chat", "echo", "idle"]
Mode = Literal["open", "closed", "none"]
NS = 1_000_000_000
TIME_KEY = "bench_t"
"""Metadata key carrying the message's due time (monotonic ns) to its receivers."""
QUIET_NS = 500_000_000
"""After the last ack, deliveries are complete once no frame arrived for this long."""


@dataclass(frozen=True, slots=True)
class ConnSpec:
    user_id: int
    token: str
    subscribe: tuple[int, ...] = ()
    send_to: int | None = None
    """The event this connection sends to; None for a receive-only connection."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    index: int
    ws_url: str
    kind: Kind
    connections: tuple[ConnSpec, ...]
    mode: Mode = "none"
    rate: float = 0.0
    """Open loop: messages per second of the whole schedule this process takes part in."""
    schedule_processes: int = 1
    schedule_index: int = 0
    concurrency: int = 0
    """Closed loop: sends in flight in this process."""
    warmup: float = 0.0
    duration: float = 0.0
    drain: float = 10.0
    text_bytes: int = 100
    run_tag: str = "b"
    connect_concurrency: int = 64
    nofile: int = 65536


@dataclass
class WorkerResult:
    index: int
    offered: int = 0
    """Sends due inside the measured window."""
    acked_in_window: int = 0
    """Acks that arrived inside the measured window (the acked/s figure)."""
    acked: int = 0
    """Acks of sends due inside the window, whenever they arrived."""
    unanswered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ack_histogram: bytes = b""
    delivery_histogram: bytes = b""
    deliveries_measured: int = 0
    sent: list[SentMessage] = field(default_factory=list)
    deliveries: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    connect_seconds: float = 0.0


class Conn:
    """One WebSocket client and what it is waiting for."""

    __slots__ = ("cut", "pending", "replies", "seq", "spec", "welcomed", "ws")

    def __init__(self, spec: ConnSpec, ws: PicowsClient) -> None:
        self.spec = spec
        self.ws = ws
        self.pending: dict[str, tuple[int, int]] = {}  # frame id -> (due ns, seq)
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seq = 0
        self.cut = False


class Worker:
    def __init__(self, config: WorkerConfig, queue: Queue[Any]) -> None:
        self.config = config
        self.queue = queue
        self.result = WorkerResult(config.index)
        self.conns: list[Conn] = []
        self.ack_total = new_histogram()
        self.delivery_total = new_histogram()
        # This second's samples: due inside the measured window, and the others.
        self.ack_inside = new_histogram()
        self.ack_outside = new_histogram()
        self.delivery_inside = new_histogram()
        self.delivery_outside = new_histogram()
        self.interval = Counter[str]()
        self.sent: dict[tuple[int, str], SentMessage] = {}
        self.deliveries: defaultdict[tuple[int, int], list[str]] = defaultdict(list)
        self.window = (0, 0)
        self.sending_until = 0
        self.last_frame_ns = 0
        self.padding = ""

    # ------------------------------------------------------------------ connecting

    async def open(self, spec: ConnSpec, gate: asyncio.Semaphore) -> None:
        async with gate:
            headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else None
            async with asyncio.timeout(120):
                ws = await PicowsClient.connect(self.config.ws_url, headers)
            conn = Conn(spec, ws)
            self.conns.append(conn)
            ws.listen(lambda payload: self.received(conn, payload), lambda: self.closed(conn))
            if self.config.kind == "echo":
                conn.welcomed.set_result(None)
                return
            async with asyncio.timeout(120):
                await conn.welcomed
                for event_id in spec.subscribe:
                    answer = await self.request(conn, {"type": "subscribe", "event_id": event_id})
                    if answer.get("type") != "subscribed":
                        raise RuntimeError(f"subscribe to {event_id} failed: {answer}")

    async def request(self, conn: Conn, frame: dict[str, Any]) -> dict[str, Any]:
        frame_id = f"q{len(conn.replies)}-{conn.spec.user_id}"
        reply = asyncio.get_running_loop().create_future()
        conn.replies[frame_id] = reply
        conn.ws.send(orjson.dumps({**frame, "id": frame_id}))
        answer: dict[str, Any] = await reply
        return answer

    # ------------------------------------------------------------------ receiving

    def received(self, conn: Conn, raw: bytes) -> None:
        """One text frame from the gateway (called in arrival order, per connection)."""
        now = time.monotonic_ns()
        self.last_frame_ns = now
        frame = orjson.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            self.delivered(conn.spec.user_id, frame, now)
        elif kind == "ack" or (kind == "send" and self.config.kind == "echo"):
            self.answered(conn, frame.get("ref") or frame.get("id"), now, frame)
        elif kind == "error":
            ref = frame.get("ref")
            if ref in conn.replies:
                conn.replies.pop(ref).set_result(frame)
                return
            self.result.errors[str(frame.get("code"))] += 1
            self.interval["errors"] += 1
            self.answered(conn, ref, now, None)
        else:
            handle_common_frame(frame, conn.ws, conn.welcomed, conn.replies)

    def closed(self, conn: Conn) -> None:
        """The connection ended: an abnormal close not of our making is an error."""
        code = conn.ws.close_code
        if code not in (None, 1000) and not conn.cut:
            self.result.errors[f"close_{code}"] += 1
            conn.cut = True
        for reply in conn.replies.values():
            if not reply.done():
                reply.set_exception(ConnectionError(f"connection closed ({code})"))
        if not conn.welcomed.done():
            conn.welcomed.set_exception(ConnectionError(f"closed before welcome ({code})"))

    def delivered(self, user: int, frame: dict[str, Any], now: int) -> None:
        message = frame["message"]
        self.deliveries[(user, frame["event_id"])].append(message["message_id"])
        if message["sender_id"] == user:
            return
        due = message.get("metadata", {}).get(TIME_KEY)
        if due is None:
            return
        due_ns = int(due)
        if self.window[0] <= due_ns < self.window[1]:
            record_ns(self.delivery_inside, now - due_ns)
            self.result.deliveries_measured += 1
        else:
            record_ns(self.delivery_outside, now - due_ns)

    def answered(self, conn: Conn, ref: Any, now: int, ack: dict[str, Any] | None) -> None:
        entry = conn.pending.pop(ref, None) if isinstance(ref, str) else None
        if entry is None:
            return
        due_ns, _ = entry
        start, end = self.window
        if ack is not None:
            self.interval["acked"] += 1
            if start <= now < end:
                self.result.acked_in_window += 1
            if start <= due_ns < end:
                self.result.acked += 1
                record_ns(self.ack_inside, now - due_ns)
            else:
                record_ns(self.ack_outside, now - due_ns)
            if self.config.kind == "chat":
                key = (conn.spec.user_id, ref)
                self.sent[key] = _with_id(self.sent[key], str(ack["message_id"]), now)
        if self.config.mode == "closed" and now < self.sending_until:
            task = asyncio.create_task(self.send(conn, time.monotonic_ns()))
            task.add_done_callback(_report_failure)

    # ------------------------------------------------------------------ sending

    async def send(self, conn: Conn, due_ns: int) -> None:
        if conn.cut:
            return
        event_id = conn.spec.send_to
        assert event_id is not None
        conn.seq += 1
        cmid = f"{self.config.run_tag}-{conn.spec.user_id}-{conn.seq}"
        text = f"{cmid} {self.padding}"
        frame = {
            "type": "send",
            "id": cmid,
            "event_id": event_id,
            "client_msg_id": cmid,
            "text": text,
            "metadata": {TIME_KEY: str(due_ns)},
        }
        conn.pending[cmid] = (due_ns, conn.seq)
        if self.config.kind == "chat":
            self.sent[(conn.spec.user_id, cmid)] = SentMessage(
                event_id, conn.spec.user_id, cmid, text, conn.seq
            )
        self.interval["offered"] += 1
        if self.window[0] <= due_ns < self.window[1]:
            self.result.offered += 1
        try:
            conn.ws.send(orjson.dumps(frame))
        except ClosedError:
            conn.cut = True

    async def open_loop(self, start_ns: int, end_ns: int) -> None:
        config = self.config
        senders = [c for c in self.conns if c.spec.send_to is not None]
        schedule = OpenLoopSchedule(
            config.rate, config.schedule_processes, config.schedule_index, start_ns
        )
        for k in range(schedule.count_before(end_ns)):
            due = schedule.due_ns(k)
            delay = due - time.monotonic_ns()
            if delay > 1_000_000:
                await asyncio.sleep(delay / NS)
            elif k % 32 == 0:
                await asyncio.sleep(0)  # behind schedule: still let the readers run
            await self.send(senders[k % len(senders)], due)

    async def closed_loop(self) -> None:
        senders = [c for c in self.conns if c.spec.send_to is not None]
        now = time.monotonic_ns()
        for conn, window in zip(
            senders, split_evenly(self.config.concurrency, len(senders)), strict=True
        ):
            for _ in range(window):
                await self.send(conn, now)

    # ------------------------------------------------------------------ the run

    async def ticker(self, start_ns: int) -> None:
        second = 0
        while True:
            second += 1
            await asyncio.sleep(max(0.0, (start_ns + second * NS - time.monotonic_ns()) / NS))
            self.flush_tick(second)

    def flush_tick(self, second: int) -> None:
        counts = dict(self.interval)
        self.interval.clear()
        ack = _fold(self.ack_inside, self.ack_outside, self.ack_total)
        delivery = _fold(self.delivery_inside, self.delivery_outside, self.delivery_total)
        # Fresh ones: hdrh's reset() zeroes its counts array in a Python loop (about 1 ms).
        self.ack_inside, self.ack_outside = new_histogram(), new_histogram()
        self.delivery_inside, self.delivery_outside = new_histogram(), new_histogram()
        self.queue.put(("tick", self.config.index, second, counts, ack, delivery))

    async def run(
        self,
        go: multiprocessing.synchronize.Event,
        stop: multiprocessing.synchronize.Event,
        start: Synchronized[int],
    ) -> None:
        config = self.config
        self.padding = "x" * max(0, config.text_bytes - 24)
        began = time.monotonic()
        gate = asyncio.Semaphore(config.connect_concurrency)
        await asyncio.gather(*(self.open(spec, gate) for spec in config.connections))
        self.result.connect_seconds = time.monotonic() - began
        self.queue.put(("ready", config.index, self.result.connect_seconds))
        await asyncio.to_thread(go.wait)
        start_ns = int(start.value)
        if config.kind == "idle":
            await asyncio.to_thread(stop.wait)  # held open until the parent has measured
            return
        measure_from = start_ns + round(config.warmup * NS)
        end_ns = measure_from + round(config.duration * NS)
        self.window = (measure_from, end_ns)
        self.sending_until = end_ns
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS))
        ticker = asyncio.create_task(self.ticker(start_ns))
        if config.mode == "open":
            await self.open_loop(start_ns, end_ns)
        elif config.mode == "closed":
            await self.closed_loop()
        await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / NS))
        await self.settle(end_ns + round(config.drain * NS))
        ticker.cancel()
        self.flush_tick(-1)

    async def settle(self, deadline_ns: int) -> None:
        """Wait for every ack, then for deliveries to go quiet (both bounded by the drain)."""
        while time.monotonic_ns() < deadline_ns:
            acked = not any(c.pending for c in self.conns if not c.cut)
            if acked and time.monotonic_ns() - self.last_frame_ns >= QUIET_NS:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        async def one(conn: Conn) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 5)

        cut = {c.spec.user_id for c in self.conns if c.cut}
        for conn in self.conns:
            self.result.unanswered += len(conn.pending)
            conn.cut = True  # a close from here on is ours, not an error
        await asyncio.gather(*(one(c) for c in self.conns))
        self.ack_total.add(self.ack_inside)  # samples that arrived after the last tick
        self.delivery_total.add(self.delivery_inside)
        self.result.ack_histogram = encode(self.ack_total)
        self.result.delivery_histogram = encode(self.delivery_total)
        self.result.sent = list(self.sent.values())
        self.result.deliveries = {k: v for k, v in self.deliveries.items() if k[0] not in cut}
        if self.config.kind == "chat":
            # Connections that stayed open and subscribed but received nothing are deliveries too.
            for conn in self.conns:
                for event_id in conn.spec.subscribe:
                    if conn.spec.user_id not in cut:
                        self.result.deliveries.setdefault((conn.spec.user_id, event_id), [])


def _fold(inside: HdrHistogram, outside: HdrHistogram, total: HdrHistogram) -> bytes:
    """Add this second's in-window samples to the run's total; return the whole second's
    histogram (inside and outside the window) encoded (``inside`` is spent afterwards)."""
    total.add(inside)
    inside.add(outside)
    return encode(inside)


def _with_id(message: SentMessage, message_id: str, acked_ns: int) -> SentMessage:
    return SentMessage(
        message.event_id,
        message.sender_id,
        message.client_msg_id,
        message.text,
        message.seq,
        message_id,
        acked_ns,
    )


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        traceback.print_exception(task.exception())


def worker_main(
    config: WorkerConfig,
    queue: Queue[Any],
    go: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    start: Synchronized[int],
) -> None:
    """Process entry point: run the worker; report ``done`` or ``failed`` to the parent."""
    raise_nofile(config.nofile)
    worker = Worker(config, queue)

    async def main() -> None:
        try:
            await worker.run(go, stop, start)
        finally:
            await worker.close()

    try:
        uvloop.run(main())
    except BaseException as exc:
        queue.put(("failed", config.index, "".join(traceback.format_exception(exc))))
        return
    queue.put(("done", config.index, worker.result))
