"""The ``chat`` command: serve, migrate, mint tokens, manage accounts, run the embedded CQL
server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pydantic import ValidationError

from chat.config import Settings
from chat.gc_tuning import tune_for_server
from chat.logs import configure_logging, logging_config


def configuration_errors(exc: ValidationError) -> str:
    """One line per invalid setting, naming its variable; never the value (it may be a secret)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        where = f"CHAT_{name}: " if name else ""
        lines.append(f"  {where}{error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def _configure_logging(settings: Settings) -> None:
    """One handler for every logger (see :mod:`chat.logs`): text or JSON, secrets redacted."""
    configure_logging(settings.log_level, settings.log_format)


WS_MAX_SIZE_SLACK = 4096


def _serve(settings: Settings) -> int:
    import uvicorn

    from chat.app import create_app
    from chat.gateway.transport import GatewayWebSocketProtocol

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        # websockets-sansio with bounded send buffers and graceful (1001) shutdown.
        ws=GatewayWebSocketProtocol,
        # The server refuses (1009) frames far past the gateway's limit before buffering them
        # whole; the slack lets the gateway itself answer frames just over it.
        ws_max_size=settings.ws_max_frame_bytes + WS_MAX_SIZE_SLACK,
        # uvicorn's default is on; compression is per-frame CPU and per-connection memory.
        ws_per_message_deflate=settings.ws_per_message_deflate,
        log_level=settings.log_level,
        # uvicorn applies this dict itself: its loggers propagate to the service's one handler.
        log_config=logging_config(settings.log_level, settings.log_format),
        lifespan="on",
        # The app decides whose X-Forwarded-For to believe (CHAT_TRUSTED_PROXIES); uvicorn's
        # own default would trust any local process.
        proxy_headers=False,
        # SIGTERM: stop accepting, let every connection answer what it received and close
        # with 1001 (chat.gateway.transport); past the deadline uvicorn cancels what is left.
        # The lifespan then flushes the stores, so an acked message is always durable.
        timeout_graceful_shutdown=math.ceil(settings.drain_seconds),
    )
    # Everything imported and configured so far lives as long as the process.
    tune_for_server()
    DrainingServer(config).run(sockets=_reuse_port_sockets(settings))
    return 0


def _reuse_port_sockets(settings: Settings) -> list[socket.socket] | None:
    """Under ``chat serve --workers`` the port is shared: bind it with SO_REUSEPORT."""
    from chat.workers import REUSE_PORT_ENV

    if not os.environ.get(REUSE_PORT_ENV):
        return None
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    sock.set_inheritable(True)
    return [sock]


def _draining_server_class() -> type[Any]:
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        """uvicorn's server, but a drained SIGTERM exits 0.

        uvicorn re-raises the signal it caught once it has shut down, so the process dies
        "killed by SIGTERM" (status -15/143) even after a complete, clean drain; orchestrators
        and ``systemd`` then report a failure. SIGTERM is the ordinary way to stop a node, so
        here it only asks for the graceful shutdown. SIGINT keeps uvicorn's behaviour (a second
        Ctrl-C forces the exit).
        """

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGTERM:
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

    return _DrainingServer


def DrainingServer(config: Any) -> Any:  # noqa: N802 - reads as the class it builds
    """A :class:`uvicorn.Server` whose graceful SIGTERM exits 0 (uvicorn imported lazily)."""
    return _draining_server_class()(config)


async def _migrate(settings: Settings, action: str, steps: int) -> int:
    """PostgreSQL first, then the CQL keyspace (``up`` and ``status``; CQL has no ``down``).

    The CQL part runs against configured ScyllaDB contact points only. The embedded CQL server
    belongs to the ``chat serve`` process that starts it (and migrates it at start-up); starting
    a second one here would fight it for its port and data directory.
    """
    import asyncpg

    from chat.app import postgres_dsn
    from chat.store.cql import migrations as cql_migrations
    from chat.store.driver.session import open_cql
    from chat.store.pg import migrations

    async with postgres_dsn(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            if action == "up":
                applied = await migrations.migrate_up(conn)
                print(f"applied {len(applied)} migration(s)")
                for m in applied:
                    print(f"  up   {m.version:06d}_{m.name}")
            elif action == "down":
                reverted = await migrations.migrate_down(conn, steps)
                print(f"reverted {len(reverted)} migration(s)")
                for m in reverted:
                    print(f"  down {m.version:06d}_{m.name}")
            else:
                for row in await migrations.status(conn):
                    when = row.applied_at.isoformat() if row.applied_at else "pending"
                    print(f"{row.version:06d}_{row.name:<32} {when}")
        finally:
            await conn.close()
    if action == "down":
        return 0
    if settings.cql_is_embedded:
        print(
            "CQL: embedded server; `chat serve` applies its migrations at start-up", file=sys.stderr
        )
        return 0
    async with open_cql(settings) as cql:
        if action == "up":
            cql_applied = await cql_migrations.migrate_up(cql, settings)
            print(f"applied {len(cql_applied)} CQL migration(s) to {settings.cql_keyspace}")
            for c in cql_applied:
                print(f"  up   cql {c.version:06d}_{c.name}")
        else:
            for st in await cql_migrations.status(cql, settings):
                when = st.applied_at.isoformat() if st.applied_at else "pending"
                changed = "  (file changed since applied)" if st.changed_since_applied else ""
                print(f"cql {st.version:06d}_{st.name:<28} {when}{changed}")
    return 0


async def _user(settings: Settings, action: str, user_id: int, role: str | None) -> int:
    """Operator changes to an account: its role, or whether it may sign in at all."""
    import asyncpg

    from chat.app import postgres_dsn
    from chat.store.pg import users

    async with postgres_dsn(settings) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            if action == "set-role":
                assert role is not None
                user = await users.set_role(conn, user_id, role)
            else:
                user = await users.set_active(conn, user_id, action == "activate")
        finally:
            await conn.close()
    if user is None:
        print(f"no user {user_id}", file=sys.stderr)
        return 1
    state = "active" if user.is_active else "deactivated"
    print(f"user {user.id} ({user.name}): role {user.role}, {state}")
    return 0


def _token(settings: Settings, user_id: int, ttl: int | None) -> int:
    from chat.auth import TokenService

    print(TokenService.from_settings(settings).mint(user_id, ttl_seconds=ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chat", description="timingle-chat service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP/WebSocket service")
    serve.add_argument("--host", help="bind address (CHAT_HOST)")
    serve.add_argument("--port", type=int, help="bind port (CHAT_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port, fanning out through NATS (CHAT_NATS_URL, or a "
        "private nats-server)",
    )

    migrate = sub.add_parser(
        "migrate", help="apply or list PostgreSQL + CQL migrations (down: PostgreSQL)"
    )
    migrate.add_argument("action", nargs="?", choices=["up", "down", "status"], default="up")
    migrate.add_argument("steps", nargs="?", type=int, default=1, help="how many to revert")

    token = sub.add_parser("token", help="mint a signed access token for USER_ID")
    token.add_argument("user_id", type=int)
    token.add_argument("--ttl", type=int, help="lifetime in seconds (CHAT_TOKEN_TTL_SECONDS)")

    user = sub.add_parser("user", help="operator changes to an account (role, deactivation)")
    user_actions = user.add_subparsers(dest="action", required=True)
    set_role = user_actions.add_parser("set-role", help="make USER_ID a USER or a BUSINESS")
    set_role.add_argument("user_id", type=int)
    set_role.add_argument("role", choices=["USER", "BUSINESS"])
    for action, text in (
        ("deactivate", "refuse USER_ID's tokens on REST and WebSocket from now on"),
        ("activate", "let a deactivated USER_ID sign in again"),
    ):
        user_actions.add_parser(action, help=text).add_argument("user_id", type=int)

    cql = sub.add_parser("cql-server", help="run the embedded CQL server", add_help=False)
    cql.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["cql-server"]:
        from chat.embedded.cql.process import main as cql_main

        return int(cql_main(args_list[1:]))
    args = build_parser().parse_args(args_list)
    overrides = {}
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"chat: invalid configuration\n{configuration_errors(exc)}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "serve":
            if args.workers > 1:
                from chat.workers import serve_workers

                return serve_workers(settings, args.workers)
            return _serve(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings, args.action, args.steps))
        if args.command == "token":
            return _token(settings, args.user_id, args.ttl)
        if args.command == "user":
            return asyncio.run(
                _user(settings, args.action, args.user_id, getattr(args, "role", None))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
