"""The reader processes of ``python -m bench mixed``: open-loop reads over one transport each.

- ``ws``: one ``picows`` connection per reader user; ``history`` frames (latest, before) and
  ``subscribe`` with ``since`` (the replay), then ``unsubscribe``;
- ``rest``: ``GET /v1/events/{id}/messages`` (latest, before, after) and ``GET /v1/me/unread``;
- ``store``: the chat stores themselves (:class:`~chat.store.cql.message_history.MessageHistory`,
  :class:`~chat.store.cql.unread.UnreadStore`) over the driver, against the gateway's own CQL
  server — the store-level figures, with no HTTP, WebSocket or gateway in between.

Operations are due on an open-loop schedule (:class:`~bench.load.schedule.OpenLoopSchedule`)
and run concurrently, whatever the earlier ones are doing. Each is one of the read mix:

- ``latest``: the newest page of an event (what opening it shows);
- ``scroll``: the newest page, then two ``before`` pages (scrolling back);
- ``since``: coming back after an absence of ``absence`` messages — the cursor that many
  messages back is looked up first (not measured), then the replay is: a ``subscribe`` with
  ``since`` until ``subscribed`` (WebSocket), or ``after`` pages until caught up;
- ``unread``: a busy user's unread counts of every event (``GET /v1/me/unread``).

Latency is counted from the intended time: an operation's first request from its due time, a
page that needs the previous one from when that one arrived. Every page read is kept
(:class:`~bench.load.verify_reads.PageRead`) for the exactness check after the run. A
``storm`` config instead opens one connection per storm user and, at start, has each of them
resubscribe to one event with the same ``since`` at a random moment within the storm window.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import random
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any, Literal

import httpx
import orjson
import uvloop
from hdrh.histogram import HdrHistogram

from bench.load.histograms import encode, new_histogram, record_ns
from bench.load.schedule import OpenLoopSchedule
from bench.load.servers import raise_nofile
from bench.load.verify_reads import PageRead
from bench.load.ws import ClosedError, PicowsClient, handle_common_frame

Transport = Literal["ws", "rest", "store"]
READ_KINDS = ("latest", "before", "since", "unread")
OPERATIONS = ("latest", "scroll", "since", "unread")
NS = 1_000_000_000
REPLAY_PAGES = 10
"""``after`` pages a REST or store replay reads at most before it counts as caught up."""


@dataclass(frozen=True, slots=True)
class ReaderUser:
    user_id: int
    token: str
    events: tuple[int, ...]
    """The events this user reads (it takes part in all of them)."""


@dataclass(frozen=True, slots=True)
class StormPlan:
    """Every connection resubscribes to ``event_id`` with ``since`` within ``window`` s."""

    event_id: int
    since: str
    since_id: str
    window: float


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    index: int
    transport: Transport
    base_url: str
    users: tuple[ReaderUser, ...]
    rate: float = 0.0
    """Operations per second of this process."""
    mix: tuple[tuple[str, float], ...] = (("latest", 1.0),)
    unread_users: tuple[ReaderUser, ...] = ()
    page: int = 50
    absence: int = 50
    warmup: float = 0.0
    duration: float = 0.0
    drain: float = 10.0
    seed: int = 1
    cql: tuple[str, int, str] | None = None
    """``(host, port, keyspace)`` of the store transport."""
    storm: StormPlan | None = None
    unread_lag: float = 0.0
    """Store transport: keep every ``unread_users`` read position this many seconds behind
    (0: never move them), so that their unread counts stay at "the last ``lag`` seconds"."""
    connect_concurrency: int = 64

    @property
    def process_main(self) -> Callable[..., None]:
        return reader_main


@dataclass
class ReaderResult:
    index: int
    transport: Transport
    histograms: dict[str, bytes] = field(default_factory=dict)
    """Latency per read kind, samples due inside the measured window."""
    operations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    pages: list[PageRead] = field(default_factory=list)
    unread_seen: list[float] = field(default_factory=list)
    """Mean unread count per event of each ``unread`` answer (how much there was to count)."""
    replayed: list[int] = field(default_factory=list)
    """Messages each ``since`` replay carried."""
    connect_seconds: float = 0.0


class ReadFailed(RuntimeError):
    """A read answered with an error (the code says which)."""


Page = tuple[list[str], str | None]
"""Message ids of a page (in its order) and its ``next_cursor``."""


# --------------------------------------------------------------------------- transports


class Reader(abc.ABC):
    """One transport's reads; each method is one request (``replay`` may be several)."""

    async def open(self) -> None:
        """Connect (every user, for the WebSocket); nothing to do for REST."""
        return None

    async def close(self) -> None:
        """Disconnect."""
        return None

    @abc.abstractmethod
    async def latest(self, user: ReaderUser, event_id: int, limit: int) -> Page: ...

    @abc.abstractmethod
    async def before(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page: ...

    async def after(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        """Not every transport reads forward by cursor (the WebSocket replays instead)."""
        raise NotImplementedError(f"{type(self).__name__} reads no page after a cursor")

    async def replay(
        self, user: ReaderUser, event_id: int, since: str, limit: int
    ) -> list[tuple[list[str], bool]]:
        """The messages after ``since``, as pages: ``(ids oldest first, complete)`` — ``after``
        pages until caught up (at most ``REPLAY_PAGES``)."""
        pages: list[tuple[list[str], bool]] = []
        cursor: str | None = since
        while cursor is not None and len(pages) < REPLAY_PAGES:
            ids, cursor = await self.after(user, event_id, cursor, limit)
            pages.append((ids, cursor is None))
        return pages

    async def unread(self, user: ReaderUser) -> dict[int, int]:
        """Not every transport has unread counts (the WebSocket pushes them per event)."""
        raise NotImplementedError(f"{type(self).__name__} has no unread counts")


class WsConnection:
    """One reader user's connection: answers by frame id, replays collected per event."""

    def __init__(self, ws: PicowsClient) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.replaying: dict[int, list[str]] = {}
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.busy: set[int] = set()
        """Events with a replay under way (one subscription per event and connection)."""
        self._ids = 0
        ws.listen(self.received, self.closed)

    def received(self, raw: bytes) -> None:
        frame = orjson.loads(raw)
        kind = frame.get("type")
        if kind == "message":
            replay = self.replaying.get(frame["event_id"])
            if replay is not None:
                replay.append(frame["message"]["message_id"])
        else:
            handle_common_frame(frame, self.ws, self.welcomed, self.replies)

    def closed(self) -> None:
        error = ConnectionError(f"connection closed ({self.ws.close_code})")
        for reply in self.replies.values():
            if not reply.done():
                reply.set_exception(error)
        if not self.welcomed.done():
            self.welcomed.set_exception(error)

    async def request(self, frame: dict[str, Any], expect: str) -> dict[str, Any]:
        self._ids += 1
        frame_id = f"r{self._ids}"
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[frame_id] = reply
        self.ws.send(orjson.dumps({**frame, "id": frame_id}))
        try:
            answer = await reply
        finally:
            self.replies.pop(frame_id, None)  # answered, or given up on
        if answer.get("type") != expect:
            raise ReadFailed(str(answer.get("code") or answer.get("type")))
        return answer


class WsReader(Reader):
    def __init__(self, config: ReaderConfig) -> None:
        self.config = config
        self.conns: dict[int, WsConnection] = {}

    async def open(self) -> None:
        gate = asyncio.Semaphore(self.config.connect_concurrency)
        ws_url = self.config.base_url.replace("http://", "ws://", 1) + "/v1/ws"

        async def one(user: ReaderUser) -> None:
            async with gate, asyncio.timeout(120):
                headers = {"Authorization": f"Bearer {user.token}"}
                conn = WsConnection(await PicowsClient.connect(ws_url, headers))
                await conn.welcomed
                self.conns[user.user_id] = conn

        users = {u.user_id: u for u in (*self.config.users, *self.config.unread_users)}
        await asyncio.gather(*(one(u) for u in users.values()))

    async def close(self) -> None:
        async def one(conn: WsConnection) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 5)

        await asyncio.gather(*(one(c) for c in self.conns.values()))

    async def _history(self, user: ReaderUser, frame: dict[str, Any]) -> Page:
        answer = await self.conns[user.user_id].request({"type": "history", **frame}, "history")
        return [m["message_id"] for m in answer["messages"]], answer.get("next_cursor")

    async def latest(self, user: ReaderUser, event_id: int, limit: int) -> Page:
        return await self._history(user, {"event_id": event_id, "limit": limit})

    async def before(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        return await self._history(user, {"event_id": event_id, "before": cursor, "limit": limit})

    async def replay(
        self, user: ReaderUser, event_id: int, since: str, limit: int
    ) -> list[tuple[list[str], bool]]:
        """``subscribe`` with ``since``: the replayed ``message`` frames arrive before
        ``subscribed``; then ``unsubscribe`` (not part of the replay)."""
        conn = self.conns[user.user_id]
        if event_id in conn.busy:
            raise ReadFailed("busy")  # the schedule picked an event this user is replaying
        conn.busy.add(event_id)
        replayed: list[str] = []
        conn.replaying[event_id] = replayed
        try:
            frame = {"type": "subscribe", "event_id": event_id, "since": since}
            await conn.request(frame, "subscribed")
            del conn.replaying[event_id]
            return [(replayed, True)]
        finally:
            conn.replaying.pop(event_id, None)
            with contextlib.suppress(Exception):
                await conn.request({"type": "unsubscribe", "event_id": event_id}, "unsubscribed")
            conn.busy.discard(event_id)

    async def storm(self, plan: StormPlan, due: list[int], record: Callable[..., None]) -> None:
        """Every connection resubscribes at its due time; ``record(started, sample)``."""

        async def one(conn: WsConnection, due_ns: int) -> None:
            await asyncio.sleep(max(0.0, (due_ns - time.monotonic_ns()) / NS))
            replayed: list[str] = []
            conn.replaying[plan.event_id] = replayed
            frame = {"type": "subscribe", "event_id": plan.event_id, "since": plan.since}
            try:
                await conn.request(frame, "subscribed")
            except (ReadFailed, ConnectionError, ClosedError) as exc:
                record(due_ns, None, error=str(exc))
                return
            finally:
                conn.replaying.pop(plan.event_id, None)
            record(due_ns, replayed)

        await asyncio.gather(*(one(c, d) for c, d in zip(self.conns.values(), due, strict=True)))


class RestReader(Reader):
    def __init__(self, config: ReaderConfig) -> None:
        self.config = config
        self.http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(base_url=self.config.base_url, timeout=60.0, limits=limits)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def _get(self, user: ReaderUser, path: str, params: dict[str, Any]) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {user.token}"}
        response = await self.http.get(path, params=params, headers=headers)
        if response.is_error:
            raise ReadFailed(f"http_{response.status_code}")
        return response.json()

    async def _messages(self, user: ReaderUser, event_id: int, params: dict[str, Any]) -> Page:
        data = await self._get(user, f"/v1/events/{event_id}/messages", params)
        return [str(item["message_id"]) for item in data["items"]], data.get("next_cursor")

    async def latest(self, user: ReaderUser, event_id: int, limit: int) -> Page:
        return await self._messages(user, event_id, {"limit": limit})

    async def before(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        return await self._messages(user, event_id, {"limit": limit, "before": cursor})

    async def after(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        return await self._messages(user, event_id, {"limit": limit, "after": cursor})

    async def unread(self, user: ReaderUser) -> dict[int, int]:
        data = await self._get(user, "/v1/me/unread", {})
        return {int(i["event_id"]): int(i["unread"]) for i in data["items"]}


class StoreReader(Reader):
    """The chat stores over the driver: what the gateway's reads cost below the gateway."""

    def __init__(self, config: ReaderConfig) -> None:
        self.config = config
        self.history: Any = None
        self.unread_store: Any = None
        self.cql: Any = None

    async def open(self) -> None:
        from chat.config import Settings
        from chat.store.cql.message_history import MessageHistory
        from chat.store.cql.unread import UnreadStore
        from chat.store.driver.session import connect_blocking, connection_class_for

        assert self.config.cql is not None
        host, port, keyspace = self.config.cql
        settings = Settings(cql_contact_points=host, cql_port=port, cql_keyspace=keyspace)
        self.cql = await asyncio.to_thread(
            connect_blocking,
            settings,
            [host],
            port,
            connection_class=connection_class_for(settings.cql_reactor),
        )
        self.history = MessageHistory(self.cql, settings)
        self.unread_store = UnreadStore(self.cql, settings)
        await asyncio.gather(self.history.prepare(), self.unread_store.prepare())

    async def close(self) -> None:
        from chat.store.driver.session import shutdown_cluster

        if self.cql is not None:
            await shutdown_cluster(self.cql.cluster)

    async def keep_read_positions(self, users: tuple[ReaderUser, ...], lag: float) -> None:
        """Every half second, move each user's read position in each of their events to
        ``lag`` seconds ago — as if they were reading along on another device, a little
        behind. The position is a time, not a message: just before every message of that
        millisecond (positions are written with the time as their write timestamp, so a
        later one always wins)."""
        from cassandra.query import BatchStatement, BatchType

        from chat.domain.messages import datetime_from_ms, message_id_at
        from chat.store.driver.session import execute_async

        assert self.config.cql is not None
        keyspace = self.config.cql[2]
        insert = await asyncio.to_thread(
            self.cql.session.prepare,
            f"INSERT INTO {keyspace}.chat_read_positions"
            " (user_id, event_id, read_created_at, read_message_id) VALUES (?, ?, ?, ?)"
            " USING TIMESTAMP ?",
        )
        while True:
            at_ms = time.time_ns() // 1_000_000 - round(lag * 1000)
            values = (datetime_from_ms(at_ms), message_id_at(at_ms), at_ms * 1000)
            for user in users:
                batch = BatchStatement(BatchType.UNLOGGED)
                for event_id in user.events:
                    batch.add(insert, (user.user_id, event_id, *values))
                await execute_async(self.cql.session, batch)
            await asyncio.sleep(0.5)

    @staticmethod
    def _page(page: Any) -> Page:
        return [str(m.message_id) for m in page.messages], page.next_cursor

    async def latest(self, user: ReaderUser, event_id: int, limit: int) -> Page:
        return self._page(await self.history.latest(event_id, limit))

    async def before(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        return self._page(await self.history.before(event_id, cursor, limit))

    async def after(self, user: ReaderUser, event_id: int, cursor: str, limit: int) -> Page:
        return self._page(await self.history.after(event_id, cursor, limit))

    async def unread(self, user: ReaderUser) -> dict[int, int]:
        counts: dict[int, int] = await self.unread_store.counts(user.user_id, user.events)
        return counts


def reader_for(config: ReaderConfig) -> Reader:
    kinds: dict[str, Callable[[ReaderConfig], Reader]] = {
        "ws": WsReader,
        "rest": RestReader,
        "store": StoreReader,
    }
    return kinds[config.transport](config)


def cursor_of(message_id: str) -> str:
    from chat.domain.messages import encode_cursor

    return encode_cursor(uuid.UUID(message_id))


# --------------------------------------------------------------------------- the process


class ReadWorker:
    """Runs the schedule, records latencies per kind, keeps every page for verification."""

    def __init__(self, config: ReaderConfig, queue: Queue[Any]) -> None:
        self.config = config
        self.queue = queue
        self.reader = reader_for(config)
        self.result = ReaderResult(config.index, config.transport)
        self.rng = random.Random(config.seed * 7919 + config.index)
        self.window = (0, 0)
        self.totals: dict[str, HdrHistogram] = {}
        self.inside: dict[str, HdrHistogram] = {}
        self.outside: dict[str, HdrHistogram] = {}
        self.interval: Counter[str] = Counter()
        self.running: set[asyncio.Task[None]] = set()

    def sample(self, kind: str, intended_ns: int, now_ns: int | None = None) -> None:
        """One read of ``kind`` intended at ``intended_ns`` has just been answered."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        name = f"{self.config.transport}:{kind}"
        into = self.inside if self.window[0] <= intended_ns < self.window[1] else self.outside
        record_ns(into.setdefault(name, new_histogram()), now - intended_ns)
        self.interval["reads"] += 1

    def page(self, event_id: int, direction: str, after: str | None, page: Page, at: int) -> None:
        ids, next_cursor = page
        self.result.pages.append(
            PageRead(event_id, direction, after, tuple(ids), at, next_cursor is None)
        )

    # ------------------------------------------------------------------ operations

    async def op_latest(self, user: ReaderUser, event_id: int, due: int) -> None:
        page = await self.reader.latest(user, event_id, self.config.page)
        self.sample("latest", due)
        self.page(event_id, "older", None, page, due)

    async def op_scroll(self, user: ReaderUser, event_id: int, due: int) -> None:
        page = await self.reader.latest(user, event_id, self.config.page)
        self.sample("latest", due)
        self.page(event_id, "older", None, page, due)
        for _ in range(2):
            ids, cursor = page
            if cursor is None or not ids:
                return
            issued = time.monotonic_ns()
            page = await self.reader.before(user, event_id, cursor, self.config.page)
            self.sample("before", issued)
            self.page(event_id, "older", ids[-1], page, issued)

    async def op_since(self, user: ReaderUser, event_id: int, due: int) -> None:
        absence = self.config.absence
        ids, _ = await self.reader.latest(user, event_id, absence + 1)  # where the user was
        self.interval["lookups"] += 1
        if len(ids) < absence + 1:
            return  # not that much history (yet)
        since = ids[absence]
        issued = time.monotonic_ns()
        pages = await self.reader.replay(user, event_id, cursor_of(since), self.config.page)
        self.sample("since", issued)
        after = since
        replayed = 0
        for page_ids, complete in pages:
            self.result.pages.append(
                PageRead(event_id, "newer", after, tuple(page_ids), issued, complete)
            )
            replayed += len(page_ids)
            after = page_ids[-1] if page_ids else after
        self.result.replayed.append(replayed)

    async def op_unread(self, user: ReaderUser, event_id: int, due: int) -> None:
        counts = await self.reader.unread(user)
        self.sample("unread", due)
        if counts:
            self.result.unread_seen.append(sum(counts.values()) / len(counts))

    async def run_op(self, operation: str, due: int) -> None:
        config = self.config
        if operation == "unread":
            user = self.rng.choice(config.unread_users or config.users)
        else:
            user = self.rng.choice(config.users)
        event_id = self.rng.choice(user.events)
        ops: dict[str, Callable[[ReaderUser, int, int], Awaitable[None]]] = {
            "latest": self.op_latest,
            "scroll": self.op_scroll,
            "since": self.op_since,
            "unread": self.op_unread,
        }
        if self.window[0] <= due < self.window[1]:
            self.result.operations[operation] += 1
        try:
            await ops[operation](user, event_id, due)
        except ReadFailed as exc:
            if str(exc) != "busy":
                self.result.errors[str(exc)] += 1
                self.interval["read_errors"] += 1
        except Exception as exc:  # a timeout, a dropped connection: counted by kind
            self.result.errors[type(exc).__name__] += 1
            self.interval["read_errors"] += 1

    # ------------------------------------------------------------------ the run

    def flush_tick(self, second: int) -> None:
        named = {}
        for name, histogram in self.inside.items():
            self.totals.setdefault(name, new_histogram()).add(histogram)
        for name in {*self.inside, *self.outside}:
            both = new_histogram()
            for part in (self.inside.get(name), self.outside.get(name)):
                if part is not None:
                    both.add(part)
            named[name] = encode(both)
        self.inside, self.outside = {}, {}
        counts = dict(self.interval)
        self.interval.clear()
        empty = encode(new_histogram())
        self.queue.put(("tick", self.config.index, second, counts, empty, empty, named))

    async def ticker(self, start_ns: int) -> None:
        second = 0
        while True:
            second += 1
            await asyncio.sleep(max(0.0, (start_ns + second * NS - time.monotonic_ns()) / NS))
            self.flush_tick(second)

    async def schedule(self, start_ns: int, end_ns: int) -> None:
        config = self.config
        names = [name for name, _ in config.mix]
        weights = [weight for _, weight in config.mix]
        plan = OpenLoopSchedule(config.rate, 1, 0, start_ns)
        for k in range(plan.count_before(end_ns)):
            due = plan.due_ns(k)
            delay = due - time.monotonic_ns()
            if delay > 1_000_000:
                await asyncio.sleep(delay / NS)
            operation = self.rng.choices(names, weights)[0]
            task = asyncio.create_task(self.run_op(operation, due))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def run_storm(self, plan: StormPlan, start_ns: int) -> None:
        assert isinstance(self.reader, WsReader)
        window_ns = round(plan.window * NS)
        due = sorted(start_ns + self.rng.randrange(window_ns) for _ in self.reader.conns)

        def record(due_ns: int, replayed: list[str] | None, error: str = "") -> None:
            if replayed is None:
                self.result.errors[error] += 1
                return
            self.result.operations["storm"] += 1
            self.sample("storm", due_ns)
            self.result.replayed.append(len(replayed))
            self.result.pages.append(
                PageRead(plan.event_id, "newer", plan.since_id, tuple(replayed), due_ns, True)
            )

        self.window = (start_ns, start_ns + window_ns + 60 * NS)
        await self.reader.storm(plan, due, record)

    async def run(self, go: Any, stop: Any, start: Any) -> None:
        config = self.config
        began = time.monotonic()
        await self.reader.open()
        self.result.connect_seconds = time.monotonic() - began
        self.queue.put(("ready", config.index, self.result.connect_seconds))
        await asyncio.to_thread(go.wait)
        start_ns = int(start.value)
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS))
        ticker = asyncio.create_task(self.ticker(start_ns))
        keeper = None
        if config.unread_lag > 0 and isinstance(self.reader, StoreReader):
            positions = self.reader.keep_read_positions(config.unread_users, config.unread_lag)
            keeper = asyncio.create_task(positions)
        if config.storm is not None:
            await self.run_storm(config.storm, start_ns)
        else:
            measure_from = start_ns + round(config.warmup * NS)
            end_ns = measure_from + round(config.duration * NS)
            self.window = (measure_from, end_ns)
            await self.schedule(start_ns, end_ns)
            await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / NS))
            if self.running:
                await asyncio.wait(set(self.running), timeout=config.drain)
            for task in self.running:
                task.cancel()
                self.result.errors["unanswered"] += 1
        ticker.cancel()
        if keeper is not None:
            keeper.cancel()
        self.flush_tick(-1)
        self.result.histograms = {name: encode(h) for name, h in self.totals.items()}


def reader_main(config: ReaderConfig, queue: Queue[Any], go: Any, stop: Any, start: Any) -> None:
    """Process entry point: run the reads; report ``done`` or ``failed`` to the parent."""
    raise_nofile(65536)
    worker = ReadWorker(config, queue)
    from chat.gc_tuning import tune_for_server

    tune_for_server()  # as `chat serve` does: young collections of a big heap were the cost

    async def main() -> None:
        try:
            await worker.run(go, stop, start)
        finally:
            await worker.reader.close()

    try:
        uvloop.run(main())
    except BaseException as exc:
        queue.put(("failed", config.index, "".join(traceback.format_exception(exc))))
        return
    queue.put(("done", config.index, worker.result))
