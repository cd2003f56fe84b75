"""Changes REST commits on one node that every node's caches must hear: memberships and event
statuses, carried as ``chat.node`` messages (``member``, ``status``).

A change made here is published; one received is applied as if made here, without being
published again. Both travel numbered with the rest of the node's messages, so a lost one is
noticed (a gap) and the receiver re-checks what it cached (``ChatService.bus_trouble``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.gateway.event_status import EventStatuses
from chat.gateway.membership import Membership

Publish = Callable[[dict[str, Any]], None]


class Relays:
    """Publishes this node's membership and status changes; applies the others'."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._membership: Membership | None = None
        self._statuses: EventStatuses | None = None
        self._applying = False

    def membership(self, membership: Membership) -> None:
        self._membership = membership
        membership.add_listener(self._member_changed)

    def statuses(self, statuses: EventStatuses) -> None:
        self._statuses = statuses
        statuses.on_change = self._status_changed

    def close(self) -> None:
        if self._membership is not None:
            self._membership.remove_listener(self._member_changed)
        if self._statuses is not None:
            self._statuses.on_change = None

    def received(self, kind: str, body: dict[str, Any]) -> bool:
        """Apply another node's change; False when ``kind`` is not a relayed change."""
        self._applying = True
        try:
            if kind == "member" and self._membership is not None:
                self._membership.changed(int(body["e"]), int(body["u"]), present=body["p"])
            elif kind == "status" and self._statuses is not None:
                self._statuses.changed(int(body["e"]), str(body["st"]))
            else:
                return kind in ("member", "status")
        finally:
            self._applying = False
        return True

    def _member_changed(self, event_id: int, user_id: int, present: bool) -> None:
        if not self._applying:
            self._publish({"k": "member", "e": event_id, "u": user_id, "p": present})

    def _status_changed(self, event_id: int, status: str) -> None:
        if not self._applying:
            self._publish({"k": "status", "e": event_id, "st": status})
