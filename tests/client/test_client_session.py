"""The client's protocol core, fed frames with a fake clock: no sockets, no sleeps."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chat.client import ClientSession, Disconnected, RequestFailed, UnknownFrame
from chat.client.backoff import Backoff
from chat.client.errors import ConnectionLost, FrameTooLarge
from chat.gateway.server_frames import Ack, MessagePosted, Subscribed, UnreadCount, Unsubscribed
from tests.client.frames import LIMITS, message_fields


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def open_session(clock: Clock, *, hello: bool = False) -> ClientSession:
    session = ClientSession(
        auth_by_hello=hello, token="t", clock=clock, rng=lambda: 0.5, backoff=Backoff(1.0, 8.0)
    )
    session.connection_opened()
    feed(session, type="welcome", user_id=1, session_id="s", heartbeat_ms=20000, limits=LIMITS)
    return session


def feed(session: ClientSession, **frame: Any) -> None:
    session.receive_text(orjson.dumps(frame))


def sent(session: ClientSession) -> list[dict[str, Any]]:
    return [orjson.loads(text) for text in session.frames_to_send()]


def message(event_id: int, text: str) -> dict[str, Any]:
    return message_fields(event_id, text)


def test_hello_goes_first_and_the_welcome_opens_the_session() -> None:
    session = ClientSession(auth_by_hello=True, token="tok", clock=Clock())
    session.connection_opened()
    assert sent(session) == [{"type": "hello", "token": "tok", "id": "hello"}]
    session.send(7, "queued before welcome")
    assert sent(session) == []


def test_a_server_ping_is_answered_with_pong_and_not_shown_to_the_application() -> None:
    session = open_session(Clock())
    session.events()
    feed(session, type="ping")
    assert sent(session) == [{"type": "pong"}]
    assert session.events() == []


def test_the_cursor_follows_messages_but_not_acks() -> None:
    session = open_session(Clock())
    session.subscribe(7)
    (subscribe,) = sent(session)
    feed(session, type="subscribed", ref=subscribe["id"], event_id=7, cursor=None)
    handle, _ = session.send(7, "mine")
    (send,) = sent(session)
    later = message(7, "mine")
    feed(
        session,
        type="ack",
        ref=send["id"],
        event_id=7,
        client_msg_id=send["client_msg_id"],
        message_id=later["message_id"],
        cursor=later["cursor"],
        created_at=later["created_at"],
        duplicate=False,
    )
    assert session.cursor(7) is None  # an ack may overtake other senders' messages
    earlier = message(7, "theirs")
    feed(session, type="message", event_id=7, message=earlier)
    assert session.cursor(7) == earlier["cursor"]
    (done,) = [c for c in session.completions() if c.handle == handle]
    assert isinstance(done.answer, Ack)


def test_a_repeated_message_is_dropped() -> None:
    session = open_session(Clock())
    session.subscribe(7)
    session.events()
    posted = message(7, "once")
    feed(session, type="message", event_id=7, message=posted)
    feed(session, type="message", event_id=7, message=posted)
    assert [type(e) for e in session.events()] == [MessagePosted]


def test_a_dropped_connection_resubscribes_from_the_cursor_then_resends_the_outbox() -> None:
    clock = Clock()
    session = open_session(clock)
    session.subscribe(7)
    (subscribe,) = sent(session)
    feed(session, type="subscribed", ref=subscribe["id"], event_id=7, cursor=None)
    seen = message(7, "seen")
    feed(session, type="message", event_id=7, message=seen)
    session.send(7, "unacked", client_msg_id="m-1")
    typing = session.request({"type": "typing", "event_id": 7, "state": "start"})
    first = sent(session)
    plan = session.connection_lost(1006)
    assert plan.delay == 0.5
    assert not plan.needs_token
    assert any(isinstance(e, Disconnected) for e in session.events())
    (failed,) = [c for c in session.completions() if c.handle == typing]
    assert isinstance(failed.error, ConnectionLost)

    session.connection_opened()
    feed(session, type="welcome", user_id=1, session_id="s2", heartbeat_ms=1, limits=LIMITS)
    again = sent(session)
    assert [(f["type"], f.get("since"), f.get("client_msg_id")) for f in again] == [
        ("subscribe", seen["cursor"], None),
        ("send", None, "m-1"),
    ]
    assert again[1]["id"] != first[0]["id"]


def test_rate_limited_writes_wait_for_retry_after_and_keep_their_order() -> None:
    clock = Clock()
    session = open_session(clock)
    first, _ = session.send(7, "a")
    session.send(7, "b")
    a, b = sent(session)
    feed(
        session, type="error", ref=a["id"], code="rate_limited", message="slow", retry_after_ms=200
    )
    session.send(7, "c")
    assert sent(session) == []  # "c" waits behind "a"
    assert session.next_deadline() == pytest.approx(100.0 + 0.2 * 1.05)
    clock.now = session.next_deadline()
    session.tick()
    assert [f["text"] for f in sent(session)] == ["a", "c"]
    assert b["text"] == "b"
    assert all(c.error is None for c in session.completions() if c.handle == first)


def test_unavailable_retries_after_a_jittered_back_off_and_other_errors_fail() -> None:
    clock = Clock()
    session = open_session(clock)
    session.send(7, "a")
    (a,) = sent(session)
    feed(session, type="error", ref=a["id"], code="unavailable", message="store down")
    assert session.next_deadline() == pytest.approx(100.5)  # base 1 s x rng 0.5
    clock.now = 100.5
    session.tick()
    (retry,) = sent(session)
    assert retry["client_msg_id"] == a["client_msg_id"]
    handle = session.request({"type": "edit", "event_id": 7, "message_id": "x", "text": "y"})
    (edit,) = sent(session)
    feed(session, type="error", ref=edit["id"], code="forbidden", message="not yours")
    (done,) = [c for c in session.completions() if c.handle == handle]
    assert isinstance(done.error, RequestFailed)
    assert done.error.error_code == "forbidden"


def test_writes_are_paced_by_the_welcome_limits() -> None:
    clock = Clock()
    session = open_session(clock)
    for i in range(5):
        session.send(7, str(i))
    assert [f["text"] for f in sent(session)] == ["0", "1", "2"]  # send_burst 3
    assert session.next_deadline() == pytest.approx(100.1)  # one token at 10 per second
    clock.now = 100.101
    session.tick()
    assert [f["text"] for f in sent(session)] == ["3"]


def test_resync_subscribes_again_from_the_cursor() -> None:
    session = open_session(Clock())
    session.subscribe(7)
    (subscribe,) = sent(session)
    feed(session, type="subscribed", ref=subscribe["id"], event_id=7, cursor=None)
    seen = message(7, "seen")
    feed(session, type="message", event_id=7, message=seen)
    feed(session, type="unsubscribed", event_id=7, reason="resync")
    (again,) = sent(session)
    assert (again["type"], again["since"]) == ("subscribe", seen["cursor"])
    feed(session, type="unsubscribed", event_id=7, reason="removed")
    assert session.subscriptions == frozenset()


def test_subscribing_twice_answers_the_current_subscription_without_a_frame() -> None:
    session = open_session(Clock())
    session.subscribe(7)
    sent(session)
    handle = session.subscribe(7)
    assert sent(session) == []
    (done,) = [c for c in session.completions() if c.handle == handle]
    assert isinstance(done.answer, Subscribed)


def test_unknown_frames_and_fields_do_not_break_the_client() -> None:
    session = open_session(Clock())
    session.events()
    feed(session, type="from_the_future", x=1)
    feed(session, type="unread", event_id=7, count=2, new_field=True)
    unknown, unread = session.events()
    assert isinstance(unknown, UnknownFrame)
    assert isinstance(unread, UnreadCount)
    assert unread.count == 2


def test_a_refused_token_asks_for_a_new_one() -> None:
    session = open_session(Clock(), hello=True)
    feed(session, type="error", code="unauthorized", message="token expired")
    assert session.connection_lost(4401).needs_token


def test_a_frame_over_the_servers_limit_fails_without_being_sent() -> None:
    session = open_session(Clock())
    handle, _ = session.send(7, "x" * 3000)
    assert sent(session) == []
    (done,) = [c for c in session.completions() if c.handle == handle]
    assert isinstance(done.error, FrameTooLarge)


def test_a_subscription_withdrawn_before_it_was_written_fails_without_a_frame() -> None:
    session = ClientSession(auth_by_hello=False, token="t", clock=Clock())
    handle = session.subscribe(7)
    withdrawn = session.unsubscribe(7)
    session.connection_opened()
    feed(session, type="welcome", user_id=1, session_id="s", heartbeat_ms=1, limits=LIMITS)
    assert sent(session) == []  # nothing to subscribe, nothing to unsubscribe
    completions = {c.handle: c for c in session.completions()}
    assert isinstance(completions[withdrawn].answer, Unsubscribed)
    done = completions[handle]
    assert isinstance(done.error, RequestFailed)
    assert done.error.error_code == "not_subscribed"


def test_an_answer_of_a_type_this_client_does_not_know_still_answers_its_request() -> None:
    session = open_session(Clock())
    handle = session.request({"type": "refresh", "token": "new"})
    (refresh,) = sent(session)
    feed(session, type="refreshed", ref=refresh["id"], expires_at=None)
    (done,) = [c for c in session.completions() if c.handle == handle]
    assert isinstance(done.answer, UnknownFrame)
    assert done.answer.raw["type"] == "refreshed"
    assert not any(isinstance(e, UnknownFrame) for e in session.events())
