"""``python -m bench``: the command line of every benchmark.

- ``write-load``   the gateway's write path under open- or closed-loop load (issue 6);
- ``connections``  many idle authenticated connections: connect time, memory per connection;
- ``fanout``       one sender to N subscribers: delivery latency;
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
from bench.load.report import machine, results_dir
from bench.load.verify import DELIVERY_ORDERS
from bench.load.write_load import WriteLoadOptions, run_write_load


def _env_pair(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.startswith("CHAT_"):
        raise argparse.ArgumentTypeError(f"expected CHAT_NAME=value, got {text!r}")
    return name, value


def _gateway_env_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--gateway-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="CHAT_NAME=value",
        help=help_text,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("write-load", help="drive the gateway's write path; verify; report")
    loop = w.add_mutually_exclusive_group()
    loop.add_argument("--rate", type=float, help="open loop: messages/s at fixed arrival times")
    loop.add_argument("--concurrency", type=int, help="closed loop: sends in flight (default 256)")
    w.add_argument("--duration", type=float, default=10.0, help="measured seconds (10)")
    w.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    w.add_argument("--drain", type=float, default=15.0, help="max seconds to wait for acks (15)")
    w.add_argument("--processes", type=int, default=2, help="load-generator processes (2)")
    w.add_argument("--events", type=int, default=100, help="events (100)")
    w.add_argument("--participants", type=int, default=5, help="participants per event (5)")
    w.add_argument("--text-bytes", type=int, default=100, help="message text size (100)")
    w.add_argument("--url", help="target a running gateway (http://host:port) instead")
    w.add_argument("--no-verify", action="store_true", help="skip reading the store back")
    w.add_argument(
        "--delivery-order",
        choices=DELIVERY_ORDERS,
        default="store",
        help="deliveries in store order (one node), or in each sender's order (several nodes)",
    )
    w.add_argument("--baseline", choices=["echo"], help="also run against a bare echo server")
    w.add_argument("--results", type=Path, help="results root (bench/results)")
    _gateway_env_option(w, "extra setting for the gateway subprocess (repeatable)")

    c = sub.add_parser("connections", help="idle authenticated connections: time and memory")
    c.add_argument("--count", type=int, default=10000, help="connections (10000)")
    c.add_argument("--processes", type=int, default=2, help="generator processes (2)")
    c.add_argument("--url", help="target a running gateway (no memory figure then)")
    c.add_argument("--results", type=Path, help="results root (bench/results)")

    f = sub.add_parser("fanout", help="one sender to N subscribers: delivery p50/p99")
    f.add_argument("--sizes", default="10,100,1000", help="subscriber counts (10,100,1000)")
    f.add_argument("--rate", type=float, default=20.0, help="sender's messages/s (20)")
    f.add_argument("--duration", type=float, default=5.0, help="seconds per size (5)")
    f.add_argument("--processes", type=int, default=2, help="generator processes (2)")
    f.add_argument("--url", help="target a running gateway")
    f.add_argument("--results", type=Path, help="results root (bench/results)")

    a = sub.add_parser("abuse", help="hostile clients: gateway RSS, victim p99, how limited")
    a.add_argument(
        "--attacks",
        default=",".join(ATTACKS),
        help=f"comma-separated, in order ({','.join(ATTACKS)})",
    )
    a.add_argument("--duration", type=float, default=10.0, help="seconds per attack (10)")
    a.add_argument("--url", help="target a running gateway (no RSS figure then)")
    a.add_argument("--results", type=Path, help="results root (bench/results)")
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
            baseline=args.baseline,
            results_root=args.results,
            gateway_env=dict(args.gateway_env),
            command=command,
        )
        return run_write_load(options)
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
