"""The page checks of ``bench mixed``, over made-up store contents and ack times."""

from __future__ import annotations

from bench.load.mixed import split_mix
from bench.load.verify_reads import PageRead, verify_pages

STORED = {7: [f"m{i}" for i in range(10)]}  # oldest first
EARLY = dict.fromkeys(STORED[7], 100)  # every message acked at t=100


def page(direction: str, after: str | None, ids: list[str], *, complete: bool = False) -> PageRead:
    return PageRead(7, direction, after, tuple(ids), issued_ns=1_000, complete=complete)


def test_pages_that_continue_each_other_exactly_pass() -> None:
    pages = [
        page("older", None, ["m9", "m8", "m7"]),
        page("older", "m7", ["m6", "m5", "m4"]),
        page("older", "m4", ["m3", "m2", "m1", "m0"], complete=True),
        page("newer", "m4", ["m5", "m6", "m7", "m8", "m9"], complete=True),
    ]
    result = verify_pages(pages, STORED, EARLY)
    assert result.ok, result.as_dict()
    assert (result.checked_pages, result.checked_ids) == (4, 15)


def test_a_row_skipped_at_a_seam_is_missing_and_a_repeated_one_is_caught() -> None:
    skipped = verify_pages([page("older", "m7", ["m5", "m4"])], STORED, EARLY)
    assert skipped.counts["missing"] == 1
    assert skipped.examples["missing"] == ["event 7 older after m7: m6"]
    repeated = verify_pages([page("older", "m7", ["m6", "m6", "m5"])], STORED, EARLY)
    assert repeated.counts["repeated"] == 1
    assert repeated.counts["misordered"] == 1


def test_out_of_order_and_unknown_ids_fail() -> None:
    result = verify_pages(
        [page("newer", "m2", ["m4", "m3"]), page("older", None, ["m9", "zz"])], STORED, EARLY
    )
    assert result.counts["misordered"] == 1
    assert result.counts["unexpected"] == 1
    assert not result.ok


def test_a_message_acked_after_the_page_was_asked_for_may_be_absent() -> None:
    late = {**EARLY, "m9": 5_000, "m6": 5_000}  # acked after the pages were asked for
    pages = [page("older", None, ["m8", "m7"]), page("newer", "m5", ["m7", "m8"], complete=True)]
    assert verify_pages(pages, STORED, late).ok
    never = {k: v for k, v in EARLY.items() if k != "m9"}  # never acknowledged at all
    assert verify_pages([page("older", None, ["m8"])], STORED, never).ok


def test_a_latest_page_missing_a_newer_acked_message_fails() -> None:
    result = verify_pages([page("older", None, ["m8", "m7"])], STORED, EARLY)
    assert result.counts["missing"] == 1


def test_a_complete_replay_must_reach_every_message_acked_before_it() -> None:
    result = verify_pages([page("newer", "m6", ["m7", "m8"], complete=True)], STORED, EARLY)
    assert result.examples["missing"] == ["event 7 newer after m6: m9"]


def test_the_read_mix_goes_half_over_each_transport_and_unread_over_rest() -> None:
    mix = (("latest", 0.3), ("scroll", 0.3), ("since", 0.2), ("unread", 0.2))
    (ws, ws_rate, ws_mix), (rest, rest_rate, rest_mix) = split_mix(mix, 100.0)
    assert (ws, rest) == ("ws", "rest")
    assert round(ws_rate, 6) == 40.0
    assert round(rest_rate, 6) == 60.0
    assert "unread" not in dict(ws_mix)
    per_kind = {k: ws_rate * w / sum(dict(ws_mix).values()) for k, w in ws_mix}
    assert round(per_kind["latest"], 6) == 15.0
    rest_kinds = {k: rest_rate * w / sum(dict(rest_mix).values()) for k, w in rest_mix}
    assert round(rest_kinds["unread"], 6) == 20.0
    assert round(rest_kinds["latest"], 6) == 15.0
