"""The in-process hub without sockets: bounded mailboxes, the resume buffer, presence."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson

from chat.domain.messages import Message, MessageIdGenerator, NewMessage, SendAck
from chat.domain.position import Position
from chat.gateway import frames
from chat.gateway.hub import LocalHub, Mailbox, SendTicket

IDS = MessageIdGenerator()


def _hub() -> LocalHub:
    return LocalHub(lambda: Position.after_ticks(IDS.floor_ticks()))


def _stored(ticket: SendTicket, text: str) -> Message:
    """The message a settled send stored (sender 1; the text doubles as client_msg_id)."""
    return NewMessage(ticket.event_id, 1, text, text).stored(
        SendAck(ticket.event_id, ticket.position.message_id, datetime.now(UTC), duplicate=False)
    )


def _mailbox(user_id: int, cut_off: list[int], size: int = 16) -> Mailbox:
    return Mailbox(
        user_id, size, on_overflow=lambda m: cut_off.append(m.id), on_removed=lambda e, reason: None
    )


def test_a_full_mailbox_is_cut_off_and_others_still_receive() -> None:
    hub, cut_off = _hub(), list[int]()
    slow, fast = _mailbox(1, cut_off), _mailbox(2, cut_off)
    for mailbox in (slow, fast):
        hub.connect(mailbox)
        hub.subscribe(mailbox, 7).go_live(None)
    for i in range(20):
        hub.publish(7, orjson.dumps({"n": i}))
        fast.take()
    assert cut_off == [slow.id]
    assert slow.closed
    assert not fast.closed
    hub.publish(7, b'{"n": 99}')
    assert fast.take() == ['{"n": 99}']


def test_buffered_messages_below_the_replay_bound_are_skipped_at_go_live() -> None:
    hub, cut_off = _hub(), list[int]()
    mailbox = _mailbox(1, cut_off)
    hub.connect(mailbox)
    subscription = hub.subscribe(mailbox, 7)
    tickets = [hub.open_send(7, IDS.next(), f"1:m{i}") for i in range(3)]
    for i, ticket in enumerate(tickets):
        hub.settle_send(ticket, _stored(ticket, f"m{i}"))
    assert mailbox.take() == []  # buffering while the replay runs
    subscription.go_live(tickets[2].position)  # the replay sent the first two
    (frame,) = (orjson.loads(f) for f in mailbox.take())
    assert frame["message"]["message_id"] == str(tickets[2].position.message_id)


def test_a_send_settled_first_waits_for_an_earlier_one_of_its_event() -> None:
    hub, cut_off = _hub(), list[int]()
    mailbox = _mailbox(1, cut_off)
    hub.connect(mailbox)
    hub.subscribe(mailbox, 7).go_live(None)
    first, second = (hub.open_send(7, IDS.next(), f"1:o{i}") for i in range(2))
    other_event = hub.open_send(8, IDS.next(), "1:x")
    hub.settle_send(second, _stored(second, "second"))
    assert mailbox.take() == []
    assert hub.replay_bound(7) <= first.position
    hub.settle_send(first, None)  # failed: nothing stored
    assert [orjson.loads(f)["message"]["text"] for f in mailbox.take()] == ["second"]
    assert hub.replay_bound(7) > second.position
    assert hub.replay_bound(8) <= other_event.position


def test_presence_joined_and_left() -> None:
    hub, cut_off = _hub(), list[int]()
    a, b = _mailbox(1, cut_off), _mailbox(2, cut_off)
    for mailbox in (a, b):
        hub.connect(mailbox)
        subscription = hub.subscribe(mailbox, 7)
        subscription.go_live(None)
        hub.announce(subscription)
    frames = [orjson.loads(f) for f in a.take()]
    assert frames[-1] == {
        "type": "presence",
        "event_id": 7,
        "user_ids": [1, 2],
        "joined": [2],
        "left": [],
    }
    hub.disconnect(b)
    assert orjson.loads(a.take()[-1])["left"] == [2]


def test_a_latest_value_frame_supersedes_its_unwritten_predecessor_and_moves_last() -> None:
    cut_off: list[int] = []
    mailbox = _mailbox(1, cut_off)
    mailbox.put_latest(("unread", 7), '{"count": 1}')
    mailbox.put("m2")
    mailbox.put_latest(("unread", 8), '{"other": 1}')
    mailbox.put_latest(("unread", 7), '{"count": 2}')
    assert len(mailbox) == 3
    assert mailbox.take() == ["m2", '{"other": 1}', '{"count": 2}']
    # Once written, the next value is queued afresh.
    mailbox.put_latest(("unread", 7), '{"count": 3}')
    assert mailbox.pop() == '{"count": 3}'
    assert mailbox.pop() is None
    assert cut_off == []


def test_superseding_never_overflows_but_new_frames_still_do() -> None:
    cut_off: list[int] = []
    mailbox = _mailbox(1, cut_off, size=4)
    for i in range(3):
        mailbox.put(f"m{i}")
    for count in range(100):  # far more replacements than the mailbox holds
        assert mailbox.put_latest(("unread", 7), str(count))
    assert len(mailbox) == 4
    assert cut_off == []
    assert mailbox.take() == ["m0", "m1", "m2", "99"]
    for i in range(4):
        mailbox.put(f"n{i}")
    assert not mailbox.put_latest(("unread", 7), "x")
    assert cut_off == [mailbox.id]


def test_pop_batch_takes_frames_in_order_up_to_about_the_size_cap() -> None:
    mailbox = _mailbox(1, [], size=16)
    for i in range(6):
        mailbox.put(f"frame-{i}")  # 7 characters each
    mailbox.put_latest("k", "latest")
    assert mailbox.pop_batch(15) == ["frame-0", "frame-1", "frame-2"]
    assert mailbox.pop_batch(1) == ["frame-3"]  # at least one frame, however small the cap
    assert mailbox.pop_batch(1000) == ["frame-4", "frame-5", "latest"]
    assert mailbox.pop_batch(1000) == []
    assert len(mailbox) == 0


def _budgeted(cut_off: list[int], full: list[int], max_bytes: int) -> Mailbox:
    return Mailbox(
        1,
        1000,
        on_overflow=lambda m: cut_off.append(m.id),
        on_removed=lambda e, reason: None,
        max_bytes=max_bytes,
        on_full=lambda: full.append(1),
    )


def test_a_mailbox_over_its_byte_budget_is_full_and_past_twice_it_overflows() -> None:
    cut_off: list[int] = []
    full: list[int] = []
    page = "x" * 10_000
    mailbox = _budgeted(cut_off, full, max_bytes=25_000)
    assert mailbox.put(page)
    assert mailbox.put(page)
    assert not mailbox.full
    assert full == []
    assert mailbox.put(page)  # 30 KB: over the budget, below twice it
    assert mailbox.full
    assert full == [1]
    assert mailbox.queued_bytes >= 30_000
    assert mailbox.put(page)
    assert mailbox.put(page)  # 50 KB
    assert cut_off == []
    assert not mailbox.put("one more")  # past 50 KB: cut off at once
    assert cut_off == [mailbox.id]
    assert mailbox.queued_bytes == 0


def test_a_frame_of_emoji_counts_four_bytes_a_character() -> None:
    cut_off: list[int] = []
    mailbox = _budgeted(cut_off, [], max_bytes=1_000_000)
    mailbox.put("😀" * 1000)
    assert mailbox.queued_bytes >= 4000
    assert mailbox.pop() == "😀" * 1000
    assert mailbox.queued_bytes == 0
    assert mailbox.progress == 1


async def test_a_large_answer_waits_for_room_until_the_writer_takes_frames() -> None:
    cut_off: list[int] = []
    full: list[int] = []
    mailbox = _budgeted(cut_off, full, max_bytes=25_000)
    for _ in range(3):
        mailbox.put("x" * 10_000)
    waiting = asyncio.create_task(mailbox.wait_for_room())
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    assert mailbox.full
    mailbox.pop()  # 20 KB left: below the budget
    await asyncio.wait_for(waiting, 1)
    assert not mailbox.full


def test_typing_frames_supersede_each_other_in_a_mailbox_that_is_not_read() -> None:
    hub, cut_off = _hub(), list[int]()
    reader = _mailbox(2, cut_off)
    hub.connect(reader)
    hub.subscribe(reader, 7).go_live(None)
    for i in range(100):
        users = [1] if i % 2 == 0 else []
        hub.publish_typing(7, users, exclude_user=1)
    assert cut_off == []
    assert [orjson.loads(f)["user_ids"] for f in reader.take()] == [[]]


def test_a_subscription_being_set_up_buffers_a_bounded_number_of_bytes() -> None:
    cut_off: list[int] = []
    mailbox = _budgeted(cut_off, [], max_bytes=20_000)
    hub = _hub()
    hub.connect(mailbox)
    hub.subscribe(mailbox, 7)  # buffering: not live yet
    for i in range(5):
        hub.publish(7, orjson.dumps({"n": i, "text": "x" * 10_000}))
    assert cut_off == [mailbox.id]


def test_unread_counts_pushed_to_a_user_supersede_each_other_while_queued() -> None:
    hub, cut_off = _hub(), list[int]()
    phone, tablet = _mailbox(5, cut_off), _mailbox(5, cut_off)
    hub.connect(phone)
    hub.connect(tablet)
    for count in range(50, -1, -1):  # a `read` flood on the phone: each moves the count
        hub.send_to_user(5, frames.unread(7, count), exclude=phone, latest=("unread", 7))
    assert cut_off == []
    assert phone.take() == []
    assert [orjson.loads(f)["count"] for f in tablet.take()] == [0]


def test_a_resumed_subscription_never_gets_a_message_at_or_before_its_since() -> None:
    """With several nodes the node a client resumes on may lag behind the one it came from:
    its replay bound lies below the client's ``since``, so the message the client already has
    can still come live here — and must not reach it twice."""
    hub, cut_off = _hub(), list[int]()
    mailbox = _mailbox(1, cut_off)
    hub.connect(mailbox)
    subscription = hub.subscribe(mailbox, 7)
    seen, later = (hub.open_send(7, IDS.next(), f"1:s{i}") for i in range(2))
    subscription.after = seen.position  # the client's since: it has `seen` already
    subscription.go_live(hub.replay_bound(7))  # below both: both come live
    for i, ticket in enumerate((seen, later)):
        hub.settle_send(ticket, _stored(ticket, f"text {i}"))
    assert [orjson.loads(f)["message"]["text"] for f in mailbox.take()] == ["text 1"]


def test_an_event_is_known_unchanged_only_while_listened_to_and_until_its_messages_change() -> None:
    hub, cut_off = _hub(), list[int]()
    a, b = _mailbox(1, cut_off), _mailbox(2, cut_off)
    assert hub.unchanged_since(7) is None  # nobody listens: a change would go unseen
    before = time.monotonic()
    for mailbox in (a, b):
        hub.connect(mailbox)
        subscription = hub.subscribe(mailbox, 7)
        subscription.go_live(hub.replay_bound(7))
        hub.announce(subscription)  # presence changes no message
    listened = hub.unchanged_since(7)
    assert listened is not None
    assert listened >= before
    hub.publish_typing(7, [1])
    assert hub.unchanged_since(7) == listened
    ticket = hub.open_send(7, IDS.next(), "1:m")
    assert hub.unchanged_since(7) == listened  # an id, nothing stored yet
    hub.settle_send(ticket, _stored(ticket, "stored"))
    after_message = hub.unchanged_since(7)
    assert after_message is not None
    assert after_message > listened
    hub.changed(7)  # e.g. a bus gap: something may have been stored, no frame says so
    after_gap = hub.unchanged_since(7)
    assert after_gap is not None
    assert after_gap > after_message
    hub.unsubscribe(a, 7)
    hub.unsubscribe(b, 7)
    assert hub.unchanged_since(7) is None


class _Elsewhere:
    """Presence on other nodes as a cross-node fan-out reports it (chat.gateway.peers.Peers)."""

    def __init__(self, users: dict[int, set[int]]) -> None:
        self._users = users

    def users(self, event_id: int) -> set[int]:
        return set(self._users.get(event_id, ()))

    def present(self, event_id: int, user_id: int) -> bool:
        return user_id in self._users.get(event_id, ())


def _presence_frames(mailbox: Mailbox) -> list[dict[str, object]]:
    return [f for f in map(orjson.loads, mailbox.take()) if f["type"] == "presence"]


def test_presence_counts_the_users_that_peers_report_on_other_nodes() -> None:
    hub = LocalHub(lambda: Position.after_ticks(IDS.floor_ticks()), peers=_Elsewhere({7: {5}}))
    cut_off: list[int] = []
    alice, bob_here = _mailbox(1, cut_off), _mailbox(5, cut_off)
    for mailbox in (alice, bob_here):
        hub.connect(mailbox)
    first = hub.subscribe(alice, 7)
    first.go_live(hub.replay_bound(7))
    hub.announce(first)
    assert hub.online(7) == {1, 5}
    assert _presence_frames(alice) == [
        {"type": "presence", "event_id": 7, "user_ids": [1, 5], "joined": [1], "left": []}
    ]
    # Bob is already present on another node: his subscription here is no news to anyone.
    second = hub.subscribe(bob_here, 7)
    second.go_live(hub.replay_bound(7))
    hub.announce(second)
    assert _presence_frames(alice) == []
    assert _presence_frames(bob_here) == [
        {"type": "presence", "event_id": 7, "user_ids": [1, 5], "joined": [], "left": []}
    ]
    assert cut_off == []
