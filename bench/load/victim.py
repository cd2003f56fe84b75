"""The well-behaved client of ``python -m bench abuse``, in a process of its own.

It connects (token in the upgrade request), subscribes to its event and sends a ``ping``
every :data:`PING_PERIOD` seconds, timing each ``pong`` (a ping answered otherwise — it never
should be — counts as ``refused``). It runs in its own process so that
the attacks — whose clients are busy Python code in the bench's process — do not add their
CPU time to the victim's measured latency: what it measures is the gateway.

The parent drives it over a pipe: ``"window"`` starts a measurement window, ``"report"``
answers the window's figures (:class:`VictimReport` as a dict), ``"stop"`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson

from bench.load.ws import ClosedError, PicowsClient

PING_PERIOD = 0.1
"""Ten pings a second: well under the default frame rate (20/s), which the victim obeys."""
CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class VictimReport:
    pings: int
    answered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    refused: int
    typing_frames: int
    """``typing`` frames received in the window (another user's typing, fanned out)."""
    closed: int | None
    """The victim's own close code, if the gateway closed it (it never should)."""


def percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(share * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class _Victim:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ids = itertools.count(1)
        self._sent: dict[int, float] = {}
        self.round_trips: list[float] = []
        self.pings = 0
        self.refused = 0
        self.typing_frames = 0
        self.client: PicowsClient | None = None
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def window(self) -> None:
        self._sent.clear()
        self.round_trips = []
        self.pings = 0
        self.refused = 0
        self.typing_frames = 0

    def report(self) -> VictimReport:
        now = self._loop.time()
        # Pings still unanswered count with their age so far: a lower bound, not a loss.
        trips = sorted(self.round_trips + [now - t for t in self._sent.values()])
        client = self.client
        return VictimReport(
            pings=self.pings,
            answered=len(self.round_trips),
            p50_ms=percentile(trips, 0.50) * 1000,
            p99_ms=percentile(trips, 0.99) * 1000,
            max_ms=(trips[-1] if trips else 0.0) * 1000,
            refused=self.refused,
            typing_frames=self.typing_frames,
            closed=client.close_code if client is not None else None,
        )

    def on_text(self, payload: bytes) -> None:
        frame = orjson.loads(payload)
        kind = frame.get("type")
        ref = frame.get("ref")
        if isinstance(ref, int):
            sent = self._sent.pop(ref, None)
            if sent is not None and kind == "pong":
                self.round_trips.append(self._loop.time() - sent)
            elif sent is not None:
                self.refused += 1
        elif kind == "typing":
            self.typing_frames += 1
        elif isinstance(ref, str) and ref in self.answers:
            self.answers.pop(ref).set_result(frame)
        elif kind == "welcome" and "welcome" in self.answers:
            self.answers.pop("welcome").set_result(frame)

    def on_close(self) -> None:
        for waiter in self.answers.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the victim's connection closed"))

    def expect(self, key: str) -> asyncio.Future[dict[str, Any]]:
        waiter: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self.answers[key] = waiter
        return waiter

    async def ping_forever(self) -> None:
        client = self.client
        assert client is not None
        while True:
            ping_id = next(self._ids)
            self._sent[ping_id] = self._loop.time()
            self.pings += 1
            try:
                client.send(b'{"type":"ping","id":%d}' % ping_id)
            except ClosedError:
                return
            await asyncio.sleep(PING_PERIOD)  # the victim's pace


async def _run(ws_url: str, token: str, event_id: int, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    victim = _Victim(loop)
    welcome = victim.expect("welcome")
    client = await asyncio.wait_for(
        PicowsClient.connect(ws_url, {"Authorization": f"Bearer {token}"}), CONNECT_TIMEOUT
    )
    victim.client = client
    client.listen(victim.on_text, victim.on_close)
    await asyncio.wait_for(welcome, CONNECT_TIMEOUT)
    subscribed = victim.expect("subscribe")
    client.send(orjson.dumps({"type": "subscribe", "id": "subscribe", "event_id": event_id}))
    answer = await asyncio.wait_for(subscribed, CONNECT_TIMEOUT)
    if answer.get("type") != "subscribed":
        raise RuntimeError(f"the victim could not subscribe: {answer}")
    pinger = asyncio.create_task(victim.ping_forever())
    stop = loop.create_future()

    def command() -> None:
        message = pipe.recv()
        if message == "window":
            victim.window()
        elif message == "report":
            pipe.send(asdict(victim.report()))
        elif message == "stop" and not stop.done():
            stop.set_result(None)

    loop.add_reader(pipe.fileno(), command)
    pipe.send("ready")
    try:
        await stop
    finally:
        loop.remove_reader(pipe.fileno())
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        await client.close()


def run_victim(ws_url: str, token: str, event_id: int, pipe: Connection) -> None:
    """The process's target (``multiprocessing``, spawn)."""
    try:
        import uvloop

        uvloop.run(_run(ws_url, token, event_id, pipe))
    except Exception as exc:
        pipe.send(f"failed: {exc!r}")
        raise
