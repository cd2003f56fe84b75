"""What one node knows of the others' presence: who is subscribed where, who types, until when.

Every node publishes its whole presence map each heartbeat and deltas in between
(:class:`chat.bus.hub.NatsHub`); this table keeps what arrived, per origin node, until the
node's heartbeats stop for ``ttl`` seconds. A heartbeat goes out in parts small enough for
any NATS server (:func:`presence_parts`), and counts only once all its parts arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PRESENCE_PART_BYTES = 64 * 1024
"""The most a presence heartbeat part carries (NATS refuses messages over ``max_payload``,
1 MiB by default): a node with many subscribed users sends several parts."""


@dataclass(slots=True)
class NodePresence:
    """One other node's users per event, its typists, and when it expires."""

    expires: float
    events: dict[int, set[int]] = field(default_factory=dict)
    typing: dict[int, set[int]] = field(default_factory=dict)
    beat: int = -1
    parts: dict[int, dict[int, set[int]]] = field(default_factory=dict)


class PresenceTable:
    """The other nodes' presence, as their heartbeats and deltas told it."""

    def __init__(self, clock: Callable[[], float], ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self.nodes: dict[str, NodePresence] = {}

    def node(self, origin: str, ttl: float | None = None) -> NodePresence:
        """The node's entry, created or kept alive for another ``ttl`` seconds."""
        node = self.nodes.get(origin)
        expires = self._clock() + (ttl if ttl is not None else self._ttl)
        if node is None:
            node = self.nodes[origin] = NodePresence(expires)
        node.expires = max(node.expires, expires)
        return node

    def users(self, event_id: int) -> set[int]:
        users: set[int] = set()
        for node in self.nodes.values():
            users |= node.events.get(event_id, set())
        return users

    def present(self, event_id: int, user_id: int) -> bool:
        return any(user_id in n.events.get(event_id, ()) for n in self.nodes.values())

    def typists(self, event_id: int) -> set[int]:
        users: set[int] = set()
        for node in self.nodes.values():
            users |= node.typing.get(event_id, set())
        return users

    def heartbeat_part(self, origin: str, body: Mapping[str, Any]) -> dict[int, set[int]] | None:
        """Take one part of a heartbeat; the node's whole map once every part arrived.

        Parts of an older heartbeat still missing when a newer one starts are given up: a
        node whose parts keep getting lost keeps its last complete map until it expires.
        """
        node = self.node(origin, float(body["ttl"]))
        beat = int(body["b"])
        if beat != node.beat:
            node.beat, node.parts = beat, {}
        node.parts[int(body["i"])] = {int(e): set(u) for e, u in body["events"].items()}
        if len(node.parts) < int(body["m"]):
            return None
        events: dict[int, set[int]] = {}
        for part in node.parts.values():
            events.update(part)
        node.parts = {}
        return events

    def expired(self) -> list[str]:
        now = self._clock()
        return [origin for origin, node in self.nodes.items() if node.expires <= now]

    def forget(self, origin: str) -> NodePresence | None:
        return self.nodes.pop(origin, None)

    def stop_listening(self, event_id: int) -> None:
        """This node no longer hears the event: who types there is unknown from here on."""
        for node in self.nodes.values():
            node.typing.pop(event_id, None)


def presence_parts(
    presence: Mapping[int, frozenset[int]], limit: int = PRESENCE_PART_BYTES
) -> list[dict[str, list[int]]]:
    """A presence map split into parts of at most about ``limit`` encoded bytes (at least
    one part, empty for a node nobody is subscribed on)."""
    parts: list[dict[str, list[int]]] = [{}]
    size = 0
    for event_id, users in presence.items():
        entry = sorted(users)
        cost = 24 + 21 * len(entry)  # a 64-bit id in JSON: at most 20 digits and a comma
        if size + cost > limit and parts[-1]:
            parts.append({})
            size = 0
        parts[-1][str(event_id)] = entry
        size += cost
    return parts


def set_typing(typing: dict[int, set[int]], event_id: int, user_ids: list[int]) -> None:
    """Record who types in the event; an event nobody types in has no entry."""
    if user_ids:
        typing[event_id] = set(user_ids)
    else:
        typing.pop(event_id, None)
