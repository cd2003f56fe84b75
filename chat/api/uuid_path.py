"""The ``uuid`` path parameter type (message ids), case-insensitive.

Starlette's built-in ``uuid`` convertor accepts lower-case hex only, so a client that prints
ids in upper case would meet a 404 for a message that exists. This one accepts either case
and hands the handler a :class:`uuid.UUID`; anything that is not a UUID does not match the
route at all (a plain 404), so a malformed id never reaches the store and can never be a 500.
"""

from __future__ import annotations

import uuid

from starlette.convertors import Convertor, register_url_convertor

from chat.api.endpoint import Call


class UuidConvertor(Convertor[uuid.UUID]):
    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(value)


def register() -> None:
    """Replace Starlette's lower-case-only ``uuid`` convertor (call before routes are built)."""
    register_url_convertor("uuid", UuidConvertor())


def path_uuid(call: Call, name: str) -> uuid.UUID:
    """A ``{name:uuid}`` path parameter; either convertor yields a :class:`uuid.UUID`."""
    value = call.request.path_params[name]
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
