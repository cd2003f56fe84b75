"""REST operations: payments."""

from __future__ import annotations

from chat.api.endpoint import Api

api = Api(prefix="")
