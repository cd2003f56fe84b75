"""``python -m bench``: the command line of every benchmark.

- ``write-load``   the gateway's write path under open- or closed-loop load;
- ``connections``  many idle authenticated connections: connect time, memory per connection;
- ``fanout``       one sender to N subscribers: delivery latency;
- ``chaos``        a multi-node deployment under a seeded random fault schedule, verified;
- ``mixed``        reads (history pages, ``since`` replays, unread) under open-loop writes, a
                   resume storm, and the exactness of every page read;
- ``abuse``        hostile clients against default limits: RSS, a victim's ping p99, limits;
- ``store-write``  the message store alone (delegates to ``bench/store_write.py``);
- ``cql-server``   the embedded CQL server alone (delegates to ``bench/cql_server.py``).

Every option is described in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.load.abuse import ATTACKS
from bench.load.mixed import MixedOptions
from bench.load.readers import OPERATIONS
from bench.load.report import machine, results_dir
from bench.load.verify import DELIVERY_ORDERS
from bench.load.write_load import WriteLoadOptions, run_write_load


def _env_pair(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.startswith("CHAT_"):
        raise argparse.ArgumentTypeError(f"expected CHAT_NAME=value, got {text!r}")
    return name, value


def _mix(text: str) -> tuple[tuple[str, float], ...]:
    pairs = []
    for part in text.split(","):
        name, eq, weight = part.partition("=")
        if not eq or name not in OPERATIONS:
            raise argparse.ArgumentTypeError(
                f"expected name=weight with names from {', '.join(OPERATIONS)}, got {part!r}"
            )
        pairs.append((name, float(weight)))
    return tuple(pairs)


def _run_length(parser: argparse.ArgumentParser, *, duration: float, warmup: float) -> None:
    parser.add_argument(
        "--duration", type=float, default=duration, help=f"measured seconds ({duration:g})"
    )
    parser.add_argument(
        "--warmup", type=float, default=warmup, help=f"unmeasured seconds first ({warmup:g})"
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="max seconds to wait for what is outstanding (15)"
    )


def _gateway_env_option(
    parser: argparse.ArgumentParser,
    help_text: str = "extra setting for the gateway subprocess (repeatable)",
) -> None:
    parser.add_argument(
        "--gateway-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="CHAT_NAME=value",
        help=help_text,
    )


def _results_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, help="results root (bench/results)")


def _population(parser: argparse.ArgumentParser, *, events: int, participants: int) -> None:
    parser.add_argument("--events", type=int, default=events, help=f"events ({events})")
    parser.add_argument(
        "--participants",
        type=int,
        default=participants,
        help=f"participants per event ({participants})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("write-load", help="drive the gateway's write path; verify; report")
    loop = w.add_mutually_exclusive_group()
    loop.add_argument("--rate", type=float, help="open loop: messages/s at fixed arrival times")
    loop.add_argument("--concurrency", type=int, help="closed loop: sends in flight (default 256)")
    _run_length(w, duration=10.0, warmup=2.0)
    w.add_argument("--processes", type=int, default=2, help="load-generator processes (2)")
    _population(w, events=100, participants=5)
    w.add_argument("--text-bytes", type=int, default=100, help="message text size (100)")
    w.add_argument("--url", help="target a running gateway (http://host:port) instead")
    w.add_argument("--no-verify", action="store_true", help="skip reading the store back")
    w.add_argument(
        "--delivery-order",
        choices=DELIVERY_ORDERS,
        default="store",
        help="deliveries in store order (the protocol's one order), or each sender's only",
    )
    w.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes to start: chat serve --workers N (1: chat serve)",
    )
    w.add_argument(
        "--drops",
        type=float,
        default=0.0,
        metavar="PER_MINUTE",
        help="random abrupt connection drops per connection and minute, each resumed (0)",
    )
    w.add_argument("--baseline", choices=["echo"], help="also run against a bare echo server")
    _results_option(w)
    _gateway_env_option(w)

    c = sub.add_parser("connections", help="idle authenticated connections: time and memory")
    c.add_argument("--count", type=int, default=10000, help="connections (10000)")
    c.add_argument("--processes", type=int, default=2, help="generator processes (2)")
    c.add_argument("--url", help="target a running gateway (no memory figure then)")
    _results_option(c)

    f = sub.add_parser("fanout", help="one sender to N subscribers: delivery p50/p99")
    f.add_argument("--sizes", default="10,100,1000", help="subscriber counts (10,100,1000)")
    f.add_argument("--rate", type=float, default=20.0, help="sender's messages/s (20)")
    f.add_argument("--duration", type=float, default=5.0, help="seconds per size (5)")
    f.add_argument("--processes", type=int, default=2, help="generator processes (2)")
    f.add_argument("--url", help="target a running gateway")
    _results_option(f)

    x = sub.add_parser("chaos", help="multi-node deployment under a seeded fault schedule")
    x.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    x.add_argument("--seed", type=int, help="the fault schedule's seed (random; printed)")
    x.add_argument("--nodes", type=int, default=2, help="gateway nodes (2)")
    _population(x, events=6, participants=3)
    _results_option(x)

    m = sub.add_parser("mixed", help="reads under write load, a resume storm, page exactness")
    _run_length(m, duration=20.0, warmup=3.0)
    m.add_argument("--events", type=int, default=200, help="live events (200)")
    m.add_argument("--writers", type=int, default=5, help="writers per live event (5)")
    m.add_argument("--readers", type=int, default=4, help="reader users, in every event (4)")
    m.add_argument("--quiet-events", type=int, default=20, help="events without writers (20)")
    m.add_argument("--history", type=int, default=100, help="older messages per live event (100)")
    m.add_argument(
        "--quiet-history", type=int, default=120, help="older messages per quiet event (120)"
    )
    m.add_argument(
        "--write-rate", type=float, help="writes/s (default: half the measured write capacity)"
    )
    m.add_argument(
        "--capacity-seconds", type=float, default=5.0, help="closed-loop capacity probe (5)"
    )
    m.add_argument("--writer-processes", type=int, default=2, help="writer processes (2)")
    m.add_argument(
        "--read-rate", type=float, default=40.0, help="reads/s over WebSocket and REST (40)"
    )
    m.add_argument(
        "--store-read-rate", type=float, default=20.0, help="reads/s at the store level (20)"
    )
    m.add_argument(
        "--mix",
        type=_mix,
        default=MixedOptions().mix,
        help="operation weights (latest=0.35,scroll=0.3,since=0.25,unread=0.1)",
    )
    m.add_argument("--absence", type=int, default=50, help="messages missed before a since (50)")
    m.add_argument(
        "--unread-lag", type=float, default=1.0, help="readers' positions kept behind by (1 s)"
    )
    m.add_argument("--page", type=int, default=50, help="messages per history page (50)")
    m.add_argument(
        "--storm-subscribers", type=int, default=1000, help="resume storm size; 0 skips it (1000)"
    )
    m.add_argument(
        "--storm-window", type=float, default=1.0, help="seconds the storm is spread over (1)"
    )
    _results_option(m)
    _gateway_env_option(m)

    a = sub.add_parser("abuse", help="hostile clients: gateway RSS, victim p99, how limited")
    a.add_argument(
        "--attacks",
        default=",".join(ATTACKS),
        help=f"comma-separated, in order ({','.join(ATTACKS)})",
    )
    a.add_argument("--duration", type=float, default=10.0, help="seconds per attack (10)")
    a.add_argument("--url", help="target a running gateway (no RSS figure then)")
    _results_option(a)
    _gateway_env_option(
        a, "setting for the gateway subprocess (repeatable); its limits are the defaults"
    )

    sub.add_parser("store-write", help="bench/store_write.py", add_help=False)
    sub.add_parser("cql-server", help="bench/cql_server.py", add_help=False)
    return parser


def _save(title: str, command: str, data: object, root: Path | None) -> None:
    directory = results_dir(root)
    result = {"title": title, "command": command, "machine": machine(), "result": data}
    (directory / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    body = json.dumps(data, indent=2, default=str)
    (directory / "summary.md").write_text(
        f"# {title}\n\nCommand: `{command}`\n\n```json\n{body}\n```\n"
    )
    print(f"results: {directory}")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in args_list)
    if args_list[:1] == ["store-write"]:
        from bench import store_write

        return store_write.main(args_list[1:])
    if args_list[:1] == ["cql-server"]:
        from bench import cql_server

        return cql_server.main(args_list[1:])
    args = build_parser().parse_args(args_list)
    if args.command == "write-load":
        options = WriteLoadOptions(
            mode="open" if args.rate is not None else "closed",
            rate=args.rate or 0.0,
            concurrency=args.concurrency or 256,
            duration=args.duration,
            warmup=args.warmup,
            drain=args.drain,
            processes=args.processes,
            events=args.events,
            participants=args.participants,
            text_bytes=args.text_bytes,
            url=args.url,
            verify=not args.no_verify,
            delivery_order=args.delivery_order,
            workers=args.workers,
            drops_per_minute=args.drops,
            baseline=args.baseline,
            results_root=args.results,
            gateway_env=dict(args.gateway_env),
            command=command,
        )
        return run_write_load(options)
    if args.command == "chaos":
        from bench.chaos.run import ChaosOptions, run_chaos

        return run_chaos(
            ChaosOptions(
                duration=args.duration,
                seed=args.seed,
                nodes=args.nodes,
                events=args.events,
                participants=args.participants,
                results_root=args.results,
                command=command,
            )
        )
    if args.command == "mixed":
        from bench.load.mixed import run_mixed

        return run_mixed(
            MixedOptions(
                duration=args.duration,
                warmup=args.warmup,
                drain=args.drain,
                events=args.events,
                writers=args.writers,
                readers=args.readers,
                quiet_events=args.quiet_events,
                history=args.history,
                quiet_history=args.quiet_history,
                write_rate=args.write_rate,
                capacity_seconds=args.capacity_seconds,
                writer_processes=args.writer_processes,
                read_rate=args.read_rate,
                store_read_rate=args.store_read_rate,
                mix=args.mix,
                absence=args.absence,
                page=args.page,
                unread_lag=args.unread_lag,
                storm_subscribers=args.storm_subscribers,
                storm_window=args.storm_window,
                results_root=args.results,
                gateway_env=dict(args.gateway_env),
                command=command,
            )
        )
    if args.command == "connections":
        from bench.load.connections import run_connections

        figures = run_connections(args.count, args.processes, args.url)
        for key, value in figures.items():
            print(
                f"  {key:<32} {value:,.2f}" if isinstance(value, float) else f"  {key:<32} {value}"
            )
        _save(f"connections: {args.count}", command, figures, args.results)
        return 0
    if args.command == "abuse":
        from bench.load.abuse import print_table, run_abuse

        attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
        unknown = sorted(set(attacks) - set(ATTACKS))
        if unknown:
            raise SystemExit(f"unknown attacks {unknown}; known: {', '.join(ATTACKS)}")
        rows = run_abuse(attacks, args.duration, args.url, dict(args.gateway_env))
        print_table(rows)
        _save(f"abuse: {', '.join(attacks)}", command, rows, args.results)
        return 0
    if args.command == "fanout":
        from bench.load.fanout import run_fanout

        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        rows = run_fanout(sizes, args.rate, args.duration, args.processes, args.url)
        _save(f"fanout: {args.sizes}", command, rows, args.results)
        return 0
    return 2
