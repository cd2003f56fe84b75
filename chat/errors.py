"""The project's one exception root, and the error tree under it.

Every error knows how it reaches a client: its HTTP status and problem type for the REST API
(RFC 9457 ``application/problem+json``) and its WebSocket error code or close code for the
gateway. Messages say what failed and, where it helps, what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: a JSON-pointer-like location and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ChatError(Exception):
    """Root of every error the service reports to a client.

    ``code`` is the stable machine-readable name (also the WebSocket error code and the last
    segment of the problem ``type``); ``detail`` is the human sentence.
    """

    status: ClassVar[int] = 500
    code: str = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": f"https://timingle.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class BadRequest(ChatError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class MalformedJson(BadRequest):
    code = "malformed_json"
    title = "Malformed JSON body"


class ValidationFailed(ChatError):
    status = 422
    code = "validation_failed"
    title = "Invalid input"


class Unauthorized(ChatError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="timingle"'}, **extra)


class Forbidden(ChatError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(ChatError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(ChatError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class UpgradeRequired(ChatError):
    """A plain HTTP request to the WebSocket endpoint."""

    status = 426
    code = "upgrade_required"
    title = "Upgrade required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Upgrade": "websocket", "Connection": "Upgrade"})


class Conflict(ChatError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    """A state-machine move that the current state does not allow."""

    code = "invalid_transition"
    title = "Transition not allowed"

    def __init__(self, what: str, current: str, target: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (terminal state)"
        super().__init__(
            f"cannot move {what} from {current} to {target}; allowed from {current}: "
            f"{allowed_text}",
            current_status=current,
            requested_status=target,
            allowed=allowed,
        )


class PayloadTooLarge(ChatError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(ChatError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimited(ChatError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(ChatError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"


class TooManyConnections(RateLimited):
    """A user opened more WebSocket connections than one server process allows them."""

    code = "too_many_connections"
    title = "Too many connections"


class FrameError(ChatError):
    """A WebSocket client frame the gateway cannot act on: answered with one ``error`` frame,
    never a close.

    ``code`` is one of the gateway's error codes (:class:`chat.gateway.codes.ErrorCode`), set
    per frame rather than per class; ``ref`` is the ``id`` of the frame it answers, ``field``
    the field at fault, ``retry_after_ms`` when a refused frame may be sent again.
    """

    status = 400
    title = "Frame refused"

    def __init__(
        self,
        code: str,
        message: str,
        *,
        ref: int | str | None = None,
        field: str | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.field = field
        self.retry_after_ms = retry_after_ms
