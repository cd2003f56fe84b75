"""REST operations: events."""

from __future__ import annotations

from chat.api.endpoint import Api

api = Api(prefix="")
