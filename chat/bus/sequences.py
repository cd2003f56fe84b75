"""Per-(node, event) numbers of ``chat.event.<id>`` frames: how a node sees that it missed one.

A node numbers the frames it publishes to each event from 1. Numbers of an event it sent
nothing to for a whole idle period are forgotten (the count starts again at 1), so a node
that has spoken to many events over its life keeps only the busy ones; a receiver takes 1,
and the first frame of a node after it started listening to an event, as a new baseline, not
a gap. Without I/O: :class:`chat.bus.hub.NatsHub` stamps and checks the numbers.
"""

from __future__ import annotations


class EventSequences:
    """The numbers this node sends per event, and the last ones it saw per event and node."""

    def __init__(self, idle: float, now: float) -> None:
        self._idle = idle
        # Outgoing numbers in two generations: a sweep every ``idle`` seconds drops the older
        # one (no frame for a whole period) and demotes the current one, so the hot path is
        # one dict lookup.
        self.current: dict[int, int] = {}
        self.idle: dict[int, int] = {}
        self._next_sweep = now + idle
        # The last number seen per event and origin node; an event's entry lives only while
        # this node listens to it (a new interest starts from new baselines).
        self.seen: dict[int, dict[str, int]] = {}

    def next(self, event_id: int) -> int:
        """The number of this node's next frame to the event."""
        seq = self.current.get(event_id)
        if seq is None:
            seq = self.idle.pop(event_id, 0)
        seq += 1
        self.current[event_id] = seq
        return seq

    def sweep(self, now: float) -> None:
        """Forget the numbers of events this node sent nothing to for a whole period."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._idle
        self.idle, self.current = self.current, {}

    def restart(self) -> None:
        """Number every event from 1 again (this node took a new id)."""
        self.current, self.idle = {}, {}

    def received(self, event_id: int, origin: str, seq: int) -> int | None:
        """Take a frame's number; the last number seen before it when frames were lost."""
        seen = self.seen.get(event_id)
        if seen is None:
            seen = self.seen[event_id] = {}
        last = seen.get(origin)
        seen[origin] = seq
        if last is not None and seq != last + 1 and seq != 1:
            return last
        return None

    def stop_listening(self, event_id: int) -> None:
        self.seen.pop(event_id, None)

    def forget_node(self, origin: str) -> None:
        for seen in self.seen.values():
            seen.pop(origin, None)

    def forget_received(self) -> None:
        self.seen.clear()
