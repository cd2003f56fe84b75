"""The seeded random fault schedule of a chaos run: what happens, to whom, when, how long.

Pure (a :class:`random.Random` in, a list out), so a seed always gives the same schedule —
printed at the start of a run and stored with its result, so a failure can be replayed with
``--seed``. Faults do not overlap: each one heals before the next begins, with a pause between
(client connection drops go on all the time, independently).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

KINDS = (
    "gateway_kill",
    "gateway_freeze",
    "cql_freeze",
    "cql_kill",
    "nats_restart",
    "client_drops",
    "participant_removed",
    "event_canceled",
)
"""Every kind of fault: a gateway node SIGKILLed and restarted, or frozen (SIGSTOP, then
SIGCONT); the CQL server frozen, or killed and restarted; nats-server stopped and started; a
burst of client connection drops; a participant removed and added back; an event canceled."""

LONG = {"gateway_kill": (1.0, 3.0), "gateway_freeze": (2.5, 4.0), "cql_freeze": (1.0, 3.0)}
"""Seconds a fault lasts (min, max); others default to (0.5, 1.5). A frozen gateway node stays
frozen longer than the chaos nodes' presence TTL (2 s): the others take it for dead."""


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    """Seconds after sending started."""
    kind: str
    lasts: float
    target: int
    """Which gateway node, event or client the fault picks (an index; its meaning per kind)."""

    def describe(self) -> str:
        return f"{self.at:6.1f} s  {self.kind:<20} for {self.lasts:4.1f} s  (target {self.target})"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def fault_schedule(seed: int, duration: float, targets: int = 1000) -> list[Fault]:
    """Faults from 10 % to 85 % of ``duration``; every kind at least once when there is room
    (a shuffled round of all kinds, then random ones)."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = max(1.0, 0.1 * duration)
    end = 0.85 * duration
    kinds = list(KINDS)
    rng.shuffle(kinds)
    while at < end:
        kind = kinds.pop() if kinds else rng.choice(KINDS)
        low, high = LONG.get(kind, (0.5, 1.5))
        lasts = round(rng.uniform(low, high), 2)
        faults.append(Fault(round(at, 2), kind, lasts, rng.randrange(targets)))
        at += lasts + rng.uniform(0.5, 1.5)
    return faults
