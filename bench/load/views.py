"""Does every client's own view match the store? Gaps, duplicates and order, per client.

A client that follows docs/protocol.md (:mod:`bench.load.resuming_client`) keeps, per event,
every ``message`` id it received — live or replayed — from its first ``subscribed`` on. The
store owes it every message of the event after that first cursor, exactly once, in store
order, removals included (a user added back resumes from its cursor and the replay fills the
time it was away). Pure functions over plain records, like :mod:`bench.load.verify`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bench.load.verify import Problems, StoredMessage

VIEW_FAILURES = ("gap", "duplicate", "out_of_order", "not_stored", "after_removal")


def cursor_message_id(cursor: str) -> str:
    """The message id inside a cursor (the bench may look inside; clients must not)."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return str(uuid.UUID(bytes=raw[1:17]))


@dataclass(frozen=True, slots=True)
class ClientView:
    """What one client saw of one event (see ``EventView``)."""

    user_id: int
    event_id: int
    start: str | None
    received: Sequence[str]
    stray: Sequence[str] = ()


@dataclass
class ViewCheck(Problems):
    FAILURES: ClassVar[tuple[str, ...]] = VIEW_FAILURES
    checked: int = 0

    @property
    def gaps(self) -> int:
        return self.counts["gap"]

    @property
    def duplicates(self) -> int:
        return self.counts["duplicate"]

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked_views": self.checked,
            "problems": {k: self.counts[k] for k in sorted(self.counts)},
            "examples": self.examples,
        }


def check_views(
    views: Iterable[ClientView], stored: Mapping[int, Sequence[StoredMessage]]
) -> ViewCheck:
    """Every view against its event's stored messages (store order, oldest first)."""
    result = ViewCheck()
    for view in views:
        result.checked += 1
        messages = [m.message_id for m in stored.get(view.event_id, ())]
        index = {message_id: i for i, message_id in enumerate(messages)}
        first = 0
        if view.start is not None and uuid.UUID(cursor_message_id(view.start)).time:
            start_id = cursor_message_id(view.start)  # (time 0: the event's beginning)
            if start_id not in index:
                result.problem("not_stored", f"user {view.user_id}: start {start_id} not stored")
                continue
            first = index[start_id] + 1
        where = f"user {view.user_id}, event {view.event_id}"
        seen: set[str] = set()
        last = -1
        for message_id in view.received:
            if message_id in seen:
                result.problem("duplicate", f"{where}: {message_id}")
                continue
            seen.add(message_id)
            at = index.get(message_id)
            if at is None:
                result.problem("not_stored", f"{where}: received {message_id}, not in the store")
                continue
            if at < last:
                result.problem("out_of_order", f"{where}: {message_id} after a later one")
            last = max(last, at)
        missing = [m for m in messages[first:] if m not in seen]
        if missing:
            result.problem(
                "gap", f"{where}: {len(missing)} missing, e.g. {missing[0]}", len(missing)
            )
        if view.stray:
            result.problem(
                "after_removal",
                f"{where}: {len(view.stray)} frame(s) after the removal, e.g. {view.stray[0]}",
                len(view.stray),
            )
    return result
