"""``python -m bench abuse``: hostile clients against a live gateway, and what they cost.

Each attack runs against a gateway with its **default** limits (a ``chat serve`` subprocess
the bench starts, or ``--url``) while a well-behaved victim (:mod:`bench.load.victim`, its own
process) pings every 20 ms. Per attack it reports the gateway's RSS growth (peak during the
attack over the value just before it, from /proc), the victim's ping p50/p99/max during the
attack, and how the attacker was limited: the answers it got by type and error code, close
codes, HTTP statuses.

- ``history``: the attacker stores 100 messages of 4,000 emoji, then, from a socket that never
  reads (:class:`~bench.load.silent_client.SilentClient`), pipelines 1,000 ``history``
  requests of 100 messages (1.6 MB each); it reads only once the gateway has cut it off
  (``chat_ws_slow_consumer_disconnects_total`` moved), to learn the close code.
- ``typing``: ``typing`` start/stop toggles as fast as the gateway takes them (5,000/s offered)
  in the victim's event; the victim counts the ``typing`` frames it receives.
- ``subscribe``: the attacker's connections (as many as it may open) ``subscribe`` to random
  event ids, pipelined (up to 2,000/s offered per connection, as fast as the gateway takes
  them).
- ``connections``: one user opens 200 connections, 50 at a time, and keeps those accepted.
- ``signup``: ``POST /v1/users`` 32 at a time for the attack's duration (REST rate limiting
  answers 429 once the address's sign-up quota is spent).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import orjson

from bench.load import rest
from bench.load.servers import Gateway, free_port, gateway_subprocess, rss_bytes
from bench.load.silent_client import HandshakeRefused, SilentClient
from bench.load.victim import run_victim
from bench.load.ws import ClosedError, PicowsClient

ATTACKS = ("history", "typing", "subscribe", "connections", "signup")
MIB = 1024 * 1024
LONG_TEXT = "😀" * 4000
STORED_MESSAGES = 100
PIPELINED_HISTORY = 1000
FLOOD_CONNECTIONS = 200
SIGNUP_CONCURRENCY = 32
CUT_OFF_WAIT = 60.0
"""At most this long for the history attacker to be cut off."""
ATTACKER_CONNECTIONS = 10
SEND_BUFFER_CAP = 256 * 1024
"""An attacker stops adding frames while this much waits in its own send buffer (the gateway
is not reading it): what it offers is "as fast as the gateway takes", not local memory."""


@dataclass
class Limited:
    """How the attacker was limited, counted live (the progress line shows it)."""

    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    """Frames the attacker got, by type; errors as ``error:<code>``."""
    closes: collections.Counter[int] = field(default_factory=collections.Counter)
    http: collections.Counter[int] = field(default_factory=collections.Counter)
    sent: int = 0

    def count_frame(self, payload: bytes) -> None:
        frame = orjson.loads(payload)
        kind = str(frame.get("type"))
        self.answers[f"error:{frame.get('code')}" if kind == "error" else kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "answers": dict(self.answers.most_common()),
            "closes": {str(k): v for k, v in self.closes.most_common()},
            "http": {str(k): v for k, v in self.http.most_common()},
        }

    def summary(self) -> str:
        parts = [f"sent {self.sent}"]
        parts += [f"{k} {v}" for k, v in self.answers.most_common(4)]
        parts += [f"close {k} x{v}" for k, v in self.closes.most_common(3)]
        parts += [f"HTTP {k} x{v}" for k, v in self.http.most_common(3)]
        return ", ".join(parts)


@dataclass
class Scene:
    """The target and the people of the run."""

    url: str
    pid: int | None
    victim: rest.User
    attacker: rest.User
    flooder: rest.User
    event_id: int
    duration: float
    metrics_url: str
    """Where ``/metrics`` is served: the admin listener of a gateway the bench started (its
    polling must not spend the REST quota of the bench's address), else ``url``."""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/v1/ws"


def _auth(user: rest.User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


# --------------------------------------------------------------------------- the attacks


async def _connect(
    scene: Scene, user: rest.User, limited: Limited, on_text: Callable[[bytes], None]
) -> PicowsClient | None:
    """An attacker connection whose frames go to ``on_text``; None if it was refused."""
    client = await asyncio.wait_for(PicowsClient.connect(scene.ws_url, _auth(user)), 30)
    welcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def first(payload: bytes) -> None:
        if not welcome.done():
            welcome.set_result(payload.startswith(b'{"type":"welcome"'))
        limited.count_frame(payload)
        on_text(payload)

    def closed() -> None:
        if client.close_code is not None and not client.closed_by_us:
            limited.closes[client.close_code] += 1
        if not welcome.done():
            welcome.set_result(False)

    client.listen(first, closed)
    if await asyncio.wait_for(welcome, 30):
        return client
    # Refused: the gateway closes it (the close code is part of the answer).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(client.closed), 5)
    client.drop()
    return None


async def _store_long_messages(scene: Scene) -> None:
    """The attacker's 100 messages of 4,000 emoji, sent within its write limits."""
    done = asyncio.Event()
    acked = 0
    retry = asyncio.Queue[int]()

    def on_text(payload: bytes) -> None:
        nonlocal acked
        frame = orjson.loads(payload)
        ref = frame.get("ref")
        if frame.get("type") == "ack":
            acked += 1
            if acked == STORED_MESSAGES:
                done.set()
        elif isinstance(ref, int):
            retry.put_nowait(ref)  # rate_limited (or unavailable): send it again later

    client = await _connect(scene, scene.attacker, Limited(), on_text)
    if client is None:
        raise RuntimeError("the attacker could not connect to store its messages")
    try:
        pending = list(range(STORED_MESSAGES))
        while not done.is_set():
            for n in pending:
                client.send(
                    orjson.dumps(
                        {
                            "type": "send",
                            "id": n,
                            "event_id": scene.event_id,
                            "client_msg_id": f"long-{secrets.token_hex(4)}-{n}",
                            "text": LONG_TEXT,
                        }
                    )
                )
            pending = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await done.wait()
            while not retry.empty():
                pending.append(retry.get_nowait())
    finally:
        await client.close()


async def _slow_consumer_disconnects(http: httpx.AsyncClient) -> float | None:
    response = await http.get("/metrics")
    if response.status_code != 200:
        return None
    for line in response.text.splitlines():
        if line.startswith("chat_ws_slow_consumer_disconnects_total "):
            return float(line.split()[1])
    return None


async def history_flood(scene: Scene, limited: Limited) -> dict[str, Any]:
    silent = await SilentClient.connect(scene.ws_url, _auth(scene.attacker))
    request = orjson.dumps({"type": "history", "event_id": scene.event_id, "limit": 100})

    async def send_all() -> None:
        for _ in range(PIPELINED_HISTORY):
            await silent.send_text(request.decode())
            limited.sent += 1

    async with httpx.AsyncClient(base_url=scene.metrics_url, timeout=10) as http:
        before = await _slow_consumer_disconnects(http)
        sender = asyncio.create_task(send_all())
        began = time.monotonic()
        cut_off_after: float | None = None
        try:
            # Without the counter (/metrics served elsewhere) the attacker reads after the
            # attack's duration instead of as soon as it is cut off.
            wait = CUT_OFF_WAIT if before is not None else scene.duration
            while time.monotonic() - began < wait:
                now = await _slow_consumer_disconnects(http) if before is not None else None
                if before is not None and now is not None and now > before:
                    cut_off_after = round(time.monotonic() - began, 2)
                    break
                await asyncio.sleep(0.1)  # polling the gateway's counter
            code = await asyncio.wait_for(silent.read_until_closed(), 30)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
            silent.close()
    limited.closes[code if code is not None else 1006] += 1
    limited.answers.update(silent.received)
    return {
        "cut_off_after_seconds": cut_off_after,
        "read_after_cut_off_bytes": silent.received_bytes,
    }


async def typing_flood(scene: Scene, limited: Limited) -> dict[str, Any]:
    client = await _connect(scene, scene.attacker, limited, lambda _payload: None)
    if client is None:
        return {"refused": True}
    try:
        frames = [
            orjson.dumps({"type": "typing", "event_id": scene.event_id, "state": state})
            for state in ("start", "stop")
        ]
        deadline = time.monotonic() + scene.duration
        while time.monotonic() < deadline:
            if client.write_buffer_size < SEND_BUFFER_CAP:  # the gateway is still reading
                for n in range(50):
                    client.send(frames[n % 2])
                    limited.sent += 1
            await asyncio.sleep(0.01)  # 5,000 frames/s offered
    except ClosedError:
        pass
    finally:
        client.drop()
    return {}


async def subscribe_flood(scene: Scene, limited: Limited) -> dict[str, Any]:
    clients = []
    for _ in range(ATTACKER_CONNECTIONS):
        client = await _connect(scene, scene.attacker, limited, lambda _payload: None)
        if client is not None:
            clients.append(client)
    try:
        deadline = time.monotonic() + scene.duration
        while time.monotonic() < deadline and clients:
            for client in list(clients):
                if client.write_buffer_size >= SEND_BUFFER_CAP:
                    continue  # the gateway stopped reading this connection
                try:
                    for _ in range(20):
                        event_id = 10**15 + secrets.randbelow(10**15)
                        client.send(b'{"type":"subscribe","event_id":%d}' % event_id)
                        limited.sent += 1
                except ClosedError:
                    clients.remove(client)
            await asyncio.sleep(0.01)  # 2,000 subscribes/s offered per connection
    finally:
        for client in clients:
            client.drop()
    return {"connections": len(clients)}


async def connection_flood(scene: Scene, limited: Limited) -> dict[str, Any]:
    gate = asyncio.Semaphore(50)
    accepted: list[PicowsClient] = []

    async def one() -> None:
        async with gate:
            limited.sent += 1
            try:
                client = await _connect(scene, scene.flooder, limited, lambda _payload: None)
            except (OSError, TimeoutError, HandshakeRefused) as exc:
                limited.answers[f"connect failed: {type(exc).__name__}"] += 1
                return
            if client is not None:
                accepted.append(client)

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(FLOOD_CONNECTIONS)))
    flood_seconds = time.monotonic() - began
    # Held open for the rest of the attack: what they cost the gateway shows in its RSS.
    await asyncio.sleep(max(0.0, scene.duration - flood_seconds))
    for client in accepted:
        client.drop()
    return {"accepted": len(accepted), "flood_seconds": round(flood_seconds, 2)}


async def signup_flood(scene: Scene, limited: Limited) -> dict[str, Any]:
    tag = f"{secrets.randbelow(10**6):06d}"
    counter = iter(range(10**7))
    deadline = time.monotonic() + scene.duration

    async def worker(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            body = {"phone": f"+8{tag}{next(counter):07d}", "name": "flood"}
            limited.sent += 1
            try:
                response = await http.post("/v1/users", json=body)
            except httpx.HTTPError as exc:
                limited.answers[type(exc).__name__] += 1
                continue
            limited.http[response.status_code] += 1

    async with rest.api_client(scene.url) as http:
        await asyncio.gather(*(worker(http) for _ in range(SIGNUP_CONCURRENCY)))
    return {}


Attack = Callable[[Scene, Limited], Coroutine[Any, Any, dict[str, Any]]]
RUNNERS: Mapping[str, Attack] = {
    "history": history_flood,
    "typing": typing_flood,
    "subscribe": subscribe_flood,
    "connections": connection_flood,
    "signup": signup_flood,
}


# --------------------------------------------------------------------------- the run


class VictimProcess:
    """The victim in its own process (spawn), driven over a pipe."""

    def __init__(self, scene: Scene) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=run_victim,
            args=(scene.ws_url, scene.victim.token, scene.event_id, child),
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()
        if not self._pipe.poll(60) or (answer := self._pipe.recv()) != "ready":
            raise RuntimeError("the victim did not start")
        del answer

    def window(self) -> None:
        self._pipe.send("window")

    def report(self) -> dict[str, Any]:
        self._pipe.send("report")
        pipe: Connection = self._pipe
        if not pipe.poll(10):
            raise RuntimeError("the victim did not report")
        report: dict[str, Any] = pipe.recv()
        return report

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


class RssWatch:
    """The gateway's RSS: the value at the start and the peak since (sampled every 50 ms)."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self.start = self.peak = rss_bytes(pid) if pid else 0
        self._task = asyncio.create_task(self._sample()) if pid else None

    async def _sample(self) -> None:
        assert self._pid is not None
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self._pid))
            await asyncio.sleep(0.05)  # the sampling period

    @property
    def growth_mib(self) -> float | None:
        return (self.peak - self.start) / MIB if self._pid else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _run_attack(name: str, scene: Scene, victim: VictimProcess) -> dict[str, Any]:
    if name == "history":
        print("  history: storing the attacker's 100 messages of 4,000 emoji ...", flush=True)
        await _store_long_messages(scene)
    limited = Limited()
    victim.window()
    rss = RssWatch(scene.pid)
    began = time.monotonic()
    attack = asyncio.create_task(RUNNERS[name](scene, limited))
    while not attack.done():
        await asyncio.wait([attack], timeout=1.0)
        growth = rss.growth_mib
        live = victim.report()
        print(
            f"  {name:<11} {time.monotonic() - began:5.1f}s"
            f"  rss {'n/a' if growth is None else f'{growth:+.1f} MiB'}"
            f"  victim p99 {live['p99_ms']:.1f} ms ({live['answered']} pongs)"
            f"  attacker: {limited.summary()}",
            flush=True,
        )
    details = attack.result()
    seconds = time.monotonic() - began
    await rss.stop()
    report = victim.report()
    return {
        "attack": name,
        "seconds": round(seconds, 1),
        "rss_before_mib": round(rss.start / MIB, 1) if scene.pid else None,
        "rss_growth_mib": None if rss.growth_mib is None else round(rss.growth_mib, 1),
        "victim": report
        | {"typing_frames_per_second": round(report["typing_frames"] / max(seconds, 1e-9), 2)},
        "attacker": limited.as_dict(),
        "details": details,
    }


async def _scene(url: str, pid: int | None, duration: float, metrics_url: str) -> Scene:
    tag = f"{secrets.randbelow(10**6):06d}"
    async with rest.api_client(url) as http:
        # Three sign-ups: within the default sign-up quota of one address.
        victim, attacker, flooder = [await rest.sign_up(http, tag, n) for n in range(3)]
        event = await rest.create_event(http, [victim, attacker], f"abuse {tag}")
    return Scene(url, pid, victim, attacker, flooder, event.id, duration, metrics_url)


def run_abuse(
    attacks: Sequence[str], duration: float, url: str | None, gateway_env: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Run the attacks in order; the rows of the report."""
    with contextlib.ExitStack() as stack:
        if url:
            gateway = Gateway(url.rstrip("/"), None, None, None, None)
            metrics_url = gateway.url
        else:
            print("starting a gateway with its default limits ...", flush=True)
            admin_port = free_port()
            env = {"CHAT_ADMIN_PORT": str(admin_port), **gateway_env}
            gateway = stack.enter_context(gateway_subprocess(env, limits={}))
            metrics_url = f"http://127.0.0.1:{admin_port}"
        scene = asyncio.run(_scene(gateway.url, gateway.pid, duration, metrics_url))
        victim = VictimProcess(scene)
        victim.start()
        stack.callback(victim.stop)
        rows = []
        for name in attacks:
            print(f"attack: {name}", flush=True)
            rows.append(asyncio.run(_run_attack(name, scene, victim)))
        return rows


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print()
    print(f"{'attack':<12} {'RSS growth':>11} {'victim p50/p99/max ms':>24}  attacker limited by")
    for row in rows:
        victim = row["victim"]
        growth = row["rss_growth_mib"]
        rss = "n/a" if growth is None else f"{growth:+.1f} MiB"
        latency = f"{victim['p50_ms']:.1f}/{victim['p99_ms']:.1f}/{victim['max_ms']:.1f}"
        attacker = row["attacker"]
        limits = [f"{k} {v}" for k, v in attacker["answers"].items()]
        limits += [f"close {k} x{v}" for k, v in attacker["closes"].items()]
        limits += [f"HTTP {k} x{v}" for k, v in attacker["http"].items()]
        print(f"{row['attack']:<12} {rss:>11} {latency:>24}  {', '.join(limits[:6])}")
        notes = [f"{k} {v}" for k, v in row["details"].items()]
        if row["attack"] == "typing":
            notes.append(f"victim received {victim['typing_frames_per_second']} typing frames/s")
        notes.append(f"attacker sent {attacker['sent']} in {row['seconds']} s")
        print(f"{'':<12} {'; '.join(notes)}")
