"""Hostile clients against a live gateway: each attack costs the attacker, not the others.

An attacker and a victim in the same test where that is the point: the history flood that
never reads (bounded memory, close 4008, the victim's pings keep answering), the typing flood
(the victim hears about one frame a second), one user's connection flood and writes across
connections, and random event ids (a short negative cache; a per-user cap on membership
look-ups, watched in ``pg_stat_activity`` while the participants table is locked).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Self

import asyncpg
import httpx
import psutil
import pytest
from websockets.asyncio.client import connect

from bench.load.silent_client import SilentClient
from chat.app import create_app
from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import (
    TIMEOUT,
    UNLIMITED_RATES,
    Frame,
    WsClient,
    answer_to,
    client,
    users_and_event,
    ws_url,
)
from tests.polling import until
from tests.servers import run_server

MIB = 1024 * 1024
EMOJI_TEXT = "😀" * 4000
"""The longest text a message may have, four UTF-8 bytes (and four bytes of memory) a char."""
STORED_MESSAGES = 100
PIPELINED_HISTORY = 1000
MEMBERSHIP_QUERY = "%event_participants p JOIN events e%"


@pytest.fixture(scope="module")
async def flood_url(settings: Settings) -> AsyncIterator[str]:
    """Rates out of the way (the byte budget is what is shown); a 1 s write stall."""
    tuned = settings.model_copy(update={**UNLIMITED_RATES, "ws_write_stall_ms": 1000})
    async with run_server(create_app(tuned)) as url:
        yield url


@pytest.fixture(scope="module")
async def strict_url(settings: Settings) -> AsyncIterator[str]:
    """Small per-user limits, reachable in a test."""
    tuned = settings.model_copy(
        update={
            "ws_max_connections_per_user": 3,
            "ws_user_send_rate_per_second": 0.5,
            "ws_user_send_burst": 3,
            "ws_membership_lookups_per_user": 2,
            "ws_non_member_cache_seconds": 30.0,
        }
    )
    async with run_server(create_app(tuned)) as url:
        yield url


async def _slow_consumer_disconnects(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("chat_ws_slow_consumer_disconnects_total "):
            return float(line.split()[1])
    raise AssertionError("chat_ws_slow_consumer_disconnects_total is not in /metrics")


async def _store_long_messages(ws: WsClient, event_id: int, count: int) -> None:
    for start in range(0, count, 25):
        refs = [f"long-{n}" for n in range(start, min(start + 25, count))]
        for ref in refs:
            await ws.send(
                type="send", id=ref, event_id=event_id, client_msg_id=ref, text=EMOJI_TEXT
            )
        for ref in refs:
            answer = await ws.expect(answer_to(ref), wait=30)
            assert answer["type"] == "ack", answer


class _Background:
    """Runs :meth:`_run` while the ``async with`` block runs."""

    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        raise NotImplementedError


class _Pinger(_Background):
    """A victim that pings every 20 ms and keeps each round trip."""

    def __init__(self, ws: WsClient) -> None:
        self.ws = ws
        self.round_trips: list[float] = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            answer = await self.ws.request(type="ping")
            assert answer["type"] == "pong", answer
            self.round_trips.append(loop.time() - started)
            await asyncio.sleep(0.02)  # the pace of the pings, not a wait for a condition


class _PeakRss(_Background):
    """This process's peak resident set while the block runs (the gateway runs in it)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss

    async def __aexit__(self, *exc: object) -> None:
        await super().__aexit__(*exc)
        self.peak = max(self.peak, self._process.memory_info().rss)

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            await asyncio.sleep(0.01)  # the sampling period

    @property
    def growth(self) -> int:
        return self.peak - self.start


async def test_a_history_flood_that_never_reads_is_closed_with_4008_within_64_mib(
    flood_url: str, api: Api
) -> None:
    """100 messages of 4,000 emoji, then 1,000 pipelined ``history`` requests of 100 messages
    (1.6 MB each) from a socket that never reads: unbounded, the gateway would buffer 1.6 GB.
    It reads a page only when the last was taken, so the attacker holds a few megabytes until
    its stall closes it with 4008; the victim's pings keep answering meanwhile."""
    (attacker, victim), event_id = await users_and_event(api, 2)
    async with client(flood_url, api, attacker) as writer:
        await _store_long_messages(writer, event_id, STORED_MESSAGES)
    headers = {"Authorization": f"Bearer {api.tokens.mint(attacker)}"}
    async with (
        httpx.AsyncClient(base_url=flood_url, timeout=TIMEOUT) as http,
        client(flood_url, api, victim) as bo,
    ):
        cut_off_before = await _slow_consumer_disconnects(http)
        async with _PeakRss() as rss, _Pinger(bo) as pinger:
            silent = await SilentClient.connect(ws_url(flood_url), headers)
            try:
                request = f'{{"type":"history","event_id":{event_id},"limit":100}}'
                flood = asyncio.create_task(_send_all(silent, [request] * PIPELINED_HISTORY))
                await until(
                    lambda: _cut_off_since(http, cut_off_before),
                    within=60,
                    what="the attacker to be cut off",
                )
                code = await asyncio.wait_for(silent.read_until_closed(), TIMEOUT)
                flood.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await flood
            finally:
                silent.close()
        assert code == 4008
        assert rss.growth < 64 * MIB, f"the gateway grew by {rss.growth / MIB:.1f} MiB"
        assert len(pinger.round_trips) >= 5
        assert max(pinger.round_trips) < 2.0, pinger.round_trips
        assert (await bo.request(type="ping"))["type"] == "pong"
    # The attacker's account is not banned: a well-behaved connection reads history.
    async with client(flood_url, api, attacker) as again:
        page = await again.request(type="history", event_id=event_id, limit=2)
        assert len(page["messages"]) == 2


@pytest.fixture(scope="module")
async def quick_stall_url(settings: Settings) -> AsyncIterator[str]:
    """A 300 ms write stall and a 64 KiB byte budget: a client must keep reading."""
    tuned = settings.model_copy(
        update={
            **UNLIMITED_RATES,
            "ws_write_stall_ms": 300,
            "ws_outgoing_queue_bytes": 64 * 1024,
        }
    )
    async with run_server(create_app(tuned)) as url:
        yield url


async def test_a_client_reading_large_pages_slowly_is_not_taken_for_a_stalled_one(
    quick_stall_url: str, api: Api
) -> None:
    """Pages of 1.6 MB read at about 1 MB/s: each takes longer than the stall time to leave
    the server's transport, but the client keeps taking bytes, so it is served to the end."""
    (reader_id,), event_id = await users_and_event(api, 1)
    async with client(quick_stall_url, api, reader_id) as writer:
        await _store_long_messages(writer, event_id, STORED_MESSAGES)
    headers = {"Authorization": f"Bearer {api.tokens.mint(reader_id)}"}
    slow = await SilentClient.connect(ws_url(quick_stall_url), headers, receive_buffer=64 * 1024)
    try:
        request = f'{{"type":"history","event_id":{event_id},"limit":100}}'
        for _ in range(3):
            await slow.send_text(request)
        async with asyncio.timeout(60):
            while slow.received["history"] < 3 and slow.close_code is None:
                if not await slow.read_some(64 * 1024):
                    break
                await asyncio.sleep(0.05)  # the reader's pace: about 1.3 MB/s at most
        assert slow.close_code is None, slow.received
        assert slow.received["history"] == 3
    finally:
        slow.close()


async def _send_all(silent: SilentClient, texts: list[str]) -> None:
    for text in texts:
        await silent.send_text(text)


async def _cut_off_since(http: httpx.AsyncClient, before: float) -> bool:
    return await _slow_consumer_disconnects(http) > before


async def test_a_typing_flood_reaches_the_others_about_once_a_second(
    base_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(base_url, api, bo) as victim, client(base_url, api, ada) as flooder:
        await victim.subscribe(event_id)
        await flooder.subscribe(event_id)
        for i in range(60):
            await flooder.send(
                type="typing", id=i, event_id=event_id, state="start" if i % 2 == 0 else "stop"
            )
        answers = [await flooder.expect(answer_to(i)) for i in range(60)]
        assert {a["type"] for a in answers} == {"ok"}
        first = await victim.expect("typing")
        assert first["user_ids"] == [ada]
        last = await victim.expect("typing", wait=3)
        assert last["user_ids"] == []  # the state after the flood: it ended with `stop`
        await victim.drain(quiet=1.3)
        assert victim.kept(lambda f: f["type"] == "typing") == []


async def test_one_user_gets_at_most_the_connection_cap_and_one_more_is_closed_4429(
    strict_url: str, api: Api
) -> None:
    (ada,), _ = await users_and_event(api, 1)
    headers = {"Authorization": f"Bearer {api.tokens.mint(ada)}"}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(client(strict_url, api, ada))
        async with connect(ws_url(strict_url), additional_headers=headers) as ws:
            extra = WsClient(ws)
            refused = await extra.expect("error")
            assert refused["code"] == "too_many_connections", refused
            assert await extra.close_code() == 4429
        others = (await users_and_event(api, 1))[0][0]
        async with client(strict_url, api, others) as someone_else:
            assert someone_else.welcome["user_id"] == others
    async with client(strict_url, api, ada) as after_one_closed:  # the slots came back
        assert after_one_closed.welcome["limits"]["max_connections_per_user"] == 3


async def test_writes_of_one_user_share_a_bucket_across_connections(
    strict_url: str, api: Api
) -> None:
    (ada, bo), event_id = await users_and_event(api, 2)
    async with client(strict_url, api, ada) as phone, client(strict_url, api, ada) as tablet:
        await phone.send_message(event_id, "one")
        await tablet.send_message(event_id, "two")
        await phone.send_message(event_id, "three")
        refused = await tablet.request(
            type="send", event_id=event_id, client_msg_id="four", text="four"
        )
        assert refused["code"] == "rate_limited", refused
        assert refused["retry_after_ms"] > 0
        assert "all your connections" in refused["message"]
        # Another user is not charged for it.
        async with client(strict_url, api, bo) as other:
            await other.send_message(event_id, "bo writes")


@contextlib.asynccontextmanager
async def _participants_locked(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold an exclusive lock on ``event_participants``: every membership look-up waits in
    PostgreSQL, where ``pg_stat_activity`` shows it."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("LOCK TABLE event_participants IN ACCESS EXCLUSIVE MODE")
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()


async def _waiting_lookups(watcher: asyncpg.Connection) -> int:
    count: int = await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        MEMBERSHIP_QUERY,
    )
    return count


def _random_event_id() -> int:
    return 10**15 + secrets.randbelow(10**15)


async def test_a_non_member_answer_is_remembered_and_an_add_forgets_it(
    strict_url: str, api: Api, pg_dsn: str
) -> None:
    (ada,), _ = await users_and_event(api, 1)
    (bo,), bos_event = await users_and_event(api, 1)
    probed, fresh = _random_event_id(), _random_event_id()
    async with client(strict_url, api, ada) as prober:
        for event_id in (probed, bos_event):
            answer = await prober.request(type="subscribe", event_id=event_id)
            assert answer["code"] == "not_found", answer
        async with _participants_locked(pg_dsn), contextlib.AsyncExitStack() as stack:
            watcher = await asyncpg.connect(pg_dsn)
            stack.push_async_callback(watcher.close)
            # Remembered: answered while the table is locked, so without asking PostgreSQL.
            again = await prober.request(type="history", event_id=probed)
            assert again["code"] == "not_found", again
            # Not remembered: the look-up waits in PostgreSQL.
            await prober.send(type="subscribe", id="fresh", event_id=fresh)
            await until(lambda: _waiting_lookups(watcher), what="the fresh look-up in PostgreSQL")
        assert (await prober.expect(lambda f: f.get("ref") == "fresh"))["code"] == "not_found"
        # Through the same app's REST: its add notification reaches its gateway at once.
        async with httpx.AsyncClient(base_url=strict_url, timeout=TIMEOUT) as http:
            added = await http.post(
                f"/v1/events/{bos_event}/participants",
                json={"user_id": ada},
                headers=api.auth(bo),
            )
        assert added.status_code == 201, added.text
        subscribed = await prober.request(type="subscribe", event_id=bos_event)
        assert subscribed["type"] == "subscribed", subscribed


async def test_random_event_ids_from_many_connections_hold_at_most_two_pool_connections(
    strict_url: str, api: Api, pg_dsn: str
) -> None:
    """Three connections of one user probe random ids while membership look-ups block: only
    two of them reach PostgreSQL (the per-user cap); another user's look-up still does."""
    (attacker,), _ = await users_and_event(api, 1)
    (victim,), victims_event = await users_and_event(api, 1)
    async with contextlib.AsyncExitStack() as stack:
        probers = [
            await stack.enter_async_context(client(strict_url, api, attacker)) for _ in range(3)
        ]
        bo = await stack.enter_async_context(client(strict_url, api, victim))
        watcher = await asyncpg.connect(pg_dsn)
        stack.push_async_callback(watcher.close)
        async with _participants_locked(pg_dsn):
            for n, prober in enumerate(probers):
                await prober.send(type="subscribe", id=f"probe-{n}", event_id=_random_event_id())
                # Answered after the subscribe was taken up: its look-up is under way or queued.
                assert (await prober.request(type="ping"))["type"] == "pong"
            await until(lambda: _lookups_reach(watcher, 2), what="the attacker's two look-ups")
            await bo.send(type="subscribe", id="victim", event_id=victims_event)
            assert (await bo.request(type="ping"))["type"] == "pong"
            await until(lambda: _lookups_reach(watcher, 3), what="the victim's look-up")
            assert await _waiting_lookups(watcher) == 3
        answers: list[Frame] = [
            await prober.expect(answer_to(f"probe-{n}")) for n, prober in enumerate(probers)
        ]
        assert [a["code"] for a in answers] == ["not_found"] * 3
        assert (await bo.expect(lambda f: f.get("ref") == "victim"))["type"] == "subscribed"


async def _lookups_reach(watcher: asyncpg.Connection, count: int) -> bool:
    return await _waiting_lookups(watcher) >= count


@pytest.fixture(scope="module")
async def slow_frames_url(settings: Settings) -> AsyncIterator[str]:
    """10 frames at once, then 50 a second."""
    tuned = settings.model_copy(update={"ws_frame_burst": 10, "ws_frame_rate_per_second": 50.0})
    async with run_server(create_app(tuned)) as url:
        yield url


async def test_frames_over_the_frame_rate_wait_in_tcp_and_are_all_answered_in_order(
    slow_frames_url: str, api: Api
) -> None:
    """A client pipelining 110 pings is read at 50 frames a second after its burst of 10: it
    takes about two seconds, and every ping gets its pong, none an error."""
    (ada,), _ = await users_and_event(api, 1)
    async with client(slow_frames_url, api, ada) as flooder:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(110):
            await flooder.send(type="ping", id=n)
        answers = [await flooder.expect(answer_to(n)) for n in range(110)]
        elapsed = loop.time() - started
    assert [a["type"] for a in answers] == ["pong"] * 110
    assert elapsed >= 1.5, elapsed  # (110 - 10 - the welcome's token) / 50 per second
