"""What a hub learns from the other nodes: the plug-in point of cross-node fan-out.

The gateway's :class:`~chat.gateway.hub.LocalHub` knows the connections of one process. A
cross-node fan-out (the NATS bus, :mod:`chat.bus.hub`) wraps such a hub and tells it, through
this interface, who is subscribed elsewhere, so that presence frames count every node. The
gateway defines the interface and never imports the bus; the application wires the bus in.
"""

from __future__ import annotations

from typing import Protocol


class Peers(Protocol):
    """Presence on the other nodes, as far as this node has heard of it."""

    def users(self, event_id: int) -> set[int]:
        """Users subscribed to the event on other nodes."""

    def present(self, event_id: int, user_id: int) -> bool:
        """Whether the user is subscribed to the event on another node."""
