"""JSON numbers as JSON Schema reads them: one rule for REST bodies and WebSocket frames.

JSON Schema counts ``62.0`` as an integer, so a client generated from either contract (the
OpenAPI or the AsyncAPI document) may send it; both interfaces therefore accept it as 62.
"""

from __future__ import annotations

MAX_EXACT_FLOAT = 2**53
"""Beyond 2**53 a float no longer holds every integer exactly: there only plain digits are
integers."""


def integral(value: object) -> object:
    """A JSON number with no fractional part is an integer, however it is written.

    Booleans and strings are not numbers. Values that are not integral numbers pass through
    unchanged, for the integer validation behind this to refuse with its usual message.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_FLOAT:
        return int(value)
    return value
