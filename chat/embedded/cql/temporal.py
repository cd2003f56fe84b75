"""``timestamp`` and ``date`` literals read as ScyllaDB reads them.

Timestamps (``timestamp_from_string`` in ScyllaDB's types): ``now``, an integer number of
milliseconds, or ``yyyy-mm-dd`` optionally followed by ``[ T]hh:mm``, ``:ss`` and a fraction of
at most three digits, then a time zone: ``+hh``, ``+hhmm``, ``+hh:mm`` (or ``-``), ``z``/``Z``,
``UTC`` or ``GMT`` (spaces around it allowed), or nothing — the server's local time zone, as
ScyllaDB uses its host's. More than three fraction digits is an error, as in ScyllaDB.

Dates: an integer is the raw unsigned day number (2^31 is the epoch), or ``[-]y-m-d`` in the
proleptic Gregorian calendar, within ScyllaDB's range -5877641-06-23 .. 5881580-07-11.

Failures raise :class:`MarshalError` with ScyllaDB's text; a literal that fails is answered
with an Invalid error carrying it.
"""

from __future__ import annotations

import datetime
import time

from chat.embedded.cql.marshal import MarshalError

DATE_EPOCH = 2**31
_UTC_NAMES = frozenset({"z", "utc", "gmt"})


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _integer(text: str) -> int | None:
    """What strtoll takes as a whole string: optional spaces, a sign, digits."""
    body = text.strip()
    if body[:1] in "+-":
        body = body[1:]
    if not body or not _digits(body):
        return None
    return int(text)


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of a timestamp literal."""
    lowered = text.lower()
    if lowered == "now":
        return time.time_ns() // 1_000_000
    whole = _integer(lowered)
    if whole is not None:
        return whole
    try:
        return _date_time(lowered)
    except MarshalError as exc:
        raise MarshalError(f"unable to parse date '{text}': marshaling error: {exc}") from None
    except (ValueError, OverflowError):
        raise MarshalError(f"unable to parse date '{text}'") from None


def _take(text: str, pos: int, count: int | None = None) -> tuple[str, int]:
    """Digits at ``pos``: exactly ``count`` of them, or as many as there are."""
    end = pos
    while end < len(text) and text[end].isdigit() and (count is None or end - pos < count):
        end += 1
    taken = text[pos:end]
    if not taken or (count is not None and len(taken) != count):
        raise MarshalError(f"Unable to parse timestamp from '{text}'")
    return taken, end


def _date_time(text: str) -> int:
    year, pos = _take(text, 0, 4)
    month = day = ""
    for part in ("month", "day"):
        if text[pos : pos + 1] != "-":
            raise MarshalError(f"Unable to parse timestamp from '{text}'")
        value, pos = _take(text, pos + 1)
        if part == "month":
            month = value
        else:
            day = value
    hour = minute = second = 0
    millis = 0
    if text[pos : pos + 1] in (" ", "t") and text[pos + 1 : pos + 2].isdigit():
        h, after = _take(text, pos + 1)
        if text[after : after + 1] == ":" and text[after + 1 : after + 2].isdigit():
            m, pos = _take(text, after + 1)
            hour, minute = int(h), int(m)
            if text[pos : pos + 1] == ":" and text[pos + 1 : pos + 2].isdigit():
                s, pos = _take(text, pos + 1)
                second = int(s)
                if text[pos : pos + 1] == "." and text[pos + 1 : pos + 2].isdigit():
                    fraction, pos = _take(text, pos + 1)
                    if len(fraction) > 3:
                        raise MarshalError(
                            f"Milliseconds length exceeds expected ({len(fraction)})"
                        )
                    millis = int(fraction.ljust(3, "0"))
    moment = datetime.datetime(int(year), int(month), int(day), hour, minute, second)
    zone = text[pos:]
    offset = _utc_offset(zone)
    if offset is None:  # no zone: local time, as ScyllaDB reads it with its host's zone
        seconds = int(moment.timestamp())
    else:
        seconds = int(moment.replace(tzinfo=datetime.UTC).timestamp()) - offset
    return seconds * 1000 + millis


def _utc_offset(zone: str) -> int | None:
    """Seconds east of UTC; None for no zone at all."""
    if zone == "":
        return None
    if zone.strip() in _UTC_NAMES:
        return 0
    if zone[:1] in "+-":
        body = zone[1:]
        if len(body) >= 2 and _digits(body[:2]):
            hours, rest = int(body[:2]), body[2:]
            if rest.startswith(":"):
                rest = rest[1:]
            if rest == "" or (len(rest) == 2 and _digits(rest)):
                minutes = int(rest) if rest else 0
                total = hours * 3600 + minutes * 60
                return -total if zone[0] == "-" else total
    raise MarshalError(f"Unable to parse timezone '{zone}'")


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, for any year."""
    year -= month <= 2
    era = year // 400  # floor division: the era of negative years too
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _valid_day(year: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    return day <= days


def parse_date(text: str) -> int:
    """The serialized day number (unsigned, epoch at 2^31) of a date literal."""
    lowered = text.lower()
    whole = _integer(lowered)
    if whole is not None:
        if not 0 <= whole < 2**32:
            raise MarshalError(f"Input date {text} is out of bounds")
        return whole
    parts = lowered[1:].split("-") if lowered.startswith("-") else lowered.split("-")
    if len(parts) != 3 or not all(_digits(p) for p in parts):
        raise MarshalError(f"Unable to coerce '{lowered}' to a formatted date (long)")
    year, month, day = (int(p) for p in parts)
    if lowered.startswith("-"):
        year = -year
    if not _valid_day(year, month, day):
        raise MarshalError(f"Unable to coerce '{lowered}' to a formatted date (long)")
    days = _days_from_civil(year, month, day)
    if days < -(2**31):
        raise MarshalError(f"Input date {lowered} is less than min supported date -5877641-06-23")
    if days > 2**31 - 1:
        raise MarshalError(f"Input date {lowered} is greater than max supported date 5881580-07-11")
    return days + DATE_EPOCH
