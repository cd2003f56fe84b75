"""The compact form of a stored row: one ``bytes`` object per row.

A row kept as Python objects — a list of per-cell tuples, an ``int`` per timestamp, a
``bytes`` per value — costs about 1.5 KB for a chat message's row. The storage keeps each
row instead as one ``bytes`` object: its encoded size plus one object header, ~40 bytes.
Writes to a row that exists decode it into a :class:`~cells.Row`, merge, and encode it
again; a fresh INSERT is encoded straight from its bound values (:meth:`RowCodec.insert`),
and replaces a stored row it overwrites wholly without decoding it
(:meth:`RowCodec.superseded`); reads take the values they need from the bytes
(:meth:`RowCodec.reader`). The two hottest paths — a fresh INSERT's encoding and a SELECT's
reading — run code generated per shape (a handful per table) rather than loops.

The encoding is canonical — a function of the row's content only, never of the order of
writes that made it — so that a row rebuilt by replaying the commit log, loaded from a
snapshot or written live is the same bytes (``tests/cql/test_rowcodec.py``).

Layout::

    prefix | payload | trailer

* ``prefix``: what the row sorts by in its container (:mod:`runs`) — its clustering ordering
  key, or in a table without clustering columns the token (8 bytes, offset so that unsigned
  order is signed order) and the partition key. Clustering ordering keys are prefix-free, so
  whole rows sort as their keys do.
* ``trailer``: the prefix's length, ``n << 1`` in 2 bytes, or ``n << 1 | 1`` in 4 from 32 KiB.
* ``payload``::

    flags       u8     F_* below
    nslots      u8     regular slots encoded (u16 with F_MANY_SLOTS); absent ones at the end
                       are left out, so ALTER TABLE ADD changes no stored row
    ts          q      the default timing: the marker's, else the first simple cell's
    exp, ttl    I I    with F_EXPIRING: the default timing's expiry (seconds) and TTL
    deleted_at  q      with F_DELETED: the row tombstone
    slot table  u16 each (u32 with F_WIDE): ``state << SHIFT | offset`` for the clustering
                values (with F_CV), then every slot, then the end offset
    values      clustering values, then cell values, back to back
    timings     (ts q, exp I, ttl I) of each cell whose state is *_OWN, in slot order

A cell's state says whether it is absent, live or a tombstone, and whether it has the
default timing or its own; a non-frozen collection's value is its own small encoding
(:func:`_encode_collection`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from chat.embedded.cql.cells import NO_TS, OP_SET, CollectionCell, Marker, Row

F_MARKER = 0x01
F_EXPIRING = 0x02
F_DELETED = 0x04
F_CV = 0x08
F_WIDE = 0x10
F_OWN = 0x20
F_MANY_SLOTS = 0x40
F_COLLECTION = 0x80

LIVE = 0  # zero: a live cell's slot table entry is its offset as it is
ABSENT = 1
LIVE_OWN = 2
NULL = 3
NULL_OWN = 4
COLLECTION = 5

NARROW_SHIFT = 13
NARROW_LIMIT = 1 << NARROW_SHIFT  # values section of a narrow row: under 8 KiB
WIDE_SHIFT = 29
WIDE_MASK = (1 << WIDE_SHIFT) - 1
NARROW_MASK = NARROW_LIMIT - 1

_Q = struct.Struct(">q")
_I = struct.Struct(">I")
_II = struct.Struct(">II")
_TIMING = struct.Struct(">qII")
_HEAD = struct.Struct(">BBq")  # flags, nslots, ts
_HEAD_MANY = struct.Struct(">BHq")
_ELEMENT = struct.Struct(">I")
_VLEN = struct.Struct(">i")
_H = struct.Struct(">H")
_TOKEN_OFFSET = 2**63


@cache
def _table(count: int, wide: bool) -> struct.Struct:
    return struct.Struct(f">{count}{'I' if wide else 'H'}")


_NARROW = [_table(count, False) for count in range(512)]
"""Narrow slot tables by entry count: a list index on the hot read path, not a cache lookup."""


def _narrow(count: int) -> struct.Struct:
    return _NARROW[count] if count < len(_NARROW) else _table(count, False)


# A fresh INSERT's header and slot table in one pack (by slot-table entry count).
_HEADS = [struct.Struct(f">BBq{count}H") for count in range(len(_NARROW))]
_EXPIRING_HEADS = [struct.Struct(f">BBqII{count}H") for count in range(len(_NARROW))]


def trailer(n: int) -> bytes:
    return _H.pack(n << 1) if n < 0x8000 else _I.pack(n << 1 | 1)


_TRAILERS = [trailer(n) for n in range(256)]


def prefix_len(blob: bytes) -> int:
    """Length of the row's prefix (its sort key)."""
    last = blob[-1]
    if last & 1:
        return int.from_bytes(blob[-4:], "big") >> 1
    return (blob[-2] << 8 | last) >> 1


def may_expire(blob: bytes) -> bool:
    """Whether anything in the row may carry a TTL (a cheap test: the flags byte only)."""
    return bool(blob[prefix_len(blob)] & (F_EXPIRING | F_OWN | F_COLLECTION))


def token_prefix(token: int, key: bytes) -> bytes:
    """The prefix of a row in a table without clustering columns: token, then partition key."""
    return (token + _TOKEN_OFFSET).to_bytes(8, "big") + key


def token_of_prefix(prefix: bytes) -> int:
    return int.from_bytes(prefix[:8], "big") - _TOKEN_OFFSET


def _encode_collection(cell: CollectionCell) -> bytes:
    """cleared_at, then per element (in key order): key, value (-1: tombstone), timing."""
    out = [_Q.pack(cell.cleared_at)]
    for key in sorted(cell.items):
        c = cell.items[key]
        value = c[2]
        out.append(_ELEMENT.pack(len(key)))
        out.append(key)
        if value is None:
            out.append(_VLEN.pack(-1))
        else:
            out.append(_VLEN.pack(len(value)))
            out.append(value)
        out.append(_TIMING.pack(c[3], c[4], c[5]))
    return b"".join(out)


def _decode_collection(raw: bytes, slot: int) -> CollectionCell:
    cleared_at = _Q.unpack_from(raw, 0)[0]
    items: dict[bytes, Any] = {}
    pos = 8
    end = len(raw)
    while pos < end:
        klen = _ELEMENT.unpack_from(raw, pos)[0]
        pos += 4
        key = raw[pos : pos + klen]
        pos += klen
        vlen = _VLEN.unpack_from(raw, pos)[0]
        pos += 4
        value: bytes | None = None
        if vlen >= 0:
            value = raw[pos : pos + vlen]
            pos += vlen
        ts, exp, ttl = _TIMING.unpack_from(raw, pos)
        pos += 16
        items[key] = (OP_SET, slot, value, ts, exp, ttl)
    return CollectionCell(cleared_at, items)


class Header:
    """A row's payload header, parsed (the slow paths; the hot read path parses inline)."""

    __slots__ = (
        "deleted_at",
        "entries",
        "exp",
        "flags",
        "ncv",
        "nslots",
        "shift",
        "timings",
        "ts",
        "ttl",
        "vbase",
    )

    def __init__(self, blob: bytes, ncv: int) -> None:
        pos = prefix_len(blob)
        flags = blob[pos]
        if flags & F_MANY_SLOTS:
            flags, nslots, ts = _HEAD_MANY.unpack_from(blob, pos)
            pos += 11
        else:
            flags, nslots, ts = _HEAD.unpack_from(blob, pos)
            pos += 10
        exp = ttl = 0
        if flags & F_EXPIRING:
            exp, ttl = _II.unpack_from(blob, pos)
            pos += 8
        deleted_at = NO_TS
        if flags & F_DELETED:
            deleted_at = _Q.unpack_from(blob, pos)[0]
            pos += 8
        ncv = ncv if flags & F_CV else 0
        wide = bool(flags & F_WIDE)
        count = ncv + nslots + 1
        self.entries: tuple[int, ...] = _table(count, wide).unpack_from(blob, pos)
        self.vbase = pos + count * (4 if wide else 2)
        self.shift = WIDE_SHIFT if wide else NARROW_SHIFT
        self.timings = self.vbase + (self.entries[-1] & (WIDE_MASK if wide else NARROW_MASK))
        self.flags, self.nslots, self.ts, self.exp, self.ttl = flags, nslots, ts, exp, ttl
        self.deleted_at = deleted_at
        self.ncv = ncv


class RowCodec:
    """Encodes and decodes the rows of one table (``ncv``: its clustering columns)."""

    __slots__ = ("ncv",)

    def __init__(self, ncv: int) -> None:
        self.ncv = ncv

    # ---------------------------------------------------------------------------------------
    # Encoding.

    def encode(self, prefix: bytes, row: Row) -> bytes | None:
        """The canonical bytes of ``row``; None when it holds nothing (it is then not stored)."""
        cells = row.cells
        nslots = len(cells)
        while nslots and cells[nslots - 1] is None:
            nslots -= 1
        marker = row.marker
        if marker is not None:
            ts, exp, ttl = marker
        else:
            first = next((c for c in cells[:nslots] if type(c) is tuple), None)
            ts, exp, ttl = (first[3], first[4], first[5]) if first is not None else (0, 0, 0)
        if marker is None and nslots == 0 and row.deleted_at == NO_TS:
            return None
        flags = F_MARKER if marker is not None else 0
        values: list[bytes] = []
        states: list[int] = []
        timings: list[bytes] = []
        if self.ncv:
            flags |= F_CV
            values.extend(row.ck)
            states.extend([LIVE] * len(row.ck))
        for c in cells[:nslots]:
            if c is None:
                states.append(ABSENT)
                values.append(b"")
            elif type(c) is tuple:
                own = c[3] != ts or c[4] != exp or c[5] != ttl
                if own:
                    timings.append(_TIMING.pack(c[3], c[4], c[5]))
                if c[2] is None:
                    states.append(NULL_OWN if own else NULL)
                    values.append(b"")
                else:
                    states.append(LIVE_OWN if own else LIVE)
                    values.append(c[2])
            else:
                flags |= F_COLLECTION
                states.append(COLLECTION)
                values.append(_encode_collection(c))
        if timings:
            flags |= F_OWN
        return self._assemble(
            prefix, flags, nslots, ts, exp, ttl, row.deleted_at, states, values, timings
        )

    def insert(
        self,
        prefix: bytes,
        cv: Sequence[bytes],
        marker: Marker,
        slots: Sequence[int],
        vals: Sequence[bytes | None],
    ) -> bytes:
        """A new row written by one INSERT: the marker, and ``vals`` at ``slots`` (ascending),
        every cell with the marker's timing — the same bytes :meth:`encode` gives that row."""
        ts, exp, ttl = marker
        ncv = self.ncv
        flags = F_MARKER | F_CV if ncv else F_MARKER
        nslots = slots[-1] + 1 if slots else 0
        if None in vals or nslots != len(slots):  # nulls or absent columns: states to set
            states = [LIVE] * ncv + [ABSENT] * nslots
            values: list[bytes] = [*cv, *[b""] * nslots]
            for slot, v in zip(slots, vals, strict=True):
                if v is None:
                    states[ncv + slot] = NULL
                else:
                    states[ncv + slot] = LIVE
                    values[ncv + slot] = v
            return self._assemble(prefix, flags, nslots, ts, exp, ttl, NO_TS, states, values, [])
        # Every slot from 0 present and live, the common INSERT: every state is LIVE (0), so
        # the slot table is the offsets as they are, packed with the header in one call.
        count = ncv + nslots + 1
        if nslots >= 256 or count >= len(_NARROW):
            return self._assemble_live(prefix, flags, nslots, marker, [*cv, *vals])  # type: ignore[list-item]
        plen = len(prefix)
        tail = _TRAILERS[plen] if plen < len(_TRAILERS) else trailer(plen)
        row = _live_encoder(ncv, nslots, bool(exp or ttl))(prefix, cv, vals, flags, marker, tail)
        if row is None:  # 8 KiB of values or more: the wide slot table
            return self._assemble_live(prefix, flags, nslots, marker, [*cv, *vals])  # type: ignore[list-item]
        return row

    def _assemble_live(
        self, prefix: bytes, flags: int, nslots: int, marker: Marker, values: list[bytes]
    ) -> bytes:
        ts, exp, ttl = marker
        states = [LIVE] * len(values)
        return self._assemble(prefix, flags, nslots, ts, exp, ttl, NO_TS, states, values, [])

    def _assemble(
        self,
        prefix: bytes,
        flags: int,
        nslots: int,
        ts: int,
        exp: int,
        ttl: int,
        deleted_at: int,
        states: list[int],
        values: list[bytes],
        timings: list[bytes],
    ) -> bytes:
        if exp or ttl:
            flags |= F_EXPIRING
        if deleted_at != NO_TS:
            flags |= F_DELETED
        end = sum(map(len, values))
        wide = end >= NARROW_LIMIT
        shift = WIDE_SHIFT if wide else NARROW_SHIFT
        if wide:
            flags |= F_WIDE
        if nslots >= 256:
            flags |= F_MANY_SLOTS
            head = _HEAD_MANY.pack(flags, nslots, ts)
        else:
            head = _HEAD.pack(flags, nslots, ts)
        parts = [prefix, head]
        if flags & F_EXPIRING:
            parts.append(_II.pack(exp, ttl))
        if flags & F_DELETED:
            parts.append(_Q.pack(deleted_at))
        entries = []
        offset = 0
        for state, value in zip(states, values, strict=True):
            entries.append(state << shift | offset)
            offset += len(value)
        entries.append(end)
        parts.append(_table(len(entries), wide).pack(*entries))
        parts.extend(values)
        parts.extend(timings)
        parts.append(trailer(len(prefix)))
        return b"".join(parts)

    # ---------------------------------------------------------------------------------------
    # Decoding.

    def decode(self, blob: bytes, width: int) -> Row:
        """The row as a mutable :class:`Row` with ``width`` slots (at least)."""
        h = Header(blob, self.ncv)
        entries, shift, vbase = h.entries, h.shift, h.vbase
        mask = (1 << shift) - 1
        ncv = h.ncv
        offsets = [vbase + (e & mask) for e in entries]
        ck = tuple([blob[offsets[i] : offsets[i + 1]] for i in range(ncv)])
        ts, exp, ttl = h.ts, h.exp, h.ttl
        marker = (ts, exp, ttl) if h.flags & F_MARKER else None
        nslots = h.nslots
        cells: list[Any] = [None] * (width if width > nslots else nslots)
        if not h.flags & (F_OWN | F_COLLECTION):  # every cell with the default timing
            for slot in range(nslots):
                p = ncv + slot
                state = entries[p] >> shift
                if state == LIVE:
                    cells[slot] = (OP_SET, slot, blob[offsets[p] : offsets[p + 1]], ts, exp, ttl)
                elif state == NULL:
                    cells[slot] = (OP_SET, slot, None, ts, exp, ttl)
            return Row(ck, len(cells), h.deleted_at, marker, cells)
        tpos = h.timings
        default = (ts, exp, ttl)
        for slot in range(nslots):
            p = ncv + slot
            state = entries[p] >> shift
            if state == ABSENT:
                continue
            if state in (LIVE_OWN, NULL_OWN):
                timing = _TIMING.unpack_from(blob, tpos)
                tpos += 16
            else:
                timing = default
            if state in (NULL, NULL_OWN):
                cells[slot] = (OP_SET, slot, None, *timing)
            elif state == COLLECTION:
                cells[slot] = _decode_collection(blob[offsets[p] : offsets[p + 1]], slot)
            else:
                cells[slot] = (OP_SET, slot, blob[offsets[p] : offsets[p + 1]], *timing)
        return Row(ck, len(cells), h.deleted_at, marker, cells)

    def clustering(self, blob: bytes) -> tuple[bytes, ...]:
        """The clustering values of a row (its ``ck``)."""
        if not self.ncv:
            return ()
        h = Header(blob, self.ncv)
        entries, vbase = h.entries, h.vbase
        mask = (1 << h.shift) - 1
        return tuple(
            blob[vbase + (entries[i] & mask) : vbase + (entries[i + 1] & mask)]
            for i in range(self.ncv)
        )

    def is_live(self, blob: bytes, now: int) -> bool:
        """Whether the row shows in reads: a live marker or a live cell."""
        h = Header(blob, self.ncv)
        if h.flags & F_MARKER and (h.exp == 0 or h.exp > now):
            return True
        if not h.flags & (F_OWN | F_COLLECTION):
            if h.exp and h.exp <= now:
                return False
            shift = h.shift
            return any(e >> shift == LIVE for e in h.entries[h.ncv : -1])
        return self.decode(blob, 0).is_live(now)

    def superseded(self, blob: bytes, ts: int, slots: Sequence[int]) -> bool:
        """Whether a fresh INSERT at ``ts`` writing ``slots`` (ascending) replaces every part of
        the stored row: the row has no tombstone and no collection, every timestamp in it is
        older than ``ts``, and the INSERT writes each of its cells. The merged row is then the
        INSERT's own (the common upsert needs no decoding)."""
        last = blob[-1]
        pos = int.from_bytes(blob[-4:], "big") >> 1 if last & 1 else (blob[-2] << 8 | last) >> 1
        flags, nslots, old_ts = _HEAD.unpack_from(blob, pos)
        if flags & (F_DELETED | F_COLLECTION | F_MANY_SLOTS) or old_ts >= ts:
            return False
        h = None
        if flags & F_OWN:  # cells written later than the row: each must be older too
            h = Header(blob, self.ncv)
            end = len(blob) - (4 if last & 1 else 2)
            if any(t[0] >= ts for t in _TIMING.iter_unpack(blob[h.timings : end])):
                return False
        if nslots == 0:
            return True
        if slots and slots[-1] + 1 == len(slots):  # the INSERT writes slots 0..n-1
            return bool(nslots <= len(slots))
        h = h or Header(blob, self.ncv)
        written = set(slots)
        shift = h.shift
        return all(
            e >> shift == ABSENT or slot in written for slot, e in enumerate(h.entries[h.ncv : -1])
        )

    def expires_by(self, blob: bytes, now: int) -> bool:
        """Whether everything in the row has expired and nothing in it shadows older writes:
        such a row can be forgotten. Partly expired rows are left as they are."""
        h = Header(blob, self.ncv)
        if h.flags & F_DELETED:
            return False
        default_expired = h.exp != 0 and h.exp <= now
        if h.flags & F_MARKER and not default_expired:
            return False
        if not h.flags & (F_OWN | F_COLLECTION):
            shift = h.shift
            for e in h.entries[h.ncv : -1]:
                state = e >> shift
                if state == NULL or (state == LIVE and not default_expired):
                    return False
            return True
        row = self.decode(blob, 0)
        row.forget_expired(now)
        return row.is_empty()

    def reader(self, columns: Sequence[tuple[str, int]]) -> Callable[[bytes, int, Any], Any]:
        """The hot read path: ``read(blob, now, partition_values)`` gives the row's values of
        ``columns`` — ``("pk", i)``, ``("ck", i)``, ``("cell", slot)`` — as a list (None where
        absent, null or expired), or None when the row is not live, or :data:`SLOW` for a
        row it leaves to :meth:`decode` (cells with their own timing, collections, rows of
        8 KiB and more).

        The function is generated for the columns (one expression per column, no loop): the
        common row — live marker, no TTL, no tombstone — costs one slot-table unpack and one
        slice per value. Other rows take :meth:`_read_other`.
        """
        return _reader(self.ncv, tuple(columns))

    def read_other(
        self, blob: bytes, now: int, pv: Sequence[bytes], columns: Sequence[tuple[str, int]]
    ) -> Any:
        """:meth:`reader` for rows other than the common one (a TTL, a tombstone, no marker,
        slots missing at the end)."""
        last = blob[-1]
        if last & 1:
            return SLOW
        pos = (blob[-2] << 8 | last) >> 1
        flags, nslots, _ts = _HEAD.unpack_from(blob, pos)
        if flags & _SLOW_FLAGS:
            return SLOW
        pos += 10
        alive = True
        if flags & F_EXPIRING:
            expiry = int.from_bytes(blob[pos : pos + 4], "big")
            alive = expiry == 0 or expiry > now
            pos += 8
        if flags & F_DELETED:
            pos += 8
        ncv = self.ncv
        count = ncv + nslots + 1
        entries = _narrow(count).unpack_from(blob, pos)
        if not alive or not (flags & F_MARKER or any(e < NARROW_LIMIT for e in entries[ncv:-1])):
            return None
        vbase = pos + count * 2
        out: list[bytes | None] = []
        for kind, i in columns:
            if kind == "pk":
                out.append(pv[i])
                continue
            p = i if kind == "ck" else ncv + i
            if p >= count - 1 or entries[p] >= NARROW_LIMIT:
                out.append(None)
            else:
                out.append(blob[vbase + entries[p] : vbase + (entries[p + 1] & NARROW_MASK)])
        return out


@cache
def _reader(ncv: int, columns: tuple[tuple[str, int], ...]) -> Callable[[bytes, int, Any], Any]:
    """Generates :meth:`RowCodec.reader`'s function; one per distinct table shape and column
    list for the life of the process (they are few), so no PREPARE leaves one behind."""
    codec = RowCodec(ncv)
    if ncv + 257 > len(_NARROW):  # hundreds of clustering columns: the general path only

        def read_any(blob: bytes, now: int, pv: Any) -> Any:
            return codec.read_other(blob, now, pv, columns)

        return read_any
    need = max((i + 1 for kind, i in columns if kind == "cell"), default=0)
    common = F_MARKER | (F_CV if ncv else 0)
    values = []
    for kind, i in columns:
        if kind == "pk":
            values.append(f"pv[{i}]")
        elif kind == "ck":
            values.append(f"blob[b + e[{i}] : b + (e[{i + 1}] & M)]")
        else:
            p = ncv + i
            values.append(f"(blob[b + e[{p}] : b + (e[{p + 1}] & M)] if e[{p}] < L else None)")
    source = f"""
def read(blob, now, pv):
    last = blob[-1]
    if last & 1:
        return other(blob, now, pv, columns)
    pos = (blob[-2] << 8 | last) >> 1
    if blob[pos] != {common} or blob[pos + 1] < {need}:
        return other(blob, now, pv, columns)
    count = {ncv + 1} + blob[pos + 1]
    e = tables[count].unpack_from(blob, pos + 10)
    b = pos + 10 + 2 * count
    return [{", ".join(values)}]
"""
    namespace: dict[str, Any] = {
        "other": codec.read_other,
        "columns": columns,
        "tables": _NARROW,
        "M": NARROW_MASK,
        "L": NARROW_LIMIT,
    }
    exec(source, namespace)
    read: Callable[[bytes, int, Any], Any] = namespace.pop("read")
    return read


_SLOW_FLAGS = F_OWN | F_COLLECTION | F_MANY_SLOTS | F_WIDE


@cache
def _live_encoder(ncv: int, nslots: int, expiring: bool) -> Callable[..., bytes | None]:
    """Generates the encoder of a fresh INSERT's row whose every slot is live: straight-line
    code for this many values (a loop or ``itertools.accumulate`` costs more than the rest of
    the encoding). None when the values take 8 KiB or more (the caller goes wide)."""
    names = [f"c{i}" for i in range(ncv)] + [f"v{i}" for i in range(nslots)]
    lines = []
    if ncv:
        lines.append(f"    {', '.join(names[:ncv])}, = cv")
    if nslots:
        lines.append(f"    {', '.join(names[ncv:])}, = vals")
    offsets = ["0"]
    for i, name in enumerate(names):
        lines.append(f"    o{i + 1} = {'' if i == 0 else f'o{i} + '}len({name})")
        offsets.append(f"o{i + 1}")
    lines.append(f"    if {offsets[-1]} >= {NARROW_LIMIT}:\n        return None")
    timing = "marker[0], marker[1], marker[2]" if expiring else "marker[0]"
    head_flags = f"flags | {F_EXPIRING}" if expiring else "flags"
    pack = f"head.pack({head_flags}, {nslots}, {timing}, {', '.join(offsets)})"
    parts = ", ".join(["prefix", pack, *names, "tail"])
    source = "def encode(prefix, cv, vals, flags, marker, tail):\n"
    source += "\n".join(lines) + f"\n    return b''.join(({parts}))\n"
    heads = _EXPIRING_HEADS if expiring else _HEADS
    namespace: dict[str, Any] = {"head": heads[ncv + nslots + 1]}
    exec(source, namespace)  # the source: integers and fixed text only
    encode: Callable[..., bytes | None] = namespace.pop("encode")
    return encode


SLOW: Any = object()
"""What :meth:`RowCodec.reader`'s function returns for a row it leaves to the slow path."""
