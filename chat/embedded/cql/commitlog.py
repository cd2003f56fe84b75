"""Durability: an append-only commit log with group fsync, snapshots, and replay at start.

Files in the data directory:

* ``commitlog-<n>.log``: framed records, each ``u32 length | u32 crc32 | payload`` where the
  payload is one list of mutation records (``mutations.encode``: one statement or one batch,
  so a batch is all-or-nothing on replay). A torn or corrupt tail (crash mid-write) fails its
  length or CRC check and is dropped, with everything after it in that segment.
* ``snapshot-<n>.bin``: the same framing; the whole store (schema + rows) as records. It covers
  everything logged in segments ``< n``; start-up loads the newest snapshot and replays
  segments ``>= n``.

Group commit: ``append`` only buffers. A flusher task wakes on the first append, waits
``commit_sync_ms`` (less when the buffer is big) so that concurrent writes share one fsync,
then writes and fsyncs in a worker thread (the loop never blocks) and resolves the future that
every write buffered before it awaits.

Snapshots (compaction) start when the live segment passes ``segment_bytes`` — or the last
snapshot's size, whichever is larger, so the work of rewriting the store stays proportional to
what was logged instead of growing with the store at every 64 MiB: the log switches
to a new segment at once, then the engine's ``snapshot_source`` yields the store in chunks,
yielding to the loop between chunks; writes that land meanwhile are in the new segment as well.
That is correct because every record is an idempotent last-write-wins merge (counters are
logged as absolute values), so replaying the new segment over a snapshot that may already
contain some of those writes gives the same state. The snapshot is written to a temporary file
in a thread, fsynced, and renamed into place; only then are older segments deleted.

I/O errors: a failed write or fsync leaves the segment's tail unknown (torn bytes, or pages
the kernel dropped), so nothing waiting on that flush is acknowledged: its future fails. The
segment is then truncated back to the end of its last fsynced record and closed, and logging
continues in a fresh segment; replay reads each segment up to its first bad record and then
goes on with the next one, so no record that was acknowledged is ever skipped. If the
truncation or the new segment fails too, the log enters the *failed* state: it refuses every
further append (the engine refuses writes with an error) and says so at CRITICAL level, until
the server is restarted.

Files are private to the server's user: the directory is 0700, segments and snapshots 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from chat.embedded.cql.errors import WriteFailure

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_SEGMENT = re.compile(r"commitlog-(\d+)\.log$")
_SNAPSHOT = re.compile(r"snapshot-(\d+)\.bin$")
EARLY_FLUSH_BYTES = 1 << 20
DIR_MODE = 0o700
FILE_MODE = 0o600
SNAPSHOT_SYNC_BYTES = 8 << 20
"""A snapshot file is flushed to disk every this many bytes (see ``CommitLog.snapshot``)."""


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> Iterator[bytes]:
    """Payloads of a framed file, stopping (with a warning) at the first torn/corrupt record."""
    data = path.read_bytes()
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < _HEADER.size:
            log.warning("commit log %s: dropping torn header at offset %d", path.name, pos)
            return
        size, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        payload = data[start : start + size]
        if len(payload) != size or zlib.crc32(payload) != crc:
            log.warning("commit log %s: dropping corrupt tail at offset %d", path.name, pos)
            return
        yield payload
        pos = start + size


class CommitLogFailed(WriteFailure):
    """The log cannot take writes any more (an I/O error it could not recover from)."""


class CommitLog:
    def __init__(
        self,
        directory: Path,
        *,
        sync_ms: float = 2.0,
        segment_bytes: int = 64 << 20,
        on_fsync: Callable[[], None] | None = None,
        on_snapshot: Callable[[], None] | None = None,
    ) -> None:
        self.on_snapshot = on_snapshot
        self.dir = directory
        self.sync_s = max(sync_ms, 0.0) / 1000
        self.segment_bytes = segment_bytes
        self.on_fsync = on_fsync
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: asyncio.Future[None] | None = None  # covers the current buffer
        self._inflight: asyncio.Future[None] | None = None  # covers the flush in progress
        self._wakeup = asyncio.Event()
        self._fd = -1
        self._segment = 0
        self._segment_size = 0
        self._task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._snapshot_source: Callable[[], AsyncIterator[bytes]] | None = None
        self._closing = False
        self._hurry = False  # close() waits for the snapshot under way: stop pacing it
        self._last_snapshot_bytes = 0
        self.snapshots_written = 0
        self.failed: str | None = None  # why the log refuses writes, once it does
        self.io_errors = 0

    # ---------------------------------------------------------------------------------------
    # Start-up.

    def recover(self) -> Iterator[bytes]:
        """Payloads to replay: the newest snapshot's, then every later segment's, in order."""
        make_private_dir(self.dir)
        for leftover in self.dir.glob("*.tmp"):
            leftover.unlink()
        snapshots = sorted(
            (int(m.group(1)), p) for p in self.dir.iterdir() if (m := _SNAPSHOT.match(p.name))
        )
        segments = sorted(
            (int(m.group(1)), p) for p in self.dir.iterdir() if (m := _SEGMENT.match(p.name))
        )
        base = snapshots[-1][0] if snapshots else 0
        if snapshots:
            self._last_snapshot_bytes = snapshots[-1][1].stat().st_size
            yield from read_frames(snapshots[-1][1])
        for n, path in segments:
            if n >= base:
                yield from read_frames(path)
        self._segment = max([base, *(n + 1 for n, _ in segments)])

    def open(self, snapshot_source: Callable[[], AsyncIterator[bytes]]) -> None:
        """Start a fresh segment (never append after a possibly torn tail) and the flusher."""
        self._snapshot_source = snapshot_source
        self._open_segment(self._segment)
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    def _open_segment(self, n: int) -> None:
        fd = self._create_segment(n)
        old = self._fd
        self._fd, self._segment, self._segment_size = fd, n, 0
        if old >= 0:
            os.close(old)

    def _create_segment(self, n: int) -> int:
        path = self.dir / f"commitlog-{n}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            _fsync_dir(self.dir)
        except OSError:
            os.close(fd)
            raise
        return fd

    # ---------------------------------------------------------------------------------------
    # Writing.

    def append(self, payload: bytes) -> None:
        if self.failed is not None:
            raise CommitLogFailed(self.failed)
        data = frame(payload)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
            self._wakeup.set()
        elif self._buffered >= EARLY_FLUSH_BYTES:
            self._wakeup.set()

    @property
    def segment_size(self) -> int:
        return self._segment_size

    @property
    def snapshot_running(self) -> bool:
        """Whether a snapshot is being written (started by log growth or :meth:`compact`)."""
        return self._snapshot_task is not None

    def durable(self) -> asyncio.Future[None] | None:
        if self._pending is not None:
            return self._pending
        return self._inflight

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._buffered < EARLY_FLUSH_BYTES and self.sync_s > 0 and not self._closing:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.sync_s)
                self._wakeup.clear()
            if self._pending is None:
                if self._closing:
                    return
                continue
            await self._flush_once(loop)
            if self._closing and self._pending is None:
                return

    async def _flush_once(self, loop: asyncio.AbstractEventLoop) -> None:
        data = b"".join(self._buffer)
        self._buffer = []
        self._buffered = 0
        fut, self._pending = self._pending, None
        self._inflight = fut
        try:
            await loop.run_in_executor(None, _write_and_sync, self._fd, data)
        except OSError as exc:
            # Nothing waiting on this flush is acknowledged (the server answers each such
            # write with a Write_failure); the segment is cut back to its last good record
            # and logging goes on in a fresh one, or stops for good if that fails too.
            self.io_errors += 1
            log.error(
                "commit log segment %d: %s after offset %d; %d bytes of writes not acknowledged",
                self._segment,
                exc,
                self._segment_size,
                len(data),
            )
            # Repair first, so that a client retrying on the error finds the log in its
            # final state (a fresh segment, or refusing writes).
            await self._recover(loop)
            self._fail(fut, CommitLogWriteError(f"commit log write failed: {exc}"))
            return
        finally:
            self._inflight = None
        self._segment_size += len(data)
        if self.on_fsync is not None:
            self.on_fsync()
        if fut is not None and not fut.done():
            fut.set_result(None)
        if (
            self._segment_size >= max(self.segment_bytes, self._last_snapshot_bytes)
            and self._snapshot_task is None
            and not self._closing
        ):
            self._snapshot_task = loop.create_task(self._background_snapshot())

    @staticmethod
    def _fail(fut: asyncio.Future[None] | None, error: Exception) -> None:
        if fut is not None and not fut.done():
            fut.set_exception(error)
            fut.exception()  # mark retrieved: each waiter re-raises it

    async def _recover(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a failed flush: truncate to the last good record, continue in a new segment."""
        old_fd, good = self._fd, self._segment_size
        number = self._segment + 1
        try:
            new_fd = await loop.run_in_executor(None, self._cut_and_create, old_fd, good, number)
        except OSError as exc:
            self.failed = (
                f"the commit log could not recover from an I/O error ({exc}); writes are "
                "refused until the server is restarted"
            )
            log.critical("commit log FAILED: %s", self.failed)
            self._fail(self._pending, CommitLogFailed(self.failed))
            self._pending = None
            self._buffer, self._buffered = [], 0
            return
        self._fd, self._segment, self._segment_size = new_fd, number, 0
        with contextlib.suppress(OSError):
            os.close(old_fd)
        log.warning(
            "commit log: segment %d truncated to its last good record (%d bytes); "
            "continuing in segment %d",
            number - 1,
            good,
            number,
        )

    def _cut_and_create(self, fd: int, good: int, number: int) -> int:
        os.ftruncate(fd, good)
        os.fsync(fd)
        return self._create_segment(number)

    # ---------------------------------------------------------------------------------------
    # Snapshots.

    async def _background_snapshot(self) -> None:
        try:
            await self.snapshot(paced=True)
        except Exception:
            log.exception("snapshot failed; the commit log keeps growing until the next try")

    async def compact(self) -> None:
        """Write a snapshot now (after any snapshot already running, no longer paced)."""
        if self._snapshot_task is not None:
            self._hurry = True
            await asyncio.shield(self._snapshot_task)
        self._snapshot_task = asyncio.get_running_loop().create_task(self.snapshot())
        await asyncio.shield(self._snapshot_task)

    async def snapshot(self, *, paced: bool = False) -> None:
        """Switch segments, write the store to ``snapshot-<new>.bin``, drop what it covers.

        ``paced`` (the background snapshot): after each chunk, wait as long as building it
        took, so the snapshot takes at most about half of the loop and requests keep being
        served; the file is flushed every ``SNAPSHOT_SYNC_BYTES`` so that its final fsync is
        short — one fsync of the whole file (100-200 MiB) held the commit log's group fsyncs,
        and so every acknowledgement, for 2-6 s (``bench/store_write.py --data-dir``).
        """
        assert self._snapshot_source is not None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        written = unsynced = 0
        try:
            if self._pending is not None or self._inflight is not None:
                await self.sync()
            number = self._segment + 1
            self._open_segment(number)
            tmp = self.dir / f"snapshot-{number}.bin.tmp"
            fd = await loop.run_in_executor(
                None, lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            )
            try:
                chunks = aiter(self._snapshot_source())
                while True:
                    built = time.perf_counter()
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    built = time.perf_counter() - built
                    await loop.run_in_executor(None, _write_all, fd, chunk)
                    written += len(chunk)
                    unsynced += len(chunk)
                    if unsynced >= SNAPSHOT_SYNC_BYTES:
                        await loop.run_in_executor(None, os.fdatasync, fd)
                        unsynced = 0
                    if paced and not self._hurry:
                        await asyncio.sleep(built)
                serialized = time.monotonic()
                await loop.run_in_executor(None, os.fsync, fd)
            finally:
                os.close(fd)
            final = self.dir / f"snapshot-{number}.bin"
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            for p in self.dir.iterdir():
                m = _SEGMENT.match(p.name) or _SNAPSHOT.match(p.name)
                if m and int(m.group(1)) < number:
                    p.unlink()
            self.snapshots_written += 1
            self._last_snapshot_bytes = written
            log.info(
                "snapshot %d: %.1f MiB in %.2f s (serialize and write %.2f s, fsync %.2f s)",
                number,
                written / (1 << 20),
                time.monotonic() - started,
                serialized - started,
                time.monotonic() - serialized,
            )
            if self.on_snapshot is not None:
                self.on_snapshot()
        finally:
            self._snapshot_task = None

    async def sync(self) -> None:
        """Wait until everything appended so far is on disk."""
        while True:
            fut = self.durable()
            if fut is None:
                return
            self._wakeup.set()
            await fut

    async def close(self) -> None:
        if self._snapshot_task is not None:
            self._hurry = True
            await asyncio.shield(self._snapshot_task)
        with contextlib.suppress(WriteFailure):  # already logged; those writes were refused
            await self.sync()
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class CommitLogWriteError(WriteFailure):
    """The flush covering a write failed: that write is not acknowledged."""


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it accessible to this user only."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_and_sync(fd: int, data: bytes) -> None:
    _write_all(fd, data)
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
