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
