"""Path parameter types. Ids are positive 64-bit integers; anything else in an id position is a
plain 404 (a route that does not exist), never a database error from an out-of-range value."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[int]):
    # At most 18 digits keeps every matched value below 2**63 - 1 (a BIGINT).
    regex = "[1-9][0-9]{0,17}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


def register() -> None:
    register_url_convertor("id", IdConvertor())
