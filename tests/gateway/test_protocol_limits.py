"""The session's limits and session lifetime, fed frames with fake clocks: no sockets, no sleeps.

Frame rate, frames held while authentication is pending, the token's expiry, ``refresh``, the
close codes of a failed authentication, and the user's shared write bucket.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chat.config import Settings
from chat.errors import ServiceUnavailable, TooManyConnections, Unauthorized
from chat.gateway.limits import Limits
from chat.gateway.protocol import (
    HELD_FRAMES,
    Authenticate,
    Command,
    Refresh,
    Send,
    Session,
    State,
    Subscribe,
    command_bytes,
)
from chat.gateway.quotas import UserQuotas
from tests.gateway.test_protocol import FakeClock

LIMITS = Limits.from_settings(
    Settings(
        ws_frame_rate_per_second=10.0,
        ws_frame_burst=5,
        ws_send_rate_per_second=100.0,
        ws_send_burst=100,
        ws_user_send_rate_per_second=1.0,
        ws_user_send_burst=2,
        ws_heartbeat_ms=1000,
        ws_idle_timeout_ms=3000,
        ws_auth_timeout_ms=500,
    )
)
WALL_START = 1_800_000_000.0


def _clock_at(start: float) -> FakeClock:
    """The protocol tests' fake clock, started at ``start``."""
    clock = FakeClock()
    clock.now = start
    return clock


def _session(limits: Limits = LIMITS) -> tuple[Session, FakeClock, FakeClock]:
    clock, wall = _clock_at(1000.0), _clock_at(WALL_START)
    return Session(limits, clock=clock, wall_clock=wall), clock, wall


def _advance(seconds: float, *clocks: FakeClock) -> None:
    for clock in clocks:
        clock.advance(seconds)


def _feed(session: Session, frame: dict[str, Any]) -> None:
    session.receive_text(orjson.dumps(frame).decode())


def _sent(session: Session) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in session.frames_to_send()]


def _only(commands: list[Command]) -> Command:
    assert len(commands) == 1, commands
    return commands[0]


def _authenticated(session: Session, **options: Any) -> None:
    session.use_header_token("tok")
    cmd = _only(session.commands())
    assert isinstance(cmd, Authenticate)
    session.authenticated(cmd, 7, "s-1", **options)
    session.frames_to_send()


def _send(n: int) -> dict[str, Any]:
    return {"type": "send", "id": n, "event_id": 1, "client_msg_id": f"c{n}", "text": "hi"}


# ------------------------------------------------------------------ every frame costs


def test_frames_past_the_burst_are_answered_rate_limited_and_not_acted_on() -> None:
    session, clock, wall = _session()
    _authenticated(session)
    for n in range(5):
        _feed(session, {"type": "subscribe", "event_id": n + 1, "id": n})
    assert len(session.commands()) == 5
    _feed(session, {"type": "history", "event_id": 1, "id": "over"})
    [error] = _sent(session)
    assert (error["code"], error["ref"]) == ("rate_limited", "over")
    assert error["retry_after_ms"] == 100  # one frame per 100 ms at 10 per second
    assert session.commands() == []
    _advance(0.1, clock, wall)
    _feed(session, {"type": "history", "event_id": 1, "id": "later"})
    assert len(session.commands()) == 1


def test_frame_wait_says_how_long_until_the_frame_bucket_has_a_token() -> None:
    session, clock, wall = _session()
    for n in range(4):
        _feed(session, {"type": "ping", "id": n})
    assert session.frame_wait() == 0
    _feed(session, {"type": "ping", "id": 4})
    assert session.frame_wait() == pytest.approx(0.1)
    _advance(0.06, clock, wall)
    assert session.frame_wait() == pytest.approx(0.04)
    _advance(0.04, clock, wall)
    assert session.frame_wait() == pytest.approx(0, abs=1e-9)


def test_pings_and_frames_before_authentication_draw_on_the_same_bucket() -> None:
    session, _, _ = _session()
    for n in range(5):
        _feed(session, {"type": "ping", "id": n})
    assert [f["type"] for f in _sent(session)] == ["pong"] * 5
    _feed(session, {"type": "hello", "token": "t", "id": "h"})
    [error] = _sent(session)
    assert (error["code"], error["ref"]) == ("rate_limited", "h")
    assert session.commands() == []  # the hello was not acted on
    assert session.state is State.AWAITING_AUTH


def test_a_pong_over_the_rate_gets_no_answer_and_binary_frames_count_too() -> None:
    session, _, _ = _session()
    for _ in range(5):
        session.receive_bytes(b"\x00")
    assert [f["code"] for f in _sent(session)] == ["binary_not_supported"] * 5
    _feed(session, {"type": "pong"})
    assert _sent(session) == []
    session.receive_bytes(b"\x00")
    [error] = _sent(session)
    assert error["code"] == "rate_limited"
    assert "ref" not in error


def test_a_user_write_bucket_shared_by_connections_limits_writes_across_them() -> None:
    """Two connections of one user draw on the user's bucket of 2: the third write, on either
    connection, is refused although each connection's own bucket has plenty."""
    quotas = UserQuotas(max_connections=2, write_rate=1.0, write_burst=2, clock=_clock_at(0.0))
    first, _, _ = _session()
    second, _, _ = _session()
    for session in (first, second):
        quotas.admit(7)
        _authenticated(session, user_writes=quotas.writes(7))
    _feed(first, _send(1))
    _feed(second, _send(2))
    assert isinstance(_only(first.commands()), Send)
    assert isinstance(_only(second.commands()), Send)
    _feed(second, _send(3))
    [error] = _sent(second)
    assert (error["code"], error["ref"], error["retry_after_ms"]) == ("rate_limited", 3, 1000)
    assert "all your connections" in error["message"]
    assert second.commands() == []


def test_a_user_is_refused_one_connection_over_the_cap_until_one_closes() -> None:
    clock = _clock_at(0.0)
    quotas = UserQuotas(max_connections=2, write_rate=1.0, write_burst=2, clock=clock)
    quotas.admit(7)
    quotas.admit(7)
    quotas.admit(8)  # another user has a cap of their own
    with pytest.raises(TooManyConnections):
        quotas.admit(7)
    quotas.release(7)
    quotas.admit(7)
    assert quotas.connections(7) == 2


def test_a_user_reconnecting_finds_the_write_bucket_as_it_was_left() -> None:
    clock = _clock_at(0.0)
    quotas = UserQuotas(max_connections=2, write_rate=1.0, write_burst=2, clock=clock)
    quotas.admit(7)
    writes = quotas.writes(7)
    assert (writes(), writes(), writes()) == (0, 0, 1000)
    quotas.release(7)
    quotas.admit(7)  # a fresh connection is no fresh bucket
    assert quotas.writes(7)() == 1000
    quotas.release(7)
    clock.advance(2.0)  # refilled: the idle entry may go, a new one is as good
    quotas.admit(8)
    assert quotas.remembered_users == 1


def test_idle_users_are_remembered_up_to_a_bound() -> None:
    quotas = UserQuotas(
        max_connections=1, write_rate=1.0, write_burst=2, clock=_clock_at(0.0), max_idle=10
    )
    for user_id in range(1, 100):
        quotas.admit(user_id)
        quotas.release(user_id)
    assert quotas.remembered_users <= 11


# ------------------------------------------------------------------ frames before welcome


def test_frames_sent_while_the_header_token_is_checked_run_after_welcome_in_order() -> None:
    session, _, _ = _session()
    session.use_header_token("tok")
    auth = _only(session.commands())
    _feed(session, {"type": "subscribe", "event_id": 4, "id": "sub"})
    _feed(session, {"type": "ping", "id": "p"})
    _feed(session, _send(9))
    assert [f["type"] for f in _sent(session)] == ["pong"]  # held, not refused
    assert session.commands() == []
    assert isinstance(auth, Authenticate)
    session.authenticated(auth, 7, "s-1")
    assert [f["type"] for f in _sent(session)] == ["welcome"]
    commands = session.commands()
    assert [type(c).__name__ for c in commands] == ["Subscribe", "Send"]
    assert commands[0] == Subscribe(4, None, "sub")


def test_frames_after_hello_before_welcome_are_held_too_and_dropped_if_it_fails() -> None:
    session, _, _ = _session()
    _feed(session, {"type": "hello", "token": "bad", "id": "h"})
    auth = _only(session.commands())
    _feed(session, {"type": "subscribe", "event_id": 4, "id": "sub"})
    assert _sent(session) == []
    session.failed(auth, Unauthorized("the access token is invalid"))
    assert [f["code"] for f in _sent(session)] == ["unauthorized"]
    assert session.commands() == []
    assert session.close_code == 4401


def test_at_most_the_held_frame_count_waits_for_authentication() -> None:
    limits = Limits.from_settings(Settings(ws_frame_burst=1000))
    session, _, _ = _session(limits)
    session.use_header_token("tok")
    auth = _only(session.commands())
    for n in range(HELD_FRAMES + 1):
        _feed(session, {"type": "subscribe", "event_id": n + 1, "id": n})
    [refused] = _sent(session)
    assert (refused["code"], refused["ref"]) == ("not_authenticated", HELD_FRAMES)
    assert isinstance(auth, Authenticate)
    session.authenticated(auth, 7, "s-1")
    assert len(session.commands()) == HELD_FRAMES


def test_a_held_frame_breaking_a_rule_is_answered_after_welcome() -> None:
    session, _, _ = _session()
    session.use_header_token("tok")
    auth = _only(session.commands())
    _feed(session, {"type": "subscribe", "event_id": 4, "id": 1})
    _feed(session, {"type": "subscribe", "event_id": 4, "id": 2})
    assert isinstance(auth, Authenticate)
    session.authenticated(auth, 7, "s-1")
    welcome, error = _sent(session)
    assert welcome["type"] == "welcome"
    assert (error["code"], error["ref"]) == ("already_subscribed", 2)


# ------------------------------------------------------------------ how authentication fails


@pytest.mark.parametrize(
    ("error", "code", "close"),
    [
        (Unauthorized("the access token has expired"), "unauthorized", 4401),
        (ServiceUnavailable("the database is unavailable"), "unavailable", 1013),
        (TooManyConnections("10 connections already"), "too_many_connections", 4429),
    ],
)
def test_a_failed_authentication_closes_with_the_code_of_its_cause(
    error: Exception, code: str, close: int
) -> None:
    session, _, _ = _session()
    _feed(session, {"type": "hello", "token": "t", "id": "h"})
    auth = _only(session.commands())
    assert isinstance(error, Unauthorized | ServiceUnavailable | TooManyConnections)
    session.failed(auth, error)
    [frame] = _sent(session)
    assert (frame["code"], frame["ref"]) == (code, "h")
    assert session.state is State.CLOSING
    assert session.close_code == close


# ------------------------------------------------------------------ expiry and refresh


def test_the_welcome_says_when_the_token_expires_and_the_session_closes_then() -> None:
    session, clock, wall = _session()
    session.use_header_token("tok")
    auth = _only(session.commands())
    assert isinstance(auth, Authenticate)
    session.authenticated(auth, 7, "s-1", expires_at=WALL_START + 2.5)
    [welcome] = _sent(session)
    assert welcome["expires_at"] == "2027-01-15T08:00:02.500000+00:00"
    assert session.next_deadline() == pytest.approx(1001.0)  # the first heartbeat
    _advance(1.0, clock, wall)
    session.tick()
    _feed(session, {"type": "pong"})
    assert session.next_deadline() == pytest.approx(1002.0)
    _advance(1.0, clock, wall)
    session.tick()
    _feed(session, {"type": "pong"})
    assert session.next_deadline() == pytest.approx(1002.5)  # the token's expiry
    _advance(0.5, clock, wall)
    session.tick()
    frames = _sent(session)
    assert frames[-1]["code"] == "unauthorized"
    assert "expired" in frames[-1]["message"]
    assert session.close_code == 4401


def test_a_refresh_moves_the_end_of_the_session_to_the_new_tokens_expiry() -> None:
    session, clock, wall = _session()
    _authenticated(session, expires_at=WALL_START + 2.0)
    _feed(session, {"type": "refresh", "token": "newer", "id": "r"})
    refresh = _only(session.commands())
    assert refresh == Refresh("newer", "r")
    assert isinstance(refresh, Refresh)
    session.refreshed(refresh, WALL_START + 60.0)
    [answer] = _sent(session)
    assert answer == {
        "type": "refreshed",
        "ref": "r",
        "user_id": 7,
        "session_id": "s-1",
        "expires_at": "2027-01-15T08:01:00+00:00",
    }
    for _ in range(5):  # past the old expiry, answering pings
        _advance(0.9, clock, wall)
        session.tick()
        _feed(session, {"type": "pong"})
    assert session.state is State.OPEN


def test_a_rejected_refresh_closes_with_4401_but_an_unavailable_database_does_not() -> None:
    session, _, _ = _session()
    _authenticated(session, expires_at=WALL_START + 60.0)
    _feed(session, {"type": "refresh", "token": "t1", "id": 1})
    session.failed(_only(session.commands()), ServiceUnavailable("retry later"))
    assert _sent(session)[0]["code"] == "unavailable"
    assert session.state is State.OPEN
    _feed(session, {"type": "refresh", "token": "t2", "id": 2})
    session.failed(_only(session.commands()), Unauthorized("the new token is for another user"))
    assert _sent(session)[0]["code"] == "unauthorized"
    assert session.close_code == 4401


def test_refresh_before_authentication_is_not_authenticated() -> None:
    session, _, _ = _session()
    _feed(session, {"type": "refresh", "token": "t", "id": 1})
    assert _sent(session)[0]["code"] == "not_authenticated"


def test_a_queued_send_costs_its_strings_not_only_a_count() -> None:
    small = Send(1, "c", "hi", "text", (), None, {})
    large = Send(1, "c", "🙂" * 4000, "text", ("https://x.test/" + "a" * 2000,) * 10, None, {})
    assert command_bytes(small) < 512
    assert command_bytes(large) > 4000 * 4 + 10 * 2000
