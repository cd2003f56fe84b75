"""After a run: does the store hold exactly what was acked, in order, once — and do the
unread counts and the deliveries agree?

Pure functions over plain records, so the checks are unit-tested with made-up store contents
(``tests/bench/test_verify.py``); :mod:`bench.load.rest` reads the real ones. Each kind of
problem is counted and a few examples are kept for the report. Everything here is a *failure*
(non-zero exit) except two kinds that are reported only:

- ``stored_unacked``: a send whose ack never arrived (the run ended, the connection dropped)
  may or may not have been stored — the protocol's answer to that is the client's retry, which
  the bench does not do — so it is reported, and counted as "sent" for the unread expectation;
- ``interleaved_across_senders`` (``delivery_order="sender"`` only): deliveries out of store
  order that kept each sender's order. ``docs/protocol.md`` promises the store's order of
  deliveries on one gateway node and on many ("One order"); the ``sender`` mode holds a target
  only to each sender connection's order, as deployments were held before the cross-node
  order existed, so how much an older build interleaves is a figure, not a failure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

UNREAD_CAP = 1000
"""``chat.store.cql.unread.UNREAD_CAP``, restated so the verifier imports no driver."""
EXAMPLES = 5
FAILURE_KINDS = (
    "missing",
    "wrong_content",
    "stored_twice",
    "misordered",
    "unexpected",
    "wrong_unread",
    "not_delivered",
    "delivered_twice",
    "delivered_out_of_order",
    "delivered_out_of_sender_order",
)
DeliveryOrder = Literal["store", "sender"]
"""What order deliveries are held to: ``store`` (the store's order, the protocol's promise on
one node or many) or ``sender`` (each sender's send order only; see the module docstring)."""
DELIVERY_ORDERS: tuple[str, ...] = get_args(DeliveryOrder)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A ``send`` the bench made; ``message_id`` is None when no ack came back."""

    event_id: int
    sender_id: int
    client_msg_id: str
    text: str
    seq: int
    """Position among the sender's sends (the order its connection sent them in)."""
    message_id: str | None = None
    acked_ns: int = 0
    """When the ack arrived (``time.monotonic_ns()``; 0 without an ack)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    event_id: int
    message_id: str
    sender_id: int
    client_msg_id: str
    text: str


@dataclass
class Problems:
    """Problems counted by kind, with a few examples of each; ``FAILURES`` fail the run."""

    FAILURES: ClassVar[tuple[str, ...]] = ()
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def problem(self, kind: str, detail: str, n: int = 1) -> None:
        self.counts[kind] += n
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(detail)

    @property
    def ok(self) -> bool:
        return not any(self.counts[kind] for kind in self.FAILURES)


@dataclass
class Verification(Problems):
    FAILURES: ClassVar[tuple[str, ...]] = FAILURE_KINDS
    checked_messages: int = 0
    checked_unread: int = 0
    checked_deliveries: int = 0
    delivery_order: DeliveryOrder = "store"
    interleaved_max_behind: int = 0
    """``sender`` mode: the furthest (in store positions) an interleaved delivery arrived
    behind the latest-stored message already received — how far "about the bus latency" went."""

    @property
    def interleaved(self) -> int:
        """``sender`` mode: deliveries out of store order across senders (informational)."""
        return self.counts["interleaved_across_senders"]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ok": self.ok,
            "checked_messages": self.checked_messages,
            "checked_unread": self.checked_unread,
            "checked_deliveries": self.checked_deliveries,
            "delivery_order": self.delivery_order,
        }
        if self.delivery_order == "sender":
            out["interleaved_across_senders"] = {
                "deliveries": self.interleaved,
                "max_store_positions_behind": self.interleaved_max_behind,
            }
        out["problems"] = {k: self.counts[k] for k in sorted(self.counts)}
        out["examples"] = self.examples
        return out


def verify(
    sent: Iterable[SentMessage],
    stored: Mapping[int, Sequence[StoredMessage]],
    participants: Mapping[int, Sequence[int]],
    unread: Mapping[tuple[int, int], int] | None,
    deliveries: Mapping[tuple[int, int], Sequence[str]] | None = None,
    delivery_order: DeliveryOrder = "store",
) -> Verification:
    """Check the store (``stored``: each event's messages in store order) against ``sent``.

    ``unread`` maps (user, event) to the count the service reports (None: not checked);
    ``deliveries`` maps (user, event) to the message ids that user's connection received, in
    arrival order (only connections that stayed open to the end; None: not checked);
    ``delivery_order`` is the order they are held to (:data:`DeliveryOrder`).
    """
    result = Verification(delivery_order=delivery_order)
    sent_list = list(sent)
    by_key = {(m.sender_id, m.client_msg_id): m for m in sent_list}
    acked_ids = {m.message_id: m for m in sent_list if m.message_id is not None}
    counted_as_sent: set[tuple[int, int, str]] = set()

    for event_id, messages in stored.items():
        ids = Counter(m.message_id for m in messages)
        keys = Counter((m.sender_id, m.client_msg_id) for m in messages)
        for message_id, n in ids.items():
            if n > 1:
                result.problem("stored_twice", f"event {event_id}: message {message_id} x{n}")
        for (sender, cmid), n in keys.items():
            if n > 1:
                result.problem(
                    "stored_twice", f"event {event_id}: sender {sender} {cmid!r} stored x{n}"
                )
        last_seq: dict[int, int] = {}
        for m in messages:
            origin = by_key.get((m.sender_id, m.client_msg_id))
            if origin is None or origin.event_id != event_id:
                result.problem("unexpected", f"event {event_id}: {m.message_id} never sent")
                continue
            counted_as_sent.add((event_id, m.sender_id, m.client_msg_id))
            if origin.message_id is None:
                result.problem("stored_unacked", f"event {event_id}: {m.client_msg_id!r}")
            previous = last_seq.get(m.sender_id)
            if previous is not None and origin.seq < previous:
                result.problem(
                    "misordered",
                    f"event {event_id}: sender {m.sender_id}'s send #{origin.seq} is stored "
                    f"after its send #{previous}",
                )
            last_seq[m.sender_id] = max(origin.seq, previous or origin.seq)

    stored_by_id = {m.message_id: m for messages in stored.values() for m in messages}
    for message_id, origin in acked_ids.items():
        result.checked_messages += 1
        found = stored_by_id.get(message_id)
        if found is None or found.event_id != origin.event_id:
            result.problem(
                "missing", f"event {origin.event_id}: acked {origin.client_msg_id!r} ({message_id})"
            )
        elif (found.sender_id, found.client_msg_id, found.text) != (
            origin.sender_id,
            origin.client_msg_id,
            origin.text,
        ):
            result.problem(
                "wrong_content",
                f"{message_id}: stored {(found.sender_id, found.client_msg_id, found.text)!r}, "
                f"sent {(origin.sender_id, origin.client_msg_id, origin.text)!r}",
            )

    if unread is not None:
        _check_unread(result, sent_list, counted_as_sent, participants, unread)
    if deliveries is not None:
        _check_deliveries(result, stored, by_key, deliveries)
    return result


def expected_unread(
    sent: Iterable[SentMessage],
    counted_as_sent: set[tuple[int, int, str]],
    participants: Mapping[int, Sequence[int]],
) -> dict[tuple[int, int], int]:
    """Per (user, event): messages sent there by others (acked, or stored without an ack);
    nobody sends ``read`` during a run, so that is every participant's unread count."""
    per_event: Counter[int] = Counter()
    per_sender: Counter[tuple[int, int]] = Counter()
    for m in sent:
        if m.message_id is not None or (m.event_id, m.sender_id, m.client_msg_id) in (
            counted_as_sent
        ):
            per_event[m.event_id] += 1
            per_sender[(m.sender_id, m.event_id)] += 1
    return {
        (user, event_id): min(UNREAD_CAP, per_event[event_id] - per_sender[(user, event_id)])
        for event_id, users in participants.items()
        for user in users
    }


def _check_unread(
    result: Verification,
    sent: Sequence[SentMessage],
    counted_as_sent: set[tuple[int, int, str]],
    participants: Mapping[int, Sequence[int]],
    unread: Mapping[tuple[int, int], int],
) -> None:
    for key, want in expected_unread(sent, counted_as_sent, participants).items():
        result.checked_unread += 1
        got = unread.get(key)
        if got != want:
            user, event_id = key
            result.problem(
                "wrong_unread", f"user {user} in event {event_id}: unread {got}, expected {want}"
            )


def _check_deliveries(
    result: Verification,
    stored: Mapping[int, Sequence[StoredMessage]],
    by_key: Mapping[tuple[int, str], SentMessage],
    deliveries: Mapping[tuple[int, int], Sequence[str]],
) -> None:
    """Every open subscriber received every message of its event once, in the order
    ``result.delivery_order`` asks for.

    An inversion is a message arriving after one stored later. ``store`` fails each one
    (``delivered_out_of_order``). ``sender`` fails only those that break the sender's own order
    (``seq``: one connection lives on one node, and a node publishes in store order — what a
    multi-node deployment guarantees and the bench can observe) as
    ``delivered_out_of_sender_order``, and counts the rest, which only interleave senders, as
    ``interleaved_across_senders``: what ``store`` would have failed, less those failures.
    """
    per_sender = result.delivery_order == "sender"
    positions: dict[int, dict[str, tuple[int, int, int]]] = {}
    for event_id, messages in stored.items():
        at: dict[str, tuple[int, int, int]] = {}
        for i, m in enumerate(messages):
            origin = by_key.get((m.sender_id, m.client_msg_id))
            seq = origin.seq if origin is not None and origin.event_id == event_id else -1
            at[m.message_id] = (i, m.sender_id, seq)  # seq -1: never sent, judged above
        positions[event_id] = at
    for (user, event_id), received in deliveries.items():
        result.checked_deliveries += 1
        order = positions.get(event_id, {})
        seen: set[str] = set()
        last = -1
        last_seq: dict[int, int] = {}
        for message_id in received:
            if message_id in seen:
                result.problem("delivered_twice", f"user {user}, event {event_id}: {message_id}")
                continue
            seen.add(message_id)
            found = order.get(message_id)
            if found is None:
                continue  # not ours (or not stored): the store checks above judge it
            here, sender, seq = found
            where = f"user {user}, event {event_id}: {message_id}"
            if not per_sender:
                if here < last:
                    result.problem("delivered_out_of_order", where)
            elif seq >= 0:
                previous = last_seq.get(sender, -1)
                if seq < previous:
                    result.problem(
                        "delivered_out_of_sender_order",
                        f"{where} (sender {sender}'s send #{seq} after its #{previous})",
                    )
                elif here < last:
                    result.problem(
                        "interleaved_across_senders",
                        f"{where} ({last - here} store positions late)",
                    )
                    result.interleaved_max_behind = max(result.interleaved_max_behind, last - here)
                last_seq[sender] = max(seq, previous)
            last = max(last, here)
        lost = [mid for mid in order if mid not in seen]
        if lost:
            result.problem(
                "not_delivered",
                f"user {user}, event {event_id}: {len(lost)} message(s), e.g. {lost[0]}",
            )


def group_participants(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """(event, user) pairs as event -> users."""
    grouped: defaultdict[int, list[int]] = defaultdict(list)
    for event_id, user in pairs:
        grouped[event_id].append(user)
    return dict(grouped)
