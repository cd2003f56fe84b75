"""Rules for open slots: when a slot may be offered, changed, withdrawn and booked.

No I/O. The store enforces the state part (available, not deleted, not yours) in its
conditional UPDATEs; these functions hold the time rules so they are tested without a database
and so every endpoint words its refusals the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chat.errors import FieldError, ValidationFailed

# A slot offered further ahead than this is almost certainly a typo (year 2205 for 2025), and
# the bound keeps start + duration far from datetime's year-9999 ceiling.
MAX_LEAD_TIME = timedelta(days=3 * 366)
MIN_DURATION_MINUTES = 1
MAX_DURATION_MINUTES = 24 * 60


def check_slot_start(start_time: datetime, now: datetime, field: str = "body/start_time") -> None:
    """A slot must start in the future and within :data:`MAX_LEAD_TIME`.

    A slot in the past could never be booked (booking needs a future start), so offering one is
    a client mistake, reported as a field error.
    """
    if start_time <= now:
        raise ValidationFailed(
            "a slot must start in the future",
            errors=[FieldError(field, f"must be after the current time {now.isoformat()}")],
        )
    if start_time - now > MAX_LEAD_TIME:
        raise ValidationFailed(
            "a slot may be offered at most three years ahead",
            errors=[FieldError(field, f"must be before {(now + MAX_LEAD_TIME).isoformat()}")],
        )


def slot_end(start_time: datetime, duration_minutes: int) -> datetime:
    """When a booked slot's event ends."""
    return start_time + timedelta(minutes=duration_minutes)
