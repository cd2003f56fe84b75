"""The in-process hub without sockets: bounded mailboxes, the resume buffer, presence."""

from __future__ import annotations

import orjson

from chat.domain.messages import new_message_id
from chat.gateway.hub import LocalHub, Mailbox
from chat.store.message_history import Position


def _mailbox(user_id: int, cut_off: list[int], size: int = 16) -> Mailbox:
    return Mailbox(
        user_id, size, on_overflow=lambda m: cut_off.append(m.id), on_removed=lambda e: None
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
