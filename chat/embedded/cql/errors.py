"""Errors the embedded CQL server sends back, each carrying its native-protocol error code.

The engine raises these; the server turns them into ERROR frames. Only the server decides how
a code is laid out on the wire (some codes carry extra fields, e.g. Unprepared carries the id).
"""

from __future__ import annotations


class CqlError(Exception):
    """Root of every error the embedded CQL server reports to a client."""

    code: int = 0x0000  # Server error

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerError(CqlError):
    code = 0x0000


class ProtocolError(CqlError):
    code = 0x000A


class BadCredentials(CqlError):
    code = 0x0100


class CqlSyntaxError(CqlError):
    code = 0x2000


class Unauthorized(CqlError):
    code = 0x2100


class InvalidRequest(CqlError):
    code = 0x2200


class ConfigurationError(CqlError):
    code = 0x2300


class AlreadyExists(CqlError):
    """A keyspace or table that exists already; ``table`` is empty for a keyspace."""

    code = 0x2400

    def __init__(self, message: str, keyspace: str, table: str = "") -> None:
        super().__init__(message)
        self.keyspace = keyspace
        self.table = table


class Unavailable(CqlError):
    """Not enough replicas alive for the consistency level (required > alive)."""

    code = 0x1000

    def __init__(self, message: str, consistency: int, required: int, alive: int) -> None:
        super().__init__(message)
        self.consistency = consistency
        self.required = required
        self.alive = alive


class Overloaded(CqlError):
    """The node sheds the request (ScyllaDB's ``overloaded_exception``); a retry may succeed.

    The driver treats it as a request error (``RetryPolicy.on_request_error``): the default
    policy tries the next host, and with none left raises ``NoHostAvailable`` naming it.
    """

    code = 0x1001


class WriteFailure(CqlError):
    """A write that was not made durable (the commit log failed): never acknowledged.

    Encoded with the protocol v4 Write_failure fields (consistency, received, block_for,
    failures, write type); the driver raises it to the application instead of retrying.
    """

    code = 0x1500

    def __init__(self, message: str, write_type: str = "SIMPLE") -> None:
        super().__init__(message)
        self.write_type = write_type


class Unprepared(CqlError):
    """An EXECUTE named a statement id this server does not know (e.g. after a restart)."""

    code = 0x2500

    def __init__(self, message: str, statement_id: bytes) -> None:
        super().__init__(message)
        self.statement_id = statement_id
