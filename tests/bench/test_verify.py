"""Verification catches every way the store can disagree with what was acked."""

from __future__ import annotations

from bench.load.verify import SentMessage, StoredMessage, verify

EVENT = 7
ALICE, BOB, CAROL = 1, 2, 3
PARTICIPANTS = {EVENT: [ALICE, BOB, CAROL]}


def sent(sender: int, seq: int, acked: bool = True) -> SentMessage:
    cmid = f"r-{sender}-{seq}"
    return SentMessage(
        EVENT, sender, cmid, f"{cmid} text", seq, f"id-{sender}-{seq}" if acked else None
    )


def stored(message: SentMessage, *, text: str | None = None) -> StoredMessage:
    message_id = message.message_id or f"id-{message.sender_id}-{message.seq}"
    return StoredMessage(
        EVENT, message_id, message.sender_id, message.client_msg_id, text or message.text
    )


SENT = [sent(ALICE, 1), sent(BOB, 1), sent(ALICE, 2), sent(CAROL, 1)]
STORED = [stored(m) for m in SENT]
UNREAD = {(ALICE, EVENT): 2, (BOB, EVENT): 3, (CAROL, EVENT): 3}
ALL_IDS = [m.message_id for m in STORED]
DELIVERIES = {(user, EVENT): list(ALL_IDS) for user in (ALICE, BOB, CAROL)}


def test_a_store_that_matches_passes() -> None:
    result = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, DELIVERIES)
    assert result.ok, result.as_dict()
    assert result.checked_messages == 4
    assert result.checked_unread == 3
    assert result.checked_deliveries == 3


def test_an_acked_message_missing_from_the_store_fails() -> None:
    result = verify(SENT, {EVENT: STORED[:-1]}, PARTICIPANTS, None)
    assert not result.ok
    assert result.counts["missing"] == 1


def test_a_message_stored_twice_fails() -> None:
    result = verify(SENT, {EVENT: [*STORED, STORED[1]]}, PARTICIPANTS, None)
    assert result.counts["stored_twice"] >= 1
    assert not result.ok


def test_the_same_client_msg_id_under_two_ids_is_a_duplicate() -> None:
    twin = StoredMessage(EVENT, "other-id", ALICE, SENT[0].client_msg_id, SENT[0].text)
    result = verify(SENT, {EVENT: [*STORED, twin]}, PARTICIPANTS, None)
    assert result.counts["stored_twice"] == 1


def test_a_senders_messages_in_the_wrong_order_fail() -> None:
    swapped = [STORED[2], STORED[1], STORED[0], STORED[3]]  # Alice's #2 before her #1
    result = verify(SENT, {EVENT: swapped}, PARTICIPANTS, None)
    assert result.counts["misordered"] == 1
    assert not result.ok


def test_different_content_fails() -> None:
    changed = [stored(SENT[0], text="tampered"), *STORED[1:]]
    result = verify(SENT, {EVENT: changed}, PARTICIPANTS, None)
    assert result.counts["wrong_content"] == 1


def test_a_message_nobody_sent_fails() -> None:
    stranger = StoredMessage(EVENT, "x", BOB, "not-ours", "?")
    result = verify(SENT, {EVENT: [*STORED, stranger]}, PARTICIPANTS, None)
    assert result.counts["unexpected"] == 1


def test_a_wrong_unread_count_fails() -> None:
    result = verify(SENT, {EVENT: STORED}, PARTICIPANTS, {**UNREAD, (CAROL, EVENT): 4})
    assert result.counts["wrong_unread"] == 1
    missing = {k: v for k, v in UNREAD.items() if k != (BOB, EVENT)}
    assert verify(SENT, {EVENT: STORED}, PARTICIPANTS, missing).counts["wrong_unread"] == 1


def test_a_stored_send_without_ack_is_reported_and_counted_as_sent() -> None:
    late = sent(BOB, 2, acked=False)
    result = verify(
        [*SENT, late],
        {EVENT: [*STORED, stored(late)]},
        PARTICIPANTS,
        {(ALICE, EVENT): 3, (BOB, EVENT): 3, (CAROL, EVENT): 4},
    )
    assert result.ok, result.as_dict()
    assert result.counts["stored_unacked"] == 1


def test_deliveries_missing_repeated_or_out_of_order_fail() -> None:
    broken = {
        (ALICE, EVENT): ALL_IDS[:-1],
        (BOB, EVENT): [*ALL_IDS, ALL_IDS[0]],
        (CAROL, EVENT): [ALL_IDS[1], ALL_IDS[0], *ALL_IDS[2:]],
    }
    result = verify(SENT, {EVENT: STORED}, PARTICIPANTS, None, broken)
    assert result.counts["not_delivered"] == 1
    assert result.counts["delivered_twice"] == 1
    assert result.counts["delivered_out_of_order"] == 1


def test_senders_interleaved_out_of_store_order_fail_store_mode_and_pass_sender_mode() -> None:
    """Two nodes: Bob's message reached Carol before Alice's earlier-stored one (across
    senders), while each sender's own messages kept their send order."""
    interleaved = [ALL_IDS[1], ALL_IDS[0], ALL_IDS[2], ALL_IDS[3]]  # Bob #1 before Alice #1
    deliveries = {**DELIVERIES, (CAROL, EVENT): interleaved}

    strict = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, deliveries)
    assert not strict.ok
    assert strict.counts["delivered_out_of_order"] == 1

    per_sender = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, deliveries, "sender")
    assert per_sender.ok, per_sender.as_dict()
    assert per_sender.interleaved == 1
    assert per_sender.interleaved_max_behind == 1
    assert per_sender.counts["delivered_out_of_order"] == 0
    report = per_sender.as_dict()
    assert report["delivery_order"] == "sender"
    assert report["interleaved_across_senders"] == {
        "deliveries": 1,
        "max_store_positions_behind": 1,
    }


def test_a_senders_own_messages_out_of_send_order_fail_both_modes() -> None:
    swapped = [ALL_IDS[2], ALL_IDS[1], ALL_IDS[0], ALL_IDS[3]]  # Alice #2 before her #1
    deliveries = {**DELIVERIES, (BOB, EVENT): swapped}

    strict = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, deliveries)
    assert not strict.ok
    assert strict.counts["delivered_out_of_order"] >= 1

    per_sender = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, deliveries, "sender")
    assert not per_sender.ok
    assert per_sender.counts["delivered_out_of_sender_order"] == 1
    # Bob #1 after Alice #2 is only an interleaving: counted, not failed.
    assert per_sender.interleaved == 1


def test_sender_mode_still_fails_missing_and_repeated_deliveries() -> None:
    broken = {
        (ALICE, EVENT): ALL_IDS[:-1],
        (BOB, EVENT): [*ALL_IDS, ALL_IDS[0]],
        (CAROL, EVENT): list(ALL_IDS),
    }
    result = verify(SENT, {EVENT: STORED}, PARTICIPANTS, None, broken, "sender")
    assert not result.ok
    assert result.counts["not_delivered"] == 1
    assert result.counts["delivered_twice"] == 1
    assert result.interleaved == 0


def test_store_mode_reports_no_interleaving_figure() -> None:
    report = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, DELIVERIES).as_dict()
    assert report["delivery_order"] == "store"
    assert "interleaved_across_senders" not in report


def test_the_option_reaches_the_run_and_the_figure_reaches_the_table() -> None:
    from bench.load.cli import build_parser
    from bench.load.write_load import delivery_order_row

    parser = build_parser()
    assert parser.parse_args(["write-load"]).delivery_order == "store"
    assert parser.parse_args(["write-load", "--delivery-order", "sender"]).delivery_order == (
        "sender"
    )
    interleaved = {**DELIVERIES, (CAROL, EVENT): [ALL_IDS[1], ALL_IDS[0], *ALL_IDS[2:]]}
    result = verify(SENT, {EVENT: STORED}, PARTICIPANTS, UNREAD, interleaved, "sender")
    assert "1 deliveries interleaved across senders" in delivery_order_row(result)
    assert delivery_order_row(verify(SENT, {EVENT: STORED}, PARTICIPANTS, None)) == "store order"
