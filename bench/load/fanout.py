"""``python -m bench fanout``: one sender, N subscribers, delivery latency per N.

For each N (default 10, 100, 1000) an event with the sender and N other participants is
created through the REST API (100 in the creation request, the rest added one by one); every
subscriber connects and subscribes before the first message; the sender sends ``rate``
messages per second for ``duration`` seconds on an open-loop schedule, each carrying its due
time; every subscriber records due time → arrival. The figures are the merged HdrHistogram's
p50/p99/max, and the deliveries received versus expected (N per acked message).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bench.load import rest
from bench.load.fleet import run_fleet
from bench.load.generator import ConnSpec, WorkerConfig
from bench.load.histograms import merge, summary_ms
from bench.load.servers import Gateway, gateway_subprocess, raise_nofile


def run_fanout(
    sizes: list[int], rate: float, duration: float, processes: int, url: str | None
) -> list[dict[str, Any]]:
    raise_nofile(max(sizes) * 2 + 4096)
    rows = []
    with contextlib.ExitStack() as stack:
        if url:
            gateway = Gateway(url.rstrip("/"), None, None, None, None)
        else:
            gateway = stack.enter_context(gateway_subprocess())
        ws_url = gateway.url.replace("http://", "ws://", 1) + "/v1/ws"
        for n in sizes:
            print(f"fan-out to {n} subscribers ...", flush=True)
            population = asyncio.run(rest.populate(gateway.url, n + 1, [n + 1]))
            event = population.events[0]
            sender, *subscribers = event.participants
            receivers = [ConnSpec(u.id, u.token, (event.id,)) for u in subscribers]
            configs = [
                WorkerConfig(
                    index=i,
                    ws_url=ws_url,
                    kind="chat",
                    connections=tuple(
                        (
                            [ConnSpec(sender.id, sender.token, (event.id,), event.id)]
                            if i == 0
                            else []
                        )
                        + receivers[i::processes]
                    ),
                    mode="open" if i == 0 else "none",
                    rate=rate,
                    duration=duration,
                    drain=10.0,
                    nofile=max(sizes) * 2 + 4096,
                )
                for i in range(processes)
            ]
            results, _ = run_fleet(configs, live=False)
            acked = sum(r.acked for r in results)
            delivery = summary_ms(merge(r.delivery_histogram for r in results))
            rows.append(
                {
                    "subscribers": n,
                    "messages_acked": acked,
                    "deliveries": sum(r.deliveries_measured for r in results),
                    "deliveries_expected": acked * n,
                    "delivery_ms": delivery,
                    "errors": {k: v for r in results for k, v in r.errors.items()},
                }
            )
            print(
                f"  N={n}: delivery p50 {delivery['p50']:.1f} ms  p99 {delivery['p99']:.1f} ms  "
                f"max {delivery['max']:.1f} ms  ({rows[-1]['deliveries']:,} of "
                f"{acked * n:,} deliveries)",
                flush=True,
            )
    return rows
