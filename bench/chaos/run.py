"""The chaos run: clients that follow docs/protocol.md, a deployment under a seeded random
fault schedule, and a verification of the store and of every client's own view at the end.

Exit status 0 when nothing was lost, stored twice, delivered out of order, twice or not at all,
unread counts are exact, and no frame of an event reached a user after their removal; 1
otherwise, with the offending ids and what each affected client saw around them.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.chaos.deployment import Deployment, deployment
from bench.chaos.schedule import Fault, fault_schedule
from bench.load import rest
from bench.load.report import machine, results_dir
from bench.load.resume_fleet import FleetPlan, ResumeFleet, verify_fleet
from chat.embedded.postgres import embedded_postgres

SETTLE_SECONDS = 180.0
"""After the last fault, how long the clients have to catch up (reconnect, resend, resume)."""


@dataclass
class ChaosOptions:
    duration: float = 30.0
    seed: int | None = None
    nodes: int = 2
    events: int = 6
    participants: int = 3
    send_interval: float = 0.1
    drops_per_minute: float = 4.0
    results_root: Path | None = None
    command: str = ""


@dataclass
class Applied:
    """What the run did and saw, for the report."""

    faults: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_chaos(options: ChaosOptions) -> int:
    seed = options.seed if options.seed is not None else secrets.randbelow(10**6)
    schedule = fault_schedule(seed, options.duration)
    print(f"chaos run: seed {seed}, {options.duration:g} s, {options.nodes} gateway nodes")
    print("fault schedule (replay with --seed):")
    for fault in schedule:
        print("  " + fault.describe())
    scratch = Path(tempfile.mkdtemp(prefix="chat-chaos-"))
    started = time.time()
    try:
        result = asyncio.run(_run(options, seed, schedule, scratch))
    except BaseException:
        print(f"the run failed; its logs are in {scratch}", file=sys.stderr)
        raise
    result.update(
        seed=seed,
        schedule=[f.as_dict() for f in schedule],
        started=started,
        command=options.command,
        machine=machine(),
        options={k: str(v) for k, v in vars(options).items()},
    )
    directory = results_dir(options.results_root)
    (directory / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    ok = bool(result["ok"])
    if not ok:
        for log in scratch.glob("*.log"):
            shutil.copy(log, directory / log.name)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"results: {directory}")
    return 0 if ok else 1


async def _run(
    options: ChaosOptions, seed: int, schedule: list[Fault], scratch: Path
) -> dict[str, Any]:
    rng = random.Random(seed)
    applied = Applied()
    print("starting PostgreSQL, the CQL server, nats-server and the gateway nodes ...", flush=True)
    async with embedded_postgres(scratch / "postgres") as dsn:
        secret = secrets.token_urlsafe(32)
        with deployment(scratch, dsn, options.nodes, secret) as deployed:
            users = options.events * options.participants
            population = await rest.populate(
                deployed.urls[0], users, [options.participants] * options.events
            )
            plan = FleetPlan(options.send_interval, options.drops_per_minute)
            fleet = ResumeFleet(deployed.urls, population, plan, rng, tag=f"x{seed}")
            await fleet.start(within=60)
            print(f"{len(fleet.clients)} clients connected; sending for {options.duration:g} s")
            load = asyncio.create_task(fleet.drive(options.duration))
            began = time.monotonic()
            for fault in schedule:
                await asyncio.sleep(max(0.0, began + fault.at - time.monotonic()))
                entry = await _apply(fault, deployed, fleet, population, rng)
                entry["healed_at"] = round(time.monotonic() - began, 2)
                applied.faults.append(entry)
                print(
                    f"  {fault.at:6.1f} → {entry['healed_at']:6.1f} s  {entry['did']}", flush=True
                )
            await load
            await asyncio.to_thread(deployed.heal)
            print("load over, every part running again; letting the clients settle ...")
            settled = await fleet.settle(SETTLE_SECONDS)
            if not settled:
                applied.problems += ["clients never settled: " + "; ".join(fleet.unsettled())]
            await fleet.quiet(2.0)
            print("verifying the store (REST) and every client's view ...", flush=True)
            store, views = await verify_fleet(deployed.any_ready_url(), fleet)
            await fleet.stop()
    for client in fleet.offenders(views):  # copied next to the result with the servers' logs
        lines = "\n".join(map(str, client.journal))
        (scratch / f"journal-{client.user_id}.log").write_text(lines + "\n")
    totals = fleet.totals()
    ok = store.ok and views.ok and not applied.problems
    _print_report(ok, totals, store.as_dict(), views.as_dict(), applied, fleet.explain(views))
    return {
        "ok": ok,
        "totals": totals,
        "applied": applied.faults,
        "problems": applied.problems,
        "store": store.as_dict(),
        "views": views.as_dict(),
    }


async def _apply(
    fault: Fault,
    deployed: Deployment,
    fleet: ResumeFleet,
    population: rest.Population,
    rng: random.Random,
) -> dict[str, Any]:
    """Inflict one fault, wait while it lasts, heal it; what was done."""
    kind, lasts = fault.kind, fault.lasts
    did = kind
    if kind in ("gateway_kill", "gateway_freeze"):
        node = fault.target % len(deployed.gateways)
        gateway = deployed.gateways[node]
        if kind == "gateway_kill":
            gateway.kill()
            await asyncio.sleep(lasts)
            gateway.start()
        else:
            gateway.freeze()
            await asyncio.sleep(lasts)
            gateway.thaw()
        did = f"{kind} node {node} ({deployed.urls[node]})"
    elif kind == "cql_freeze":
        deployed.cql_freeze()
        await asyncio.sleep(lasts)
        deployed.cql_thaw()
    elif kind == "cql_kill":
        deployed.cql_kill()
        await asyncio.sleep(lasts)
        await asyncio.to_thread(deployed.cql_start)
    elif kind == "nats_restart":
        deployed.nats.kill()
        await asyncio.sleep(lasts)
        await asyncio.to_thread(deployed.nats_start)
    elif kind == "client_drops":
        victims = rng.sample(fleet.clients, max(1, len(fleet.clients) // 3))
        for client in victims:
            client.drop()
        did = f"{kind}: {len(victims)} clients"
    elif kind == "participant_removed":
        event = population.events[fault.target % max(1, len(population.events) - 1)]
        creator, member = event.participants[0], event.participants[-1]
        path = f"/v1/events/{event.id}/participants"
        await _rest(deployed, "DELETE", f"{path}/{member.id}", creator)
        await asyncio.sleep(lasts)
        await _rest(deployed, "POST", path, creator, {"user_id": member.id})
        fleet.by_user[member.id].readded(event.id)
        did = f"{kind}: user {member.id} left event {event.id} and came back"
    elif kind == "event_canceled":
        event = population.events[-1]  # never the one participants leave and rejoin
        await _rest(
            deployed,
            "POST",
            f"/v1/events/{event.id}/status",
            event.participants[0],
            {"status": "CANCELED"},
            allowed=(409,),
        )
        did = f"{kind}: event {event.id}"
    return {"at": fault.at, "kind": kind, "lasts": lasts, "did": did}


async def _rest(
    deployed: Deployment,
    method: str,
    path: str,
    user: rest.User,
    body: dict[str, Any] | None = None,
    *,
    allowed: tuple[int, ...] = (),
) -> None:
    """A REST call through whichever node answers (others may be down), retried on 503."""
    headers = {"Authorization": f"Bearer {user.token}"}
    last = ""
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(40):
            for url in deployed.urls:
                try:
                    response = await http.request(method, url + path, json=body, headers=headers)
                except httpx.HTTPError as exc:
                    last = repr(exc)
                    continue
                if response.status_code < 300 or response.status_code in allowed:
                    return
                last = f"{response.status_code} {response.text[:200]}"
                if response.status_code != 503:
                    raise RuntimeError(f"{method} {path}: {last}")
            await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
    raise RuntimeError(f"{method} {path} never succeeded: {last}")


def _print_report(
    ok: bool,
    totals: dict[str, int],
    store: dict[str, Any],
    views: dict[str, Any],
    applied: Applied,
    explained: list[str],
) -> None:
    print("== chaos run ==")
    for key in ("sent", "acked", "refused", "drops", "connects"):
        print(f"  {key:<28} {totals.get(key, 0):,}")
    extra = {k: v for k, v in totals.items() if k.startswith("client_")}
    print(f"  {'client errors seen':<28} {extra or 'none'}")
    print(f"  {'store':<28} {'ok' if store['ok'] else 'FAILED'} {store['problems']}")
    print(f"  {'client views':<28} {'ok' if views['ok'] else 'FAILED'} {views['problems']}")
    print(f"  {'faults applied':<28} {len(applied.faults)}")
    print("verification " + ("ok" if ok else "FAILED"))
    if ok:
        return
    for problem in applied.problems:
        print("  " + problem, file=sys.stderr)
    for kind, examples in {**store["examples"], **views["examples"]}.items():
        for example in examples:
            print(f"  {kind}: {example}", file=sys.stderr)
    for text in explained:
        print(text, file=sys.stderr)
