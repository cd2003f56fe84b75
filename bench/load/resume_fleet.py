"""Many :class:`~bench.load.resuming_client.ResumingClient` at once: a write load with random
connection drops, then the verification of the store and of every client's own view.

Shared by ``write-load --drops``, ``chaos`` and the multi-node fault tests, so all three hold
the service to the same rule: after any mix of drops and faults, once the clients have
settled, the store holds every acknowledged message once and every client saw every message of
its events exactly once, in store order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.load import rest
from bench.load.resuming_client import ResumingClient
from bench.load.verify import SentMessage, Verification, group_participants, verify
from bench.load.views import ClientView, ViewCheck, check_views


@dataclass(frozen=True, slots=True)
class FleetPlan:
    send_interval: float = 0.1
    """Mean seconds between a client's messages (each waits for the previous one's ack)."""
    drops_per_minute: float = 0.0
    """Mean abrupt connection drops per client and minute (0: none)."""


class ResumeFleet:
    """One client per (user, event) membership of a population, spread over ``urls``."""

    def __init__(
        self,
        urls: Sequence[str],
        population: rest.Population,
        plan: FleetPlan,
        rng: random.Random,
        *,
        tag: str = "f",
    ) -> None:
        self.plan = plan
        self.population = population
        self.rng = rng
        events_of: dict[int, list[int]] = {}
        tokens: dict[int, str] = {}
        for event in population.events:
            for user in event.participants:
                events_of.setdefault(user.id, []).append(event.id)
                tokens[user.id] = user.token
        self.clients = [
            ResumingClient(
                urls,
                user_id,
                tokens[user_id],
                events,
                rng=random.Random(rng.random()),
                tag=tag,
            )
            for user_id, events in sorted(events_of.items())
        ]
        self.by_user = {c.user_id: c for c in self.clients}
        self._sending = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, within: float = 60.0) -> None:
        """Connect every client and wait until each is subscribed to all its events."""
        for client in self.clients:
            client.start()
        await self.settle(within)

    async def drive(self, duration: float) -> None:
        """Send (and drop connections) for ``duration`` seconds."""
        self._sending = True
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        tasks = [loop.create_task(self._client_load(c, end)) for c in self.clients]
        await asyncio.gather(*tasks)
        self._sending = False

    async def _client_load(self, client: ResumingClient, end: float) -> None:
        loop = asyncio.get_running_loop()
        rng = client.rng
        events = list(client.views)
        drop_rate = self.plan.drops_per_minute / 60.0
        while loop.time() < end:
            await asyncio.sleep(rng.expovariate(1 / self.plan.send_interval))
            if len(client.unacked) < 3:  # a person waits for the app to catch up
                client.send(rng.choice(events))
            if drop_rate and rng.random() < drop_rate * self.plan.send_interval:
                client.drop()

    async def settle(self, within: float) -> bool:
        """Wait until every client is connected, subscribed and has no send unanswered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if all(c.settled() for c in self.clients):
                return True
            await asyncio.sleep(0.1)
        return False

    async def quiet(self, seconds: float = 1.0) -> None:
        """Let frames still on their way arrive (nothing new is sent meanwhile)."""
        await asyncio.sleep(seconds)

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.clients))

    def unsettled(self) -> list[str]:
        out = []
        for c in self.clients:
            if not c.settled():
                live = {e: v.live for e, v in c.views.items()}
                out.append(f"user {c.user_id}: unacked {len(c.unacked)}, live {live}")
        return out

    def views(self) -> list[ClientView]:
        return [
            ClientView(c.user_id, event_id, v.start, tuple(v.received), tuple(v.stray))
            for c in self.clients
            for event_id, v in c.views.items()
            if v.started
        ]

    def sent(self) -> list[SentMessage]:
        return [
            SentMessage(s.event_id, c.user_id, s.client_msg_id, s.text, s.seq, s.message_id)
            for c in self.clients
            for s in c.sent.values()
            if s.refused is None
        ]

    def offenders(self, check: ViewCheck) -> list[ResumingClient]:
        """The clients behind a failed view check's examples."""
        users = {int(e.split()[1].rstrip(",")) for ex in check.examples.values() for e in ex}
        return [self.by_user[u] for u in sorted(users) if u in self.by_user]

    def explain(self, check: ViewCheck, limit: int = 3) -> list[str]:
        """Journal excerpts of the clients behind a failed view check's first examples."""
        out = []
        for kind, examples in check.examples.items():
            for example in examples[:limit]:
                words = example.replace(",", "").replace(":", "").split()
                user, event = int(words[1]), int(words[3])
                ids = [w for w in words if w.count("-") == 4]
                client = self.by_user.get(user)
                if client is not None:
                    entries = client.excerpt(event, ids[0] if ids else "")
                    out.append(f"{kind} {example}:\n  " + "\n  ".join(map(str, entries)))
        return out

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {
            "sent": sum(len(c.sent) for c in self.clients),
            "acked": sum(1 for c in self.clients for s in c.sent.values() if s.message_id),
            "refused": sum(1 for c in self.clients for s in c.sent.values() if s.refused),
            "drops": sum(c.drops for c in self.clients),
            "connects": sum(c.connects for c in self.clients),
        }
        for c in self.clients:
            for kind, n in c.errors.items():
                totals[f"client_{kind}"] = totals.get(f"client_{kind}", 0) + n
        return totals


async def verify_fleet(
    base_url: str, fleet: ResumeFleet, *, unread: bool = True
) -> tuple[Verification, ViewCheck]:
    """The store (through REST) against what the clients sent, and every client's view."""
    events = fleet.population.events
    stored, counts = await rest.read_back(base_url, events)
    participants = group_participants((e.id, u.id) for e in events for u in e.participants)
    store_check = verify(fleet.sent(), stored, participants, counts if unread else None)
    return store_check, check_views(fleet.views(), stored)
