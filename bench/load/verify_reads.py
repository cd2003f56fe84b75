"""After a read run: was every page read exactly the store's?

Pure functions over plain records (unit-tested in ``tests/bench/test_verify_reads.py``). The
reference is the store read back after the run, partition by partition, without cursors
(:func:`bench.load.mixed.read_reference`), and the time each message was acknowledged to its
sender. A page was read while messages were still being written, so a message may be absent
from it for one reason only: it was not acknowledged yet when the page was asked for (an
acknowledged message is durable, and a read that starts later sees it). Checked per page:

- ``unexpected``: an id the store does not hold;
- ``repeated``: an id twice in the page;
- ``misordered``: ids not in the store's order (newest first for ``older`` pages, oldest
  first for ``newer`` ones);
- ``missing``: a stored message inside the page's range — between the message it continues
  from (its cursor; the newest end for a latest page) and its last message, or to the very end
  when the page says nothing more exists — that was acknowledged before the page was asked for.

Consecutive pages continue from each other's last message, so a row skipped or repeated at a
page seam or a bucket boundary shows up as ``missing`` or ``repeated``/``misordered``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

EXAMPLES = 5
PROBLEMS = ("unexpected", "repeated", "misordered", "missing")

Direction = Literal["older", "newer"]


@dataclass(frozen=True, slots=True)
class PageRead:
    """One page as a reader got it."""

    event_id: int
    direction: str
    """``older`` (newest first: latest, before) or ``newer`` (oldest first: after, since)."""
    after: str | None
    """The message the page continues from (exclusive); None: from the newest end."""
    message_ids: tuple[str, ...]
    issued_ns: int
    """When the page was asked for (``time.monotonic_ns()``)."""
    complete: bool
    """The page says nothing more exists in its direction (no next page)."""


@dataclass
class ReadVerification:
    checked_pages: int = 0
    checked_ids: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.counts[kind] for kind in PROBLEMS)

    def problem(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(example)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked_pages": self.checked_pages,
            "checked_ids": self.checked_ids,
            "problems": {k: self.counts[k] for k in PROBLEMS if self.counts[k]},
            "examples": self.examples,
        }


def verify_pages(
    pages: Iterable[PageRead],
    stored: Mapping[int, Sequence[str]],
    acked_ns: Mapping[str, int],
) -> ReadVerification:
    """Check every page against ``stored`` (each event's ids, oldest first) and the ack time
    of each message (``acked_ns``; a message without one was never acknowledged)."""
    result = ReadVerification()
    places = {event: {m: i for i, m in enumerate(ids)} for event, ids in stored.items()}
    never = float("inf")
    for page in pages:
        result.checked_pages += 1
        result.checked_ids += len(page.message_ids)
        order = stored.get(page.event_id, ())
        place = places.get(page.event_id, {})
        label = f"event {page.event_id} {page.direction} after {page.after}"
        where = [place.get(m) for m in page.message_ids]
        for message_id, at in zip(page.message_ids, where, strict=True):
            if at is None:
                result.problem("unexpected", f"{label}: {message_id}")
        if len(set(page.message_ids)) != len(page.message_ids):
            result.problem("repeated", f"{label}: {list(page.message_ids)}")
        known = [at for at in where if at is not None]
        step = -1 if page.direction == "older" else 1
        if any((b - a) * step <= 0 for a, b in itertools.pairwise(known)):
            result.problem("misordered", f"{label}: {list(page.message_ids)}")
        # The range the page covers, as store indexes [low, high).
        start = place.get(page.after) if page.after is not None else None
        if page.after is not None and start is None:
            result.problem("unexpected", f"{label}: the cursor's message is not stored")
            continue
        if page.direction == "older":
            high = start if start is not None else len(order)
            low = 0 if page.complete or not known else min(known)
        else:
            low = start + 1 if start is not None else 0
            high = len(order) if page.complete or not known else max(known) + 1
        present = set(page.message_ids)
        for message_id in order[low:high]:
            if message_id not in present and acked_ns.get(message_id, never) < page.issued_ns:
                result.problem("missing", f"{label}: {message_id}")
    return result
