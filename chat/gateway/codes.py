"""The codes the gateway answers with: ``error`` frame codes and WebSocket close codes.

Stable: clients branch on them. ``docs/protocol.md`` and the AsyncAPI document list them with
the docstrings written here.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame. Stable: clients branch on these, never on messages.

    The first group means the frame itself was wrong (fix the client); the second means the
    frame was fine but not allowed now; the third comes from the service (see ``chat.errors``).
    None of them closes the connection except ``unauthorized`` during authentication.
    """

    # The frame is broken.
    MALFORMED_JSON = "malformed_json"
    """The text frame is not valid JSON (or not valid UTF-8)."""
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    """A binary WebSocket frame arrived; the protocol uses text frames only."""
    INVALID_FRAME = "invalid_frame"
    """The JSON value is not an object, or its ``id`` is neither a string nor an integer."""
    UNKNOWN_TYPE = "unknown_type"
    """The ``type`` names no client frame."""
    MISSING_FIELD = "missing_field"
    """A required field (named in ``field``) is absent."""
    UNKNOWN_FIELD = "unknown_field"
    """The frame has a field (named in ``field``) that its type does not define."""
    WRONG_TYPE = "wrong_type"
    """A field has the wrong JSON type, e.g. a string where an integer belongs."""
    INVALID_VALUE = "invalid_value"
    """A field has the right type but a value out of range or of the wrong form."""
    # The frame is well-formed but not allowed now.
    NOT_AUTHENTICATED = "not_authenticated"
    """Only ``hello``, ``ping`` and ``pong`` are allowed before ``welcome``."""
    ALREADY_AUTHENTICATED = "already_authenticated"
    """A ``hello`` arrived after authentication had started or finished."""
    RATE_LIMITED = "rate_limited"
    """Too many frames, or too many writes (of the connection or of the user); the frame was
    not acted on and ``retry_after_ms`` says when the next one will be accepted."""
    TOO_MANY_CONNECTIONS = "too_many_connections"
    """The user already has ``limits.max_connections_per_user`` connections open on this
    server; the connection closes with 4429."""
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    """The connection already has ``limits.max_subscriptions`` subscriptions."""
    ALREADY_SUBSCRIBED = "already_subscribed"
    """The connection is already subscribed (or subscribing) to that event."""
    NOT_SUBSCRIBED = "not_subscribed"
    """``unsubscribe`` for an event the connection is not subscribed to."""
    TEXT_TOO_LONG = "text_too_long"
    """``text`` is longer than ``limits.max_text_chars`` characters."""
    TOO_MANY_ATTACHMENTS = "too_many_attachments"
    """More than ``limits.max_attachments`` attachments."""
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    """One attachment reference is longer than ``limits.max_attachment_bytes`` UTF-8 bytes."""
    # From the service (the ChatError codes).
    UNAUTHORIZED = "unauthorized"
    """The token is missing, invalid or expired; the connection closes with 4401."""
    FORBIDDEN = "forbidden"
    """The user may not do this (e.g. edit someone else's message)."""
    NOT_FOUND = "not_found"
    """No such event or message — also what a non-participant hears about an event."""
    VALIDATION_FAILED = "validation_failed"
    """The service's rules rejected the content; ``errors`` lists each field."""
    CONFLICT = "conflict"
    """E.g. a ``client_msg_id`` reused with different content, or a write to a ``CANCELED``
    event (its chat is read-only)."""
    UNAVAILABLE = "unavailable"
    """The store is overloaded or down, or (with several gateway nodes) this node is cut off
    from the others or still joining them; retry later with the same ``client_msg_id``."""
    INTERNAL_ERROR = "internal_error"
    """A server bug; nothing internal is disclosed. Retrying may work."""


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses, and why."""

    NORMAL = 1000
    """The client or the server ended the session normally."""
    GOING_AWAY = 1001
    """The server is shutting down; reconnect and resume from your cursors."""
    MESSAGE_TOO_BIG = 1009
    """A frame exceeded ``limits.max_frame_bytes``."""
    INTERNAL_ERROR = 1011
    """A server bug; nothing internal is disclosed. Reconnect and resume."""
    TRY_AGAIN_LATER = 1013
    """Authentication could not be checked (the database is unavailable); the token may well
    be good: reconnect with it after a delay."""
    TOO_SLOW = 4008
    """The client fell too far behind its outgoing queue; reconnect and resume from the cursor."""
    UNAUTHORIZED = 4401
    """No valid token within ``limits.auth_timeout_ms``, the token was rejected, or it expired
    while the connection was open."""
    IDLE_TIMEOUT = 4408
    """Nothing was received from the client for ``limits.idle_timeout_ms``."""
    TOO_MANY_CONNECTIONS = 4429
    """The user already has ``limits.max_connections_per_user`` connections on this server."""
