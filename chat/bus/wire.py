"""How the cross-node order's facts travel in ``chat.node`` messages (JSON bodies).

Every ``chat.node`` message carries its sender (``n``), its number (``s``), the send time on
the sender's monotonic clock (``c``: the sender's own echo proves the bus carried it then),
the sender's floor (``fl``) and low (``lo``), and what it opened (``o``: event, position,
claim key), settled (``d``: event, position, published) and settled for dead nodes (``x``:
node, event, position, published) since its previous message. Positions travel as the hex of
their 16 id bytes (a floor's id is the greatest timeuuid of its tick).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from chat.domain.position import Position
from chat.gateway.ordering import OpenSend, Settled


def position_hex(position: Position) -> str:
    return position.id_bytes.hex()


def position_of(text: str) -> Position:
    return Position.of(uuid.UUID(hex=text))


def encode_opens(opens: list[OpenSend]) -> list[list[Any]]:
    return [[s.event_id, position_hex(s.position), s.claim_key] for s in opens]


def decode_opens(node_id: str, entries: Any) -> list[OpenSend]:
    return [OpenSend(node_id, int(e), position_of(p), str(k)) for e, p, k in entries]


@dataclass(frozen=True, slots=True)
class SequenceFacts:
    """The order's part of one ``chat.node`` message."""

    seq: int
    floor: Position
    low: Position
    opened: list[tuple[int, Position, str]]
    settled: list[Settled]
    orphans_settled: list[tuple[str, Settled]]

    @classmethod
    def of(cls, body: dict[str, Any]) -> SequenceFacts:
        return cls(
            int(body["s"]),
            position_of(body["fl"]),
            position_of(body["lo"]),
            [(int(e), position_of(p), str(k)) for e, p, k in body.get("o", ())],
            [Settled(int(e), position_of(p), bool(ok)) for e, p, ok in body.get("d", ())],
            [
                (str(n), Settled(int(e), position_of(p), bool(ok)))
                for n, e, p, ok in body.get("x", ())
            ],
        )
