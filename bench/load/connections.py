"""``python -m bench connections``: many idle authenticated connections, and what they cost.

Opens ``count`` WebSocket connections (spread over the generator processes, token in the
upgrade request), waits for every ``welcome``, and reports the time to connect them all and
the gateway's memory per connection: the growth of the gateway process's resident set size
(/proc VmRSS) divided by the count. The file-descriptor limit is raised first — in this process
(the gateway subprocess inherits it) and in each generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.load import rest
from bench.load.fleet import run_fleet
from bench.load.generator import ConnSpec, WorkerConfig
from bench.load.servers import Gateway, gateway_subprocess, raise_nofile, rss_bytes

USERS = 100
"""Connections share these users' tokens (one user may have many devices)."""


def run_connections(
    count: int, processes: int, url: str | None, hold_seconds: float = 1.0
) -> dict[str, Any]:
    limit = raise_nofile(count + 4096)
    if limit < count + 100:
        raise SystemExit(f"the open-file limit is {limit}; {count} connections need more")
    with contextlib.ExitStack() as stack:
        if url:
            gateway = Gateway(url.rstrip("/"), None, None, None, None)
        else:
            gateway = stack.enter_context(gateway_subprocess())
        population = asyncio.run(rest.populate(gateway.url, min(USERS, count), []))
        users = population.users
        specs = [
            ConnSpec(users[n % len(users)].id, users[n % len(users)].token) for n in range(count)
        ]
        ws_url = gateway.url.replace("http://", "ws://", 1) + "/v1/ws"
        configs = [
            WorkerConfig(
                index=i,
                ws_url=ws_url,
                kind="idle",
                connections=tuple(specs[i::processes]),
                connect_concurrency=128,
                nofile=count + 4096,
            )
            for i in range(processes)
        ]
        before = rss_bytes(gateway.pid) if gateway.pid else 0
        began = time.monotonic()
        figures: dict[str, Any] = {}

        def on_ready(connect_seconds: list[float]) -> None:
            figures["connect_all_seconds"] = time.monotonic() - began
            figures["connect_seconds_per_process"] = connect_seconds

        def hold() -> None:
            time.sleep(hold_seconds)  # let the gateway settle its per-connection state
            if gateway.pid:
                figures["gateway_rss_after_mib"] = rss_bytes(gateway.pid) / 2**20

        print(f"opening {count} connections from {processes} processes ...", flush=True)
        results, _ = run_fleet(configs, on_ready=on_ready, hold=hold, live=False)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    figures.update(
        count=count,
        processes=processes,
        connections_per_s=count / figures["connect_all_seconds"],
        errors=errors,
    )
    if before:
        figures["gateway_rss_before_mib"] = before / 2**20
        grown = figures["gateway_rss_after_mib"] * 2**20 - before
        figures["gateway_kib_per_connection"] = grown / count / 1024
    return figures
