"""The order merge without I/O: nodes are names, the clock is a number, frames are strings.

Every scenario checks the same two things a subscriber relies on: frames come out in position
order (the store's), and a frame is only released once nothing below it can still appear.
"""

from __future__ import annotations

from chat.domain.messages import MessageIdGenerator
from chat.domain.position import Position
from chat.gateway.ordering import Held, OrderMerge, Settled

EVENT = 7


class World:
    """One machine's wall clock (ns) and monotonic clock (s), shared by every node."""

    def __init__(self) -> None:
        self.ns = 1_700_000_000_000_000_000
        self.now = 100.0

    def later(self, ms: int) -> None:
        self.ns += ms * 1_000_000


class Node:
    """Another node: its id generator on the shared clock, and its frame numbering."""

    def __init__(self, name: str, world: World) -> None:
        self.name = name
        self.world = world
        self.ids = MessageIdGenerator(lambda: world.ns)
        self.seq = 0

    def position(self) -> Position:
        self.world.later(1)
        return Position.of(self.ids.next())

    def floor(self) -> Position:
        return Position.after_ticks(self.ids.floor_ticks())

    def frame(self, merge: OrderMerge, **kw: object) -> None:
        self.seq += 1
        floor = self.floor()
        low = kw.pop("low", floor)
        merge.node_frame(self.name, self.seq, floor, low, **kw)  # type: ignore[arg-type]


class Here:
    """The merge under test, with its own id generator and what it released."""

    def __init__(self) -> None:
        self.world = World()
        self.ids = MessageIdGenerator(lambda: self.world.ns)
        self.released: list[str] = []
        self.merge = OrderMerge(
            "here",
            lambda: Position.after_ticks(self.ids.floor_ticks()),
            lambda _e, held: self.released.append(held.frame),
            clock=lambda: self.world.now,
        )
        self.merge.watch(EVENT)

    def node(self, name: str) -> Node:
        node = Node(name, self.world)
        node.frame(self.merge)
        return node


def held(position: Position, name: str) -> Held:
    return Held(position, name, 1)


def test_a_frame_waits_for_every_other_nodes_floor_to_pass_it() -> None:
    here = Here()
    a, b = here.node("a"), here.node("b")
    x = a.position()
    a.frame(here.merge, opened=[(EVENT, x, "1:x")])
    here.merge.message_frame(EVENT, held(x, "x"), "a")
    a.frame(here.merge, settled=[Settled(EVENT, x, True)])
    assert here.released == []  # b has not promised anything past x yet
    b.frame(here.merge)
    assert here.released == ["x"]


def test_an_open_send_of_another_node_holds_later_frames_until_it_settles() -> None:
    here = Here()
    a, b = here.node("a"), here.node("b")
    early = b.position()
    b.frame(here.merge, opened=[(EVENT, early, "2:e")])
    late = a.position()
    a.frame(here.merge, opened=[(EVENT, late, "1:l")])
    here.merge.message_frame(EVENT, held(late, "late"), "a")
    a.frame(here.merge, settled=[Settled(EVENT, late, True)])
    b.frame(here.merge)
    assert here.released == []
    here.merge.message_frame(EVENT, held(early, "early"), "b")
    b.frame(here.merge, settled=[Settled(EVENT, early, True)])
    assert here.released == ["early", "late"]


def test_a_frame_that_overtakes_its_opening_is_not_held_back_by_it() -> None:
    here = Here()
    a = here.node("a")
    x = a.position()
    here.merge.message_frame(EVENT, held(x, "x"), "a")  # the event subscription ran first
    a.frame(here.merge, opened=[(EVENT, x, "1:x")], settled=[Settled(EVENT, x, True)])
    assert here.released == ["x"]
    assert here.merge.bound(EVENT) > x


def test_a_published_send_whose_frame_is_lost_is_fetched_from_the_store() -> None:
    here = Here()
    a = here.node("a")
    x = a.position()
    a.frame(here.merge, opened=[(EVENT, x, "1:x")])
    a.frame(here.merge, settled=[Settled(EVENT, x, True)])
    assert here.merge.bound(EVENT) <= x
    assert here.merge.fetches() == []  # within the grace: the frame may still come
    here.world.now += 1
    assert [f.position for f in here.merge.fetches()] == [x]
    here.merge.fetched(EVENT, x, held(x, "x from the store"))
    assert here.released == ["x from the store"]


def test_after_a_gap_a_nodes_low_stands_in_until_what_it_opened_before_has_settled() -> None:
    here = Here()
    a = here.node("a")
    lost = a.position()  # opened in a frame that never arrives
    a.seq += 1
    x = a.position()
    a.frame(here.merge, opened=[(EVENT, x, "1:x")], low=lost)
    here.merge.message_frame(EVENT, held(x, "x"), "a")
    a.frame(here.merge, settled=[Settled(EVENT, x, True)], low=lost)
    assert here.released == []  # `lost` may still come, below x
    here.merge.message_frame(EVENT, held(lost, "lost"), "a")
    a.frame(here.merge)  # everything settled: low is the floor again
    assert here.released == ["lost", "x"]


def test_a_dead_nodes_orphans_hold_the_order_until_settled_and_its_store_is_read() -> None:
    here = Here()
    a, b = here.node("a"), here.node("b")
    orphan = b.position()
    b.frame(here.merge, opened=[(EVENT, orphan, "2:o")])
    unpublished = b.position()  # b stored it, and died before announcing it
    x = a.position()
    a.frame(here.merge, opened=[(EVENT, x, "1:x")])
    here.merge.message_frame(EVENT, held(x, "x"), "a")
    a.frame(here.merge, settled=[Settled(EVENT, x, True)])
    here.world.now += 10
    a.frame(here.merge)
    assert here.merge.expire(5.0) == ["b"]
    (catch_up,) = here.merge.pending_catch_ups()
    assert catch_up.after < unpublished
    assert here.released == []
    assert here.merge.settler() == "a"  # "a" < "here": a settles the orphan
    here.merge.catch_up_done(EVENT, catch_up.token, [held(unpublished, "from the store")])
    assert here.released == []  # the orphan still holds everything after it
    a.frame(here.merge, orphans_settled=[("b", Settled(EVENT, orphan, False))])
    assert here.released == ["from the store", "x"]


def test_a_void_outcome_withdraws_a_copy_read_from_the_store_while_open() -> None:
    here = Here()
    a = here.node("a")
    x = a.position()
    a.frame(here.merge, opened=[(EVENT, x, "1:x")])
    here.merge.message_frame(EVENT, held(x, "seen in the store, then fenced"))
    assert here.released == []
    a.frame(here.merge, settled=[Settled(EVENT, x, False)])
    assert here.released == []
    assert here.merge.bound(EVENT) > x


def test_frames_below_the_bound_at_watch_time_came_from_the_replay() -> None:
    here = Here()
    a = here.node("a")
    here.merge.unwatch(EVENT)
    x = a.position()
    a.frame(here.merge)
    here.world.later(1)
    here.merge.watch(EVENT)  # x is settled: the replay reads it from the store
    here.merge.message_frame(EVENT, held(x, "late copy"), "a")
    assert here.released == []


def test_own_sends_settle_in_id_order_and_a_dead_nodes_frames_are_ignored() -> None:
    here = Here()
    first = Position.of(here.ids.next())
    second = Position.of(here.ids.next())
    here.merge.open_local(EVENT, first, "9:a")
    here.merge.open_local(EVENT, second, "9:b")
    here.merge.settle_local(EVENT, second, held(second, "second"))
    assert here.released == []
    here.merge.settle_local(EVENT, first, held(first, "first"))
    assert here.released == ["first", "second"]
    here.merge.node_gone("ghost")
    here.merge.node_frame("ghost", 1, first, first, opened=[(EVENT, second, "x")])
    assert here.merge.open_count() == 0


def test_an_own_send_settled_before_anyone_watches_waits_for_a_late_subscriber() -> None:
    """Settled while an earlier send of its event is open and nobody here subscribes yet: a
    subscriber arriving before its turn must still get it (the replay stops below it)."""
    here = Here()
    here.merge.unwatch(EVENT)
    first = Position.of(here.ids.next())
    second = Position.of(here.ids.next())
    here.merge.open_local(EVENT, first, "9:a")
    here.merge.open_local(EVENT, second, "9:b")
    here.merge.settle_local(EVENT, second, held(second, "second"))
    here.merge.watch(EVENT)
    assert here.merge.bound(EVENT) <= first  # the replay stops below both
    here.merge.settle_local(EVENT, first, None)
    assert here.released == ["second"]


def test_watching_reads_the_store_above_the_bound_once_the_bus_listens() -> None:
    """A send another node settled before this node listened to the event, above the bound
    (behind a send still open), never comes as a frame: the store read brings it."""
    here = Here()
    a = here.node("a")
    here.merge.unwatch(EVENT)
    early = a.position()
    missed = a.position()
    a.frame(here.merge, opened=[(EVENT, early, "1:e"), (EVENT, missed, "1:m")])
    a.frame(here.merge, settled=[Settled(EVENT, missed, True)])  # its frame went nowhere
    here.merge.watch(EVENT, catch_up=True)
    assert here.merge.pending_catch_ups() == []  # not before the bus listens
    here.merge.listening(EVENT)
    (catch_up,) = here.merge.pending_catch_ups()
    assert catch_up.after <= early
    here.merge.catch_up_done(EVENT, catch_up.token, [held(missed, "missed")])
    here.merge.message_frame(EVENT, held(early, "early"), "a")
    a.frame(here.merge, settled=[Settled(EVENT, early, True)])
    assert here.released == ["early", "missed"]


def test_a_frame_below_a_bound_already_passed_is_a_copy_and_dropped() -> None:
    """Once the bound passed a position (a release, or a subscription's replay cut below which
    the store was read), a frame there can only be a copy — a second node settling the same
    orphan, say — and delivering it would repeat a replayed message."""
    here = Here()
    a = here.node("a")
    x = a.position()
    # Settled void (read back absent and fenced) by one node ...
    a.frame(here.merge, opened=[(EVENT, x, "1:x")], settled=[Settled(EVENT, x, False)])
    here.world.later(1)
    a.frame(here.merge)
    cut = here.merge.bound(EVENT)  # a subscriber's replay read the store below the cut
    assert cut > x
    # ... while another, racing it, had read it present and publishes it.
    here.merge.message_frame(EVENT, held(x, "copy"), "b")
    assert here.released == []


def test_watching_again_an_event_kept_for_own_frames_leaves_nothing_between_replay_and_read() -> (
    None
):
    """Nobody here listened while this node's own frame waited its turn (released to nobody);
    meanwhile another node's message settled unseen. A subscriber arriving now gets it from
    the replay (below the cut) or the store read (above it) — never from neither."""
    here = Here()
    a = here.node("a")
    here.merge.unwatch(EVENT)
    first = Position.of(here.ids.next())
    mine = Position.of(here.ids.next())
    here.merge.open_local(EVENT, first, "9:a")
    here.merge.open_local(EVENT, mine, "9:b")
    here.merge.settle_local(EVENT, mine, held(mine, "mine"))  # kept: `first` is open
    unseen = a.position()
    a.frame(here.merge, opened=[(EVENT, unseen, "1:u")], settled=[Settled(EVENT, unseen, True)])
    here.merge.settle_local(EVENT, first, None)  # `mine` goes, to nobody
    here.world.later(1)
    a.frame(here.merge)
    here.merge.watch(EVENT, catch_up=True)
    here.merge.listening(EVENT)
    (catch_up,) = here.merge.pending_catch_ups()
    cut = here.merge.bound(EVENT)
    assert cut <= catch_up.after  # what the replay does not read, the store read does
    assert unseen < cut  # here: the replay reads it
