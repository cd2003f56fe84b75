"""The in-process hub without sockets: bounded mailboxes, the resume buffer, presence."""

from __future__ import annotations

import asyncio
import time

import orjson

from chat.domain.messages import new_message_id
from chat.gateway import frames
from chat.gateway.hub import LocalHub, Mailbox
from chat.store.message_history import Position


def _mailbox(user_id: int, cut_off: list[int], size: int = 16) -> Mailbox:
    return Mailbox(
        user_id, size, on_overflow=lambda m: cut_off.append(m.id), on_removed=lambda e, reason: None
    )


def test_a_full_mailbox_is_cut_off_and_others_still_receive() -> None:
    hub, cut_off = LocalHub(), list[int]()
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


def test_buffered_frames_at_or_before_the_cut_are_skipped_at_go_live() -> None:
    hub, cut_off = LocalHub(), list[int]()
    mailbox = _mailbox(1, cut_off)
    hub.connect(mailbox)
    subscription = hub.subscribe(mailbox, 7)
    ids = [new_message_id() for _ in range(3)]
    for message_id in ids:
        hub.publish(7, orjson.dumps(str(message_id)), position=Position.of(message_id))
    assert mailbox.take() == []
    subscription.go_live(Position.of(ids[1]))
    assert mailbox.take() == [orjson.dumps(str(ids[2])).decode()]


def test_presence_joined_and_left() -> None:
    hub, cut_off = LocalHub(), list[int]()
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
    hub, cut_off = LocalHub(), list[int]()
    reader = _mailbox(2, cut_off)
    hub.connect(reader)
    hub.subscribe(reader, 7).go_live(None)
    for i in range(100):
        users = [1] if i % 2 == 0 else []
        hub.publish(7, frames.typing(7, users), exclude_user=1, latest=("typing", 7))
    assert cut_off == []
    assert [orjson.loads(f)["user_ids"] for f in reader.take()] == [[]]


def test_a_subscription_being_set_up_buffers_a_bounded_number_of_bytes() -> None:
    cut_off: list[int] = []
    mailbox = _budgeted(cut_off, [], max_bytes=20_000)
    hub = LocalHub()
    hub.connect(mailbox)
    hub.subscribe(mailbox, 7)  # buffering: not live yet
    for i in range(5):
        hub.publish(7, orjson.dumps({"n": i, "text": "x" * 10_000}))
    assert cut_off == [mailbox.id]


def test_unread_counts_pushed_to_a_user_supersede_each_other_while_queued() -> None:
    hub, cut_off = LocalHub(), list[int]()
    phone, tablet = _mailbox(5, cut_off), _mailbox(5, cut_off)
    hub.connect(phone)
    hub.connect(tablet)
    for count in range(50, -1, -1):  # a `read` flood on the phone: each moves the count
        hub.send_to_user(5, frames.unread(7, count), exclude=phone, latest=("unread", 7))
    assert cut_off == []
    assert phone.take() == []
    assert [orjson.loads(f)["count"] for f in tablet.take()] == [0]


def test_an_event_is_known_unchanged_only_while_listened_to_and_until_its_messages_change() -> None:
    hub, cut_off = LocalHub(), list[int]()
    a, b = _mailbox(1, cut_off), _mailbox(2, cut_off)
    assert hub.unchanged_since(7) is None  # nobody listens: a change would go unseen
    before = time.monotonic()
    for mailbox in (a, b):
        hub.connect(mailbox)
        subscription = hub.subscribe(mailbox, 7)
        subscription.go_live(None)
        hub.announce(subscription)  # presence changes no message
    listened = hub.unchanged_since(7)
    assert listened is not None
    assert listened >= before
    hub.publish(7, frames.typing(7, [1]), latest=("typing", 7))
    assert hub.unchanged_since(7) == listened
    message_id = new_message_id()
    hub.publish(7, orjson.dumps(str(message_id)), position=Position.of(message_id))
    after_message = hub.unchanged_since(7)
    assert after_message is not None
    assert after_message > listened
    hub.changed(7)  # e.g. a send that failed: it may have been stored, no frame says so
    after_failure = hub.unchanged_since(7)
    assert after_failure is not None
    assert after_failure > after_message
    hub.unsubscribe(a, 7)
    hub.unsubscribe(b, 7)
    assert hub.unchanged_since(7) is None
