"""Rows in order: a sorted list of encoded rows, in chunks.

A row is one ``bytes`` object whose prefix is its sort key (:mod:`rowcodec`), so a sorted
list of rows costs one pointer per row: no dict entry, no separate key object. The list is
cut into chunks of at most ``2 * LOAD`` rows, each with its largest row in ``maxes``, so that
an insertion moves at most one chunk and a lookup is two C-level bisections. A batch of rows
in order that lands wholly before or after every row (a snapshot being loaded) is merged in
with list operations only (:meth:`Run.merge`).

Why not ``sortedcontainers.SortedList``: it has no lookup of an element by a key that is a
prefix of it, nor an in-place replacement of an element by an equal-keyed one — the two
operations every write to an existing row needs — and its per-element ``add`` is slower.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator

LOAD = 512


class Run:
    """Encoded rows sorted by their prefix; ``key_of(row)`` gives that prefix."""

    __slots__ = ("chunks", "maxes", "size")

    def __init__(self) -> None:
        self.chunks: list[list[bytes]] = []
        self.maxes: list[bytes] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            yield from chunk

    # ---------------------------------------------------------------------------------------
    # Lookups.

    def position(self, key: bytes) -> tuple[int, int]:
        """Where the first row whose bytes are not below ``key`` is (or would be)."""
        c = bisect_left(self.maxes, key)
        if c == len(self.maxes):
            return c, 0
        return c, bisect_left(self.chunks[c], key)

    def find(self, prefix: bytes, key_of: Callable[[bytes], bytes]) -> tuple[int, int] | None:
        """The position of the row whose key is exactly ``prefix``, if there is one.

        Rows whose keys merely start with ``prefix`` are stepped over (a table without
        clustering columns keys rows by token + partition key, where two keys of one token
        may share a start).
        """
        c, i = self.position(prefix)
        chunks = self.chunks
        while c < len(chunks):
            chunk = chunks[c]
            while i < len(chunk):
                row = chunk[i]
                if not row.startswith(prefix):
                    return None
                if key_of(row) == prefix:
                    return c, i
                i += 1
            c, i = c + 1, 0
        return None

    def at(self, where: tuple[int, int]) -> bytes:
        return self.chunks[where[0]][where[1]]

    def last(self) -> bytes | None:
        return self.maxes[-1] if self.maxes else None

    # ---------------------------------------------------------------------------------------
    # Changes.

    def replace(self, where: tuple[int, int], row: bytes) -> None:
        """Put ``row`` where a row of the same key is (its order is the same)."""
        c, i = where
        chunk = self.chunks[c]
        chunk[i] = row
        if i == len(chunk) - 1:
            self.maxes[c] = row

    def remove(self, where: tuple[int, int]) -> None:
        c, i = where
        chunk = self.chunks[c]
        del chunk[i]
        self.size -= 1
        if not chunk:
            del self.chunks[c]
            del self.maxes[c]
        elif i == len(chunk):
            self.maxes[c] = chunk[-1]

    def insert_new(
        self, prefix: bytes, row: bytes, key_of: Callable[[bytes], bytes]
    ) -> tuple[int, int] | None:
        """Insert ``row`` (whose key is ``prefix``) unless a row of that key is stored: the
        lookup and the insertion share their bisections. None when inserted, else where the
        stored row of that key is (nothing done)."""
        chunks, maxes = self.chunks, self.maxes
        c = bisect_left(maxes, prefix)
        if c == len(maxes):  # beyond every row: rows arriving in key order end up here
            if not chunks:
                chunks.append([row])
                maxes.append(row)
                self.size = 1
                return None
            c -= 1
            chunk = chunks[c]
            chunk.append(row)
            maxes[c] = row
        else:
            chunk = chunks[c]
            i = bisect_left(chunk, prefix)
            candidate = chunk[i]
            if candidate.startswith(prefix):  # that key, or (token collisions) one extending it
                if key_of(candidate) == prefix:
                    return c, i
                where = self.find(prefix, key_of)
                if where is not None:
                    return where
                self.add(row)
                return None
            chunk.insert(i, row)
        self.size += 1
        if len(chunk) > 2 * LOAD:
            chunks[c : c + 1] = [chunk[:LOAD], chunk[LOAD:]]
            maxes[c : c + 1] = [chunk[LOAD - 1], chunk[-1]]
        return None

    def add(self, row: bytes) -> None:
        """Insert ``row`` in order (no row of its key is in the run)."""
        self.size += 1
        chunks, maxes = self.chunks, self.maxes
        c = bisect_left(maxes, row)
        if c == len(maxes):
            if not chunks:
                chunks.append([row])
                maxes.append(row)
                return
            c -= 1
            chunks[c].append(row)
            maxes[c] = row
        else:
            insort(chunks[c], row)
        if len(chunks[c]) > 2 * LOAD:
            chunk = chunks[c]
            chunks[c : c + 1] = [chunk[:LOAD], chunk[LOAD:]]
            maxes[c : c + 1] = [chunk[LOAD - 1], chunk[-1]]

    def merge(self, batch: list[bytes]) -> None:
        """Add ``batch`` (sorted; none of its keys in the run already)."""
        if not batch:
            return
        self.size += len(batch)
        chunks, maxes = self.chunks, self.maxes
        if not chunks or batch[0] > maxes[-1]:
            if chunks and len(chunks[-1]) < LOAD:
                room = LOAD - len(chunks[-1])
                chunks[-1].extend(batch[:room])
                maxes[-1] = chunks[-1][-1]
                batch = batch[room:]
            for start in range(0, len(batch), LOAD):
                piece = batch[start : start + LOAD]
                chunks.append(piece)
                maxes.append(piece[-1])
            return
        if batch[-1] < chunks[0][0]:
            head = chunks[0]
            if len(head) < LOAD:
                room = LOAD - len(head)
                chunks[0] = batch[-room:] + head
                batch = batch[:-room]
            pieces = [batch[max(0, end - LOAD) : end] for end in range(len(batch), 0, -LOAD)]
            for piece in pieces:  # the last rows of the batch first, each before the previous
                chunks.insert(0, piece)
                maxes.insert(0, piece[-1])
            return
        touched: set[int] = set()
        last = len(maxes) - 1
        for row in batch:
            c = bisect_right(maxes, row)
            if c > last:
                c = last
                chunks[c].append(row)
                maxes[c] = row
            else:
                insort(chunks[c], row)
            touched.add(c)
        for c in sorted(touched, reverse=True):
            chunk = chunks[c]
            if len(chunk) > 2 * LOAD:
                pieces = [chunk[start : start + LOAD] for start in range(0, len(chunk), LOAD)]
                chunks[c : c + 1] = pieces
                maxes[c : c + 1] = [piece[-1] for piece in pieces]

    # ---------------------------------------------------------------------------------------
    # Ranges.

    def span(
        self,
        lo: bytes | None,
        lo_inc: bool,
        hi: bytes | None,
        hi_inc: bool,
        key_of: Callable[[bytes], bytes],
        reverse: bool = False,
    ) -> Iterator[bytes]:
        """Rows whose keys lie between ``lo`` and ``hi`` (None: unbounded), as keys compare.

        A row sorts as its key (keys are prefix-free), but as bytes it is greater than its
        key: a bound equal to a row's key is resolved by looking at that one row.
        """
        chunks = self.chunks
        if not chunks:
            return
        if lo is None:
            start = (0, 0)
        else:
            start = self.position(lo)
            if not lo_inc and start[0] < len(chunks):
                row = chunks[start[0]][start[1]]
                if key_of(row) == lo:
                    start = self._next(start)
        if hi is None:
            end = (len(chunks), 0)
        else:
            end = self.position(hi)
            if hi_inc and end[0] < len(chunks):
                row = chunks[end[0]][end[1]]
                if key_of(row) == hi:
                    end = self._next(end)
        if start >= end:
            return
        if reverse:
            yield from self._backward(start, end)
        else:
            yield from self._forward(start, end)

    def _next(self, where: tuple[int, int]) -> tuple[int, int]:
        c, i = where
        if i + 1 < len(self.chunks[c]):
            return c, i + 1
        return c + 1, 0

    def _forward(self, start: tuple[int, int], end: tuple[int, int]) -> Iterator[bytes]:
        chunks = self.chunks
        c, i = start
        end_c, end_i = end
        while c < len(chunks) and (c < end_c or (c == end_c and i < end_i)):
            chunk = chunks[c]
            stop = end_i if c == end_c else len(chunk)
            if i == 0 and stop == len(chunk):
                yield from chunk
            else:
                yield from chunk[i:stop]
            c, i = c + 1, 0

    def _backward(self, start: tuple[int, int], end: tuple[int, int]) -> Iterator[bytes]:
        chunks = self.chunks
        c, stop = end
        if stop == 0:
            c -= 1
            if c < 0:
                return
            stop = len(chunks[c])
        while c >= start[0]:
            chunk = chunks[c]
            first = start[1] if c == start[0] else 0
            for j in range(stop - 1, first - 1, -1):
                yield chunk[j]
            c -= 1
            if c >= 0:
                stop = len(chunks[c])
