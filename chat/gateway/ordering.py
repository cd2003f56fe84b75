"""One order of every event's messages, whichever node stored them: the merge, without I/O.

Message ids come from each node's own clock, so the sends of several nodes interleave in the
store by time. :class:`OrderMerge` releases an event's ``message`` frames to local subscribers
in the store's order (``Position``, as CQL compares it) by **watermarks** — the design is in
docs/deploy.md ("One order across nodes"):

- A node *opens* a send when it assigns the id, before anything is written, and *settles* it
  as published (stored; its frame went out) or void (never to be stored). Nodes tell each
  other both, with their *floor* (their id generator promises every later id is above it) and
  their oldest open send (*low*), in numbered frames.
- A held frame is released once its position is below the event's **bound**: the least of
  every known open send of the event (any node's, dead nodes' *orphans* included), every live
  node's floor (its *low* while its list of open sends is not trusted: after a gap in its
  numbers, or before its first frame), frames known published but not arrived yet, and store
  reads still pending. Everything below the bound is settled, so releasing below it in
  position order is the store's order; and a subscription that replays the store below the
  bound and then goes live neither misses nor repeats anything.

One node on its own (:class:`~chat.gateway.hub.LocalHub`) uses the same merge with itself as
the only node: a send's frame then waits only for earlier sends of the same event.

The merge never waits and never reads: it returns what the caller must do (read the store
after a node died, fetch a frame that was announced but did not come, settle orphans) and is
told the results.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from chat.domain.messages import default_id_floor_ticks
from chat.domain.position import Position

log = logging.getLogger(__name__)


def process_floor() -> Position:
    """The promise of this process's default id generator (:func:`new_message_id`): for a
    node that stores no message of its own (the message store passes its generator's)."""
    return Position.after_ticks(default_id_floor_ticks())


AWAIT_GRACE_SECONDS = 0.2
"""How long a frame announced as published may take to arrive before it is read from the
store (it travels on another subscription, so it is usually there first)."""


@dataclass(order=True, slots=True)
class Held:
    """A ``message`` frame waiting for its turn (ordered by position only)."""

    position: Position
    frame: str = field(compare=False)
    sender_id: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class OpenSend:
    """A send a node announced and has not settled: enough to settle it from the store."""

    node_id: str
    event_id: int
    position: Position
    claim_key: str


@dataclass(frozen=True, slots=True)
class Settled:
    """How a send ended: ``published`` (stored, its frame went out) or void."""

    event_id: int
    position: Position
    published: bool


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A store read to do: the event's messages above ``after``, for a node that died."""

    event_id: int
    after: Position
    token: int


@dataclass(frozen=True, slots=True)
class Fetch:
    """A store read to do: one message announced as published whose frame never came."""

    event_id: int
    position: Position


@dataclass(slots=True)
class _Node:
    """What this node knows of one node: its floor, low, and the sends it left open."""

    node_id: str
    floor: Position
    low: Position
    heard: float
    seq: int = 0
    opens: dict[tuple[int, Position], str] = field(default_factory=dict)
    distrust: Position | None = None
    """Set while the list of open sends may be missing some (a gap in the node's numbers, or
    sends opened before its first frame here): until ``low`` passes it, ``low`` stands in."""

    def contribution(self) -> Position:
        return self.low if self.distrust is not None else self.floor


@dataclass(slots=True)
class _Event:
    """A watched event: its held frames and what was released."""

    start: Position
    """The bound when watching began: what lies below it came from the store (the replay)."""
    watched: bool = True
    """False for an event nobody here subscribes to, kept while this node's own frames of it
    wait their turn (a subscriber arriving meanwhile must still get them)."""
    released: Position | None = None
    passed: Position | None = None
    """The highest bound seen for the event (a release, or a subscription's replay cut):
    everything below it was released or replayed, so a frame below it is a copy."""
    held: list[Held] = field(default_factory=list)
    positions: set[Position] = field(default_factory=set)
    awaited: dict[Position, float] = field(default_factory=dict)
    barriers: dict[int, Position] = field(default_factory=dict)
    dormant: set[int] = field(default_factory=set)
    """Barriers whose store read must wait (until the bus confirmed this node's interest)."""

    def covers(self, position: Position) -> bool:
        """Whether a frame at ``position`` was already delivered, replayed or is held."""
        if position < self.start or position in self.positions:
            return True
        if self.passed is not None and position < self.passed:
            return True
        return self.released is not None and position <= self.released

    def saw(self, bound: Position) -> None:
        if self.passed is None or bound > self.passed:
            self.passed = bound


class OrderMerge:
    """The watermark merge of one node: its own sends and every other node's, per event.

    ``own_floor`` is the local id generator's promise (``MessageIdGenerator.floor_ticks`` as a
    position); ``release`` delivers a frame to the event's local subscribers; ``stored`` is
    told of every event a stored message became known for (before the bound can pass it);
    ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        node_id: str,
        own_floor: Callable[[], Position],
        release: Callable[[int, Held], None],
        *,
        clock: Callable[[], float],
        stored: Callable[[int], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._own_floor = own_floor
        self._release = release
        self._stored = stored
        self._clock = clock
        floor = own_floor()
        self._self = _Node(node_id, floor, floor, clock())
        self._nodes: dict[str, _Node] = {}
        self._dead: dict[str, float] = {}
        self._opens: dict[int, dict[Position, str]] = {}  # event -> position -> node id
        self._orphans: dict[tuple[int, Position], OpenSend] = {}
        self._orphaned_at: dict[tuple[int, Position], float] = {}
        self._events: dict[int, _Event] = {}
        self._waiting: set[int] = set()  # watched events holding frames
        self._tokens = 0
        self._global: Position | None = None  # cached min of the nodes' contributions

    # ------------------------------------------------------------------ this node's sends

    def open_local(self, event_id: int, position: Position, claim_key: str) -> None:
        """This node assigned ``position`` to a send of the event (nothing written yet)."""
        self._self.opens[(event_id, position)] = claim_key
        self._opens.setdefault(event_id, {})[position] = self.node_id

    def settle_local(self, event_id: int, position: Position, held: Held | None) -> None:
        """This node's send ended: ``held`` is its frame when stored, None when void."""
        if self._self.opens.pop((event_id, position), None) is None:
            return  # not ours any more (retired meanwhile): the orphans' settler decides
        self._drop_open(event_id, position)
        event = self._events.get(event_id)
        if event is None and held is not None and held.position >= self._bound(event_id):
            # Nobody here subscribes, yet: a subscriber arriving before its turn gets it live.
            event = self._events[event_id] = _Event(self._bound(event_id), watched=False)
        if event is not None:
            if held is not None:
                self._hold(event_id, event, held)
            self._release_event(event_id, event)

    def local_opens(self) -> list[OpenSend]:
        return [OpenSend(self.node_id, e, p, key) for (e, p), key in self._self.opens.items()]

    def own_low(self) -> Position:
        """This node's oldest open send, the orphans it settles included; else its floor."""
        low = self.refresh_own_floor()
        if self._self.opens:
            low = min(low, next(iter(self._self.opens))[1])
        if self._orphans and self.settler() == self.node_id:
            low = min(low, min(o.position for o in self._orphans.values()))
        return low

    def announce(self) -> tuple[Position, Position]:
        """This node's floor (a fresh promise) and low, for its next frame."""
        low = self.own_low()
        return self._self.floor, low

    def is_gone(self, node_id: str) -> bool:
        """Whether the node was taken for dead (or retired, or said goodbye) lately."""
        return node_id in self._dead

    def refresh_own_floor(self) -> Position:
        """Take the generator's promise now; the floor this node announces."""
        self._self.floor = self._own_floor()
        self._global = None
        return self._self.floor

    # ------------------------------------------------------------------ other nodes

    def node_frame(
        self,
        node_id: str,
        seq: int,
        floor: Position,
        low: Position,
        opened: Iterable[tuple[int, Position, str]] = (),
        settled: Iterable[Settled] = (),
        orphans_settled: Iterable[tuple[str, Settled]] = (),
    ) -> bool:
        """A numbered frame of another node: what it opened and settled, its floor and low.

        True when frames of the node were lost before this one (whatever else they said —
        a membership change, say — is lost too).
        """
        if node_id == self.node_id or node_id in self._dead:
            return False
        now = self._clock()
        node = self._nodes.get(node_id)
        lost = False
        if node is None:
            # Sends it opened before this frame are unknown here: its low stands in for them.
            node = self._nodes[node_id] = _Node(node_id, floor, low, now, seq, distrust=floor)
        elif seq != node.seq + 1:
            lost = True
            log.info("frames %d..%d of node %s were lost", node.seq + 1, seq - 1, node_id)
            node.distrust = floor if node.distrust is None else max(node.distrust, floor)
        node.seq, node.heard = seq, now
        for event_id, position, claim_key in opened:
            event = self._events.get(event_id)
            if event is not None and event.covers(position):
                continue  # its frame came first (another subscription): already settled
            node.opens[(event_id, position)] = claim_key
            self._opens.setdefault(event_id, {})[position] = node_id
        for outcome in settled:
            if node.opens.pop((outcome.event_id, outcome.position), None) is not None:
                self._drop_open(outcome.event_id, outcome.position)
            self._outcome(outcome, now)
        for _origin, outcome in orphans_settled:
            self._orphaned_at.pop((outcome.event_id, outcome.position), None)
            if self._orphans.pop((outcome.event_id, outcome.position), None) is not None:
                self._drop_open(outcome.event_id, outcome.position)
            self._outcome(outcome, now)
        node.floor, node.low = floor, low
        if node.distrust is not None and low > node.distrust:
            self._trust_again(node, now)
        self._global = None
        self._release_all()
        return lost

    def message_frame(self, event_id: int, held: Held, node_id: str | None = None) -> None:
        """A ``message`` frame of another node (or read from the store) for the event."""
        if node_id is not None:
            node = self._nodes.get(node_id)
            if node is not None and node.opens.pop((event_id, held.position), None) is not None:
                self._drop_open(event_id, held.position)
        event = self._events.get(event_id)
        if event is None:
            return
        event.awaited.pop(held.position, None)
        self._hold(event_id, event, held)
        self._release_event(event_id, event)

    def _outcome(self, outcome: Settled, now: float) -> None:
        event = self._events.get(outcome.event_id)
        if event is None:
            return
        if outcome.published and event.watched:
            if not event.covers(outcome.position):
                event.awaited[outcome.position] = now
        elif outcome.position in event.positions:
            # Read from the store while still open, then fenced: it never was a message.
            event.positions.discard(outcome.position)
            event.held = [h for h in event.held if h.position != outcome.position]
            heapq.heapify(event.held)
            if not event.held:
                self._waiting.discard(outcome.event_id)

    def _trust_again(self, node: _Node, now: float) -> None:
        """Everything the node opened before the gap has settled: its list is whole again.

        Sends still listed from before the gap settled in the lost frames; whether each was
        published is unknown here, so a watched event reads it from the store.
        """
        assert node.distrust is not None
        for event_id, position in [k for k in node.opens if k[1] <= node.distrust]:
            del node.opens[(event_id, position)]
            self._drop_open(event_id, position)
            event = self._events.get(event_id)
            if event is not None and event.watched and not event.covers(position):
                event.awaited[position] = now - AWAIT_GRACE_SECONDS
        node.distrust = None

    def expire(self, ttl: float) -> list[str]:
        """Take nodes silent for ``ttl`` seconds for dead (see :meth:`node_gone`); their
        names. The store reads their death calls for are in :meth:`pending_catch_ups`."""
        now = self._clock()
        gone = [n for n, node in self._nodes.items() if now - node.heard >= ttl]
        for node_id in gone:
            self.node_gone(node_id)
        for node_id in [n for n, t in self._dead.items() if now - t > 10 * ttl]:
            del self._dead[node_id]
        return gone

    def node_gone(
        self, node_id: str, opens: Iterable[OpenSend] = (), settled: Iterable[Settled] = ()
    ) -> list[CatchUp]:
        """A node died, retired or said goodbye: its open sends (those known here, and
        ``opens`` it handed over) become orphans, and each watched event reads the store
        above the node's last floor for what it stored and never published. ``settled``:
        outcomes it had not announced yet (handed over with its retirement)."""
        node = self._nodes.pop(node_id, None)
        now = self._clock()
        self._dead[node_id] = now
        if node is not None:
            for outcome in settled:
                if node.opens.pop((outcome.event_id, outcome.position), None) is not None:
                    self._drop_open(outcome.event_id, outcome.position)
                self._outcome(outcome, now)
        for send in opens:
            key = (send.event_id, send.position)
            event = self._events.get(send.event_id)
            if node is not None and key in node.opens:
                continue
            if event is not None and event.covers(send.position):
                continue
            self._orphans[key] = send
            self._orphaned_at.setdefault(key, now)
            self._opens.setdefault(send.event_id, {})[send.position] = node_id
        catch_ups: list[CatchUp] = []
        if node is not None:
            for (event_id, position), claim_key in node.opens.items():
                self._orphans[(event_id, position)] = OpenSend(
                    node_id, event_id, position, claim_key
                )
                self._orphaned_at.setdefault((event_id, position), now)
            after = node.floor if node.distrust is None else min(node.low, node.floor)
            for event_id, event in self._events.items():
                if not event.watched:
                    continue
                self._tokens += 1
                event.barriers[self._tokens] = after
                catch_ups.append(CatchUp(event_id, after, self._tokens))
        self._global = None
        self._release_all()
        return catch_ups

    def pending_catch_ups(self) -> list[CatchUp]:
        """Store reads still to do (after they failed, or for a retry of the caller)."""
        return [
            CatchUp(event_id, after, token)
            for event_id, event in self._events.items()
            for token, after in event.barriers.items()
            if token not in event.dormant
        ]

    def catch_up_done(self, event_id: int, token: int, found: Iterable[Held]) -> None:
        """The store read of :class:`CatchUp` ``token``: every message above its ``after``."""
        event = self._events.get(event_id)
        if event is None:
            return
        for held in found:
            self._hold(event_id, event, held)
        event.barriers.pop(token, None)
        self._release_event(event_id, event)

    # ------------------------------------------------------------------ orphans

    def settler(self) -> str:
        """Who settles orphans: the live node with the smallest id (as seen from here)."""
        return min([self.node_id, *self._nodes])

    def orphans(self, *, all_older_than: float | None = None) -> list[OpenSend]:
        """The orphans for this node to settle: all of them on the settler; elsewhere those
        still open after ``all_older_than`` seconds (the settler may not know them: a node
        that learnt of an open send the settler never heard of must not wait forever)."""
        if self.settler() == self.node_id or all_older_than is None:
            return list(self._orphans.values())
        before = self._clock() - all_older_than
        return [s for k, s in self._orphans.items() if self._orphaned_at.get(k, 0.0) <= before]

    def settle_orphan(self, send: OpenSend, held: Held | None) -> Settled | None:
        """This node settled an orphan from the store; the outcome to announce (None when
        someone else settled it meanwhile)."""
        self._orphaned_at.pop((send.event_id, send.position), None)
        if self._orphans.pop((send.event_id, send.position), None) is None:
            return None
        self._drop_open(send.event_id, send.position)
        event = self._events.get(send.event_id)
        if event is not None:
            if held is not None:
                self._hold(send.event_id, event, held)
            self._release_event(send.event_id, event)
        return Settled(send.event_id, send.position, held is not None)

    # ------------------------------------------------------------------ watching

    def watch(self, event_id: int, *, catch_up: bool = False) -> None:
        """Local subscribers want the event: from here on its frames are held and released.

        ``catch_up`` (a bus node): frames of sends that settled before this node listened to
        the event never came here, yet some may lie above the bound (behind a send still
        open); a store read above the bound, once :meth:`listening`, brings them.
        """
        self.refresh_own_floor()
        bound = self._bound(event_id)
        event = self._events.get(event_id)
        if event is None:
            event = self._events[event_id] = _Event(bound)
        elif not event.watched:
            # Kept for this node's own frames while nobody here listened: what it released
            # meanwhile went to nobody, so the new subscribers' replay (below the bound) and
            # the store read above it decide afresh what they get.
            event.watched = True
            event.start, event.released, event.passed = bound, None, None
        if catch_up:
            self._tokens += 1
            event.barriers[self._tokens] = bound
            event.dormant.add(self._tokens)

    def listening(self, event_id: int) -> None:
        """The bus confirmed this node's interest in the event: its store reads may start."""
        event = self._events.get(event_id)
        if event is not None:
            event.dormant.clear()

    def unwatch(self, event_id: int) -> None:
        event = self._events.get(event_id)
        if event is None:
            return
        event.watched = False
        event.barriers.clear()
        event.dormant.clear()
        event.awaited.clear()
        if event.held:
            self._release_event(event_id, event)
        else:
            del self._events[event_id]

    def watching(self, event_id: int) -> bool:
        event = self._events.get(event_id)
        return event is not None and event.watched

    def bound(self, event_id: int) -> Position:
        """Every message of the event below this is settled and, if watched, released (or
        replayed: a subscription's replay reads below it, so a later copy is dropped)."""
        self.refresh_own_floor()
        bound = self._bound(event_id)
        event = self._events.get(event_id)
        if event is not None:
            event.saw(bound)
        return bound

    def _bound(self, event_id: int) -> Position:
        bound = self._global_bound()
        opens = self._opens.get(event_id)
        if opens:
            bound = min(bound, min(opens))
        event = self._events.get(event_id)
        if event is not None:
            if event.awaited:
                bound = min(bound, min(event.awaited))
            if event.barriers:
                bound = min(bound, min(event.barriers.values()))
        return bound

    def fetches(self) -> list[Fetch]:
        """Frames announced as published that did not arrive within the grace: read them."""
        deadline = self._clock() - AWAIT_GRACE_SECONDS
        return [
            Fetch(event_id, position)
            for event_id, event in self._events.items()
            for position, since in event.awaited.items()
            if since <= deadline
        ]

    def fetched(self, event_id: int, position: Position, held: Held | None) -> None:
        """The store's answer for a :class:`Fetch`; None: not stored, so it was void.

        A message is stored before its frame is published and never fenced once stored, so
        a send announced as published is always found; one whose announcement was lost (a
        gap) may have been void.
        """
        event = self._events.get(event_id)
        if event is None or position not in event.awaited:
            return
        del event.awaited[position]
        if held is not None:
            self._hold(event_id, event, held)
        self._release_event(event_id, event)

    def release_ready(self) -> None:
        """Release whatever a moved floor allows (after this node's floor was refreshed)."""
        self._global = None
        self._release_all()

    def holding(self) -> list[str]:
        """What holds each watched event's frames back, for a log line (empty when none is)."""
        out = []
        for event_id in sorted(self._waiting):
            event = self._events.get(event_id)
            if event is None or not event.held:
                continue
            head = event.held[0].position
            reasons = [
                f"node {n.node_id} {'low' if n.distrust is not None else 'floor'}"
                for n in self._nodes.values()
                if n.contribution() <= head
            ]
            if self._self.floor <= head:
                reasons.append("this node's floor")
            opens = self._opens.get(event_id, {})
            reasons += [f"open send of {node}" for p, node in opens.items() if p <= head]
            reasons += ["a frame announced but not here" for p in event.awaited if p <= head]
            reasons += ["a store read" for p in event.barriers.values() if p <= head]
            out.append(f"event {event_id}: {len(event.held)} held, behind {', '.join(reasons)}")
        return out

    def known_nodes(self) -> list[str]:
        return sorted(self._nodes)

    def held_count(self) -> int:
        return sum(len(e.held) for e in self._events.values())

    def open_count(self) -> int:
        return sum(len(o) for o in self._opens.values())

    # ------------------------------------------------------------------ internals

    def _global_bound(self) -> Position:
        bound = self._global
        if bound is None:
            bound = self._self.floor
            for node in self._nodes.values():
                bound = min(bound, node.contribution())
            self._global = bound
        return bound

    def _drop_open(self, event_id: int, position: Position) -> None:
        opens = self._opens.get(event_id)
        if opens is not None:
            opens.pop(position, None)
            if not opens:
                del self._opens[event_id]

    def _hold(self, event_id: int, event: _Event, held: Held) -> None:
        if event.covers(held.position):
            return
        event.positions.add(held.position)
        heapq.heappush(event.held, held)
        self._waiting.add(event_id)
        if self._stored is not None:
            self._stored(event_id)

    def _release_event(self, event_id: int, event: _Event) -> None:
        held = event.held
        if not held:
            return
        bound = self._bound(event_id)
        refreshed = False
        while held:
            if held[0].position >= bound:
                if refreshed:
                    break
                # This node's own promise may be older than the frame: take a fresh one.
                refreshed = True
                self.refresh_own_floor()
                bound = self._bound(event_id)
                continue
            first = heapq.heappop(held)
            event.positions.discard(first.position)
            event.released = first.position
            event.saw(bound)
            if event.watched:
                self._release(event_id, first)
        if not held:
            self._waiting.discard(event_id)
            if not event.watched and self._events.get(event_id) is event:
                del self._events[event_id]

    def _release_all(self) -> None:
        for event_id in list(self._waiting):
            event = self._events.get(event_id)
            if event is None:
                self._waiting.discard(event_id)
            else:
                self._release_event(event_id, event)

    def __iter__(self) -> Iterator[int]:
        return iter(self._events)
